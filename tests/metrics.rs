//! Store metrics equal the events of the records they come from: real footage (vtest.avi) streamed
//! across a five-minute and an hour boundary through a camera with a zone mapped to a product and a
//! tripwire; every bucket's crossings, visits, dwell, people and occupancy are computed again from the
//! records' own events and compared, on sled and on PostgreSQL, over gRPC and HTTP (JSON and CSV).

use std::collections::BTreeMap;

use crow::client::{self, StreamOptions};
use crow::proto::camera_service_client::CameraServiceClient;
use crow::proto::catalog_service_client::CatalogServiceClient;
use crow::proto::interaction_service_client::InteractionServiceClient;
use crow::proto::{
    Camera, GetMetricsRequest, Interaction, MetricsGrouping, MetricsReport, Point, Product,
    Tripwire, UpsertProductsRequest, Zone,
};
use crow::PipelineConfig;
use serde_json::Value;

use crate::common::{self, on_both_backends, Backend, TestServer};

const FIVE_MINUTES: i64 = 300_000;
const HOUR: i64 = 3_600_000;
/// An hour boundary (and so a five-minute one).
const BOUNDARY_MS: i64 = 1_764_000_000_000;
/// The footage starts 20 s before the boundary and lasts 40 s.
const START_MS: i64 = BOUNDARY_MS - 20_000;

async fn set_up(url: &str) {
    let mut catalog = CatalogServiceClient::connect(url.to_owned()).await.unwrap();
    catalog
        .upsert_products(UpsertProductsRequest {
            organization_id: "acme".into(),
            products: vec![Product {
                id: "sku-bag".into(),
                name: "leather handbag".into(),
                category: "bags".into(),
                ..Default::default()
            }],
        })
        .await
        .unwrap();
    let pt = |x, y| Some(Point { x, y });
    let mut cameras = CameraServiceClient::connect(url.to_owned()).await.unwrap();
    cameras
        .upsert_camera(Camera {
            organization_id: "acme".into(),
            camera_id: "plaza".into(),
            zones: vec![Zone {
                id: "walkway".into(),
                polygon: [(0.3, 0.3), (0.7, 0.3), (0.7, 0.8), (0.3, 0.8)]
                    .iter()
                    .map(|(x, y)| Point { x: *x, y: *y })
                    .collect(),
                product_ids: vec!["sku-bag".into()],
                min_dwell_ms: 1_000,
            }],
            lines: vec![Tripwire {
                id: "middle".into(),
                a: pt(0.5, 0.0),
                b: pt(0.5, 1.0),
            }],
            ..Default::default()
        })
        .await
        .unwrap();
}

/// What one five-minute bucket must hold, computed from the records' events.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    people: u64,
    lines: BTreeMap<String, (u64, u64)>,
    /// visits, dwelt, exits, total dwell ms
    zones: BTreeMap<String, (u64, u64, u64, u64)>,
    dwells: BTreeMap<String, Vec<i64>>,
    products: BTreeMap<String, u64>,
    people_ms: f64,
    zone_people_ms: BTreeMap<String, f64>,
}

fn bucket(at_ms: i64) -> i64 {
    at_ms.div_euclid(FIVE_MINUTES) * FIVE_MINUTES
}

/// Adds `level` held over `from..to` to the buckets it spans.
fn hold(
    expected: &mut BTreeMap<i64, Expected>,
    from: i64,
    to: i64,
    level: f64,
    zone: Option<&str>,
) {
    let mut start = bucket(from);
    while start < to {
        let end = start + FIVE_MINUTES;
        let span = (to.min(end) - from.max(start)) as f64;
        let e = expected.entry(start).or_default();
        match zone {
            None => e.people_ms += span * level,
            Some(z) => *e.zone_people_ms.entry(z.to_owned()).or_default() += span * level,
        }
        start = end;
    }
}

/// A change of people in view (the new level) or in a zone (+1 or -1), at a time.
type Change = (i64, Option<u32>, Option<(String, i32)>);

fn expected_from(records: &[Interaction]) -> BTreeMap<i64, Expected> {
    let mut expected: BTreeMap<i64, Expected> = BTreeMap::new();
    let mut changes: Vec<Change> = Vec::new();
    let mut records: Vec<&Interaction> = records.iter().collect();
    records.sort_by_key(|r| {
        let d: Value = serde_json::from_str(&r.data_json).unwrap();
        d["batch_index"].as_u64().unwrap()
    });
    for r in records {
        let d: Value = serde_json::from_str(&r.data_json).unwrap();
        for o in d["occupancy"].as_array().unwrap() {
            changes.push((
                o["at_ms"].as_i64().unwrap(),
                Some(o["people"].as_u64().unwrap() as u32),
                None,
            ));
        }
        for ev in d["events"].as_array().unwrap() {
            let at = ev["at_ms"].as_i64().unwrap();
            let place = ev["place"].as_str().unwrap_or("").to_owned();
            let e = expected.entry(bucket(at)).or_default();
            match ev["kind"].as_str().unwrap() {
                "track_started" => e.people += 1,
                "line_in" => e.lines.entry(place).or_default().0 += 1,
                "line_out" => e.lines.entry(place).or_default().1 += 1,
                "zone_enter" => {
                    e.zones.entry(place.clone()).or_default().0 += 1;
                    changes.push((at, None, Some((place, 1))));
                }
                "zone_dwell" => {
                    e.zones.entry(place).or_default().1 += 1;
                    for p in ev["product_ids"].as_array().into_iter().flatten() {
                        *e.products
                            .entry(p.as_str().unwrap().to_owned())
                            .or_default() += 1;
                    }
                }
                "zone_exit" => {
                    let dwell = ev["dwell_ms"].as_i64().unwrap();
                    let z = e.zones.entry(place.clone()).or_default();
                    z.2 += 1;
                    z.3 += dwell as u64;
                    e.dwells.entry(place.clone()).or_default().push(dwell);
                    changes.push((at, None, Some((place, -1))));
                }
                _ => {}
            }
        }
    }
    // People in view and in each zone: step functions of the changes, in time order.
    changes.sort_by_key(|c| c.0);
    let (mut at, mut people, mut zones) = (i64::MIN, 0u32, BTreeMap::<String, i32>::new());
    for (t, level, zone) in changes {
        if at != i64::MIN {
            hold(&mut expected, at, t, f64::from(people), None);
            for (z, n) in &zones {
                hold(&mut expected, at, t, f64::from(*n), Some(z));
            }
        }
        at = t;
        if let Some(level) = level {
            people = level;
        }
        if let Some((z, d)) = zone {
            let n = zones.entry(z).or_default();
            *n = (*n + d).max(0);
        }
    }
    assert_eq!(people, 0, "the closed session ends with nobody in view");
    expected
}

async fn report(
    url: &str,
    grouping: MetricsGrouping,
    from_ms: i64,
    to_ms: i64,
    time_zone: &str,
) -> MetricsReport {
    let mut c = InteractionServiceClient::connect(url.to_owned())
        .await
        .unwrap();
    c.get_metrics(GetMetricsRequest {
        organization_id: "acme".into(),
        camera_id: String::new(),
        from_ms,
        to_ms,
        grouping: grouping as i32,
        time_zone: time_zone.into(),
    })
    .await
    .unwrap()
    .into_inner()
}

/// The nearest-rank quantile of `values`.
fn quantile(values: &mut [i64], q: f64) -> i64 {
    values.sort_unstable();
    values[((q * values.len() as f64).ceil() as usize).max(1) - 1]
}

async fn metrics_equal_the_events_of_the_records(backend: Backend) {
    let t = TestServer::start_on(backend, PipelineConfig::default()).await;
    set_up(&t.url).await;
    let mut options = StreamOptions::new("acme", "plaza");
    options.sample_fps = Some(5.0);
    options.start_ms = START_MS;
    options.max_frames = Some(200);
    let streamed = client::stream_media(&t.url, common::data("vtest.avi"), &options, |_| {})
        .await
        .unwrap();
    let closed = common::close_session(&t.url, "acme", &streamed.session_ids[0]).await;
    let records = common::wait_for_session_records(
        &t.url,
        "acme",
        &closed.session_id,
        closed.batches_emitted,
    )
    .await;
    let expected = expected_from(&records);
    assert_eq!(
        expected.keys().copied().collect::<Vec<_>>(),
        [BOUNDARY_MS - FIVE_MINUTES, BOUNDARY_MS],
        "the footage spans the boundary"
    );

    let five = report(
        &t.url,
        MetricsGrouping::FiveMinutes,
        BOUNDARY_MS - FIVE_MINUTES,
        BOUNDARY_MS + FIVE_MINUTES,
        "",
    )
    .await;
    assert_eq!(five.rows.len(), 2);
    let (mut crossings, mut visits) = (0, 0);
    for row in &five.rows {
        let e = &expected[&row.start_ms];
        assert_eq!(row.people, e.people, "people first seen at {}", row.start);
        let lines: BTreeMap<String, (u64, u64)> = row
            .lines
            .iter()
            .map(|l| (l.line_id.clone(), (l.people_in, l.people_out)))
            .collect();
        assert_eq!(lines, e.lines, "crossings at {}", row.start);
        let zones: BTreeMap<String, (u64, u64, u64, u64)> = row
            .zones
            .iter()
            .filter(|z| z.visits + z.dwelt + z.exits > 0)
            .map(|z| {
                (
                    z.zone_id.clone(),
                    (z.visits, z.dwelt, z.exits, z.dwell_total_ms),
                )
            })
            .collect();
        assert_eq!(zones, e.zones, "visits and dwell at {}", row.start);
        let products: BTreeMap<String, u64> = row
            .products
            .iter()
            .map(|p| (p.product_id.clone(), p.visits))
            .collect();
        assert_eq!(products, e.products, "product visits at {}", row.start);
        let mean = e.people_ms / FIVE_MINUTES as f64;
        assert!(
            (row.mean_people - mean).abs() < 1e-9,
            "people in view at {}: {} != {mean}",
            row.start,
            row.mean_people
        );
        for z in &row.zones {
            let held = e.zone_people_ms.get(&z.zone_id).copied().unwrap_or(0.0);
            assert!((z.mean_people - held / FIVE_MINUTES as f64).abs() < 1e-9);
            if let Some(mut dwells) = e.dwells.get(&z.zone_id).cloned() {
                for (q, read) in [(0.5, z.dwell_p50_ms), (0.9, z.dwell_p90_ms)] {
                    let exact = quantile(&mut dwells, q) as f64;
                    let read = read.unwrap() as f64;
                    assert!(
                        (read - exact).abs() <= exact * 0.025 + 1.0,
                        "dwell q{q} at {}: {read} vs {exact}",
                        row.start
                    );
                }
            }
        }
        crossings += row.people_in + row.people_out;
        visits += row.visits;
    }
    assert!(
        crossings > 0 && visits > 0,
        "people cross and visit: {five:?}"
    );

    // Hours of UTC are read from the hourly buckets and hold the same figures.
    let hours = report(
        &t.url,
        MetricsGrouping::Hour,
        BOUNDARY_MS - HOUR,
        BOUNDARY_MS + HOUR,
        "UTC",
    )
    .await;
    assert_eq!(hours.source_minutes, 60);
    for (hour, five) in hours.rows.iter().zip(&five.rows) {
        assert_eq!(
            (hour.people_in, hour.people_out, hour.people, hour.visits),
            (five.people_in, five.people_out, five.people, five.visits)
        );
        assert!((hour.mean_people * 12.0 - five.mean_people).abs() < 1e-9);
    }
    // Kolkata's hours (+05:30) are summed from five-minute buckets: the same totals.
    let kolkata = report(
        &t.url,
        MetricsGrouping::Total,
        BOUNDARY_MS - HOUR,
        BOUNDARY_MS + HOUR,
        "Asia/Kolkata",
    )
    .await;
    let total = &kolkata.rows[0];
    assert_eq!(total.people_in + total.people_out, crossings, "{kolkata:?}");
    assert_eq!(total.visits, visits);

    // HTTP: the same report as JSON, and as CSV.
    let http = reqwest::Client::new();
    let path = format!(
        "{}/api/v1/organizations/acme/metrics?camera=plaza&by=5m&from={}&to={}",
        t.url,
        BOUNDARY_MS - FIVE_MINUTES,
        BOUNDARY_MS + FIVE_MINUTES
    );
    let json: Value = http.get(&path).send().await.unwrap().json().await.unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["peopleIn"], five.rows[1].people_in);
    assert_eq!(json["grouping"], "5m");
    let csv = http
        .get(format!("{path}&format=csv"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines[0].starts_with("start,minutes,people in,people out"),
        "{csv}"
    );
    assert!(lines[0].contains("line plaza/middle in"), "{csv}");
    assert!(lines[2].starts_with(&format!(
        "{},5,{},{}",
        five.rows[1].start, five.rows[1].people_in, five.rows[1].people_out
    )));
    // A query the API cannot answer says what to change.
    let bad = http
        .get(format!("{path}&tz=Mars/Olympus"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("IANA"));
    t.stop().await;
}

on_both_backends!(metrics_equal_the_events_of_the_records);
