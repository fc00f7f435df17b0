//! Grounded perception on real footage: the SSDLite person detector, tracks, zones mapped to products,
//! tripwires, and the people gate. Every product in a record must come from measured evidence.

use std::collections::{BTreeMap, BTreeSet};

use crow::client::{self, StreamOptions};
use crow::inference::encode_jpeg;
use crow::inference::gate_footage::gate_footage;
use crow::proto::camera_service_client::CameraServiceClient;
use crow::proto::catalog_service_client::CatalogServiceClient;
use crow::proto::{
    Camera, FrameOutcome, GetKeyframeRequest, ImageFormat, Interaction, Point, Product, Tripwire,
    UpsertProductsRequest, Zone,
};
use crow::PipelineConfig;

use crate::common::{self, TestServer};

/// Capture time of the footage's first frame.
const START_MS: i64 = 1_764_000_000_000;

async fn add_catalog(url: &str, org: &str) {
    let mut c = CatalogServiceClient::connect(url.to_owned()).await.unwrap();
    let product = |id: &str, name: &str, category: &str| Product {
        id: id.into(),
        name: name.into(),
        category: category.into(),
        ..Default::default()
    };
    c.upsert_products(UpsertProductsRequest {
        organization_id: org.into(),
        products: vec![
            product("sku-shoes", "running shoes", "shoes"),
            product("sku-bag", "leather handbag", "bags"),
            product("sku-cap", "baseball cap", "hats"),
        ],
    })
    .await
    .unwrap();
}

fn pt(x: f32, y: f32) -> Option<Point> {
    Some(Point { x, y })
}

/// The middle of the plaza's walkway as a zone where a visit of 1 s counts, mapped to `products`.
fn walkway(products: &[&str]) -> Zone {
    Zone {
        id: "walkway".into(),
        polygon: [(0.3, 0.3), (0.7, 0.3), (0.7, 0.8), (0.3, 0.8)]
            .iter()
            .map(|(x, y)| Point { x: *x, y: *y })
            .collect(),
        product_ids: products.iter().map(|p| (*p).to_owned()).collect(),
        min_dwell_ms: 1_000,
    }
}

/// A tripwire top to bottom through the middle: walking left counts "in", right "out".
fn middle_line() -> Tripwire {
    Tripwire {
        id: "middle".into(),
        a: pt(0.5, 0.0),
        b: pt(0.5, 1.0),
    }
}

async fn configure(url: &str, camera: Camera) -> Camera {
    let mut c = CameraServiceClient::connect(url.to_owned()).await.unwrap();
    c.upsert_camera(camera).await.unwrap().into_inner()
}

/// Streams `frames` frames of vtest.avi (people walking across a plaza, no products) at `fps` and
/// closes the session; returns the closed session and its records.
async fn stream_vtest(
    url: &str,
    org: &str,
    camera: &str,
    fps: f64,
    frames: u64,
) -> (crow::proto::Session, Vec<Interaction>) {
    let mut options = StreamOptions::new(org, camera);
    options.sample_fps = Some(fps);
    options.start_ms = START_MS;
    options.max_frames = Some(frames);
    let report = client::stream_media(url, common::data("vtest.avi"), &options, |_| {})
        .await
        .unwrap();
    assert_eq!(report.acked, frames);
    let closed = common::close_session(url, org, &report.session_ids[0]).await;
    let records =
        common::wait_for_session_records(url, org, &closed.session_id, closed.batches_emitted)
            .await;
    assert_eq!(
        records.len() as u64,
        closed.batches_emitted,
        "one record per batch"
    );
    (closed, records)
}

fn data(i: &Interaction) -> serde_json::Value {
    serde_json::from_str(&i.data_json).unwrap()
}

/// (kind, place, track) of every event of the records, in frame order.
fn events(records: &[Interaction]) -> Vec<(String, String, u64)> {
    event_log(records)
        .into_iter()
        .map(|(_, kind, place, track)| (kind, place, track))
        .collect()
}

/// Frame ranges of a session's records never overlap and follow each other.
fn assert_ranges_disjoint(records: &[Interaction]) {
    let mut ranges: Vec<(u64, u64)> = records
        .iter()
        .map(|i| {
            let r = &data(i)["frame_range"];
            (r[0].as_u64().unwrap(), r[1].as_u64().unwrap())
        })
        .collect();
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        assert!(
            w[0].1 < w[1].0,
            "overlapping frame ranges {:?} and {:?}",
            w[0],
            w[1]
        );
    }
    for i in records {
        let d = data(i);
        let frames: Vec<u64> = d["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["frame_index"].as_u64().unwrap())
            .collect();
        assert!(
            frames.windows(2).all(|w| w[0] < w[1]),
            "frames in order: {frames:?}"
        );
        let (a, b) = (
            d["frame_range"][0].as_u64().unwrap(),
            d["frame_range"][1].as_u64().unwrap(),
        );
        assert!(
            frames.iter().all(|f| (a..=b).contains(f)),
            "{frames:?} outside {a}-{b}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn footage_without_products_yields_no_products_but_people_and_tracks() {
    let t = TestServer::start(PipelineConfig::default()).await;
    add_catalog(&t.url, "acme").await;
    let (closed, records) = stream_vtest(&t.url, "acme", "plaza", 5.0, 120).await;
    assert!(!records.is_empty());
    for i in &records {
        assert!(
            i.product_ids.is_empty(),
            "no product in a plaza: {}",
            i.summary
        );
        assert!(data(i)["products"].as_array().unwrap().is_empty());
    }
    // People walk there: the detector sees them, the tracker follows them, few frames are described.
    let tracks: BTreeSet<u64> = events(&records).iter().map(|e| e.2).collect();
    assert!(
        (3..=60).contains(&tracks.len()),
        "{} tracks in 24 s of a plaza",
        tracks.len()
    );
    assert!(
        closed.frames_accepted > 0 && closed.frames_gated > 0,
        "{closed:?}"
    );
    assert!(
        closed.frames_accepted < closed.frames_received / 2,
        "the gate describes only what changed for people: {closed:?}"
    );
    assert_ranges_disjoint(&records);
    common::assert_each_frame_batched_once(&records, closed.frames_described);
    // Every batch has its record: no analysis backlog is left.
    let session = client::connect(&t.url)
        .await
        .unwrap()
        .get_session(crow::proto::GetSessionRequest {
            organization_id: "acme".into(),
            session_id: closed.session_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(session.batches_unanalyzed, 0);
    // Every track that started also ended (the session closed).
    let ev = events(&records);
    let started: BTreeSet<u64> = ev
        .iter()
        .filter(|e| e.0 == "track_started")
        .map(|e| e.2)
        .collect();
    let ended: BTreeSet<u64> = ev
        .iter()
        .filter(|e| e.0 == "track_ended")
        .map(|e| e.2)
        .collect();
    assert_eq!(started, ended);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_mapped_to_a_product_yields_it_only_where_tracks_dwelt() {
    let t = TestServer::start(PipelineConfig::default()).await;
    add_catalog(&t.url, "acme").await;
    // The middle of the walkway, mapped to the handbag; a visit of 1 s counts.
    let stored = configure(
        &t.url,
        Camera {
            organization_id: "acme".into(),
            camera_id: "plaza".into(),
            zones: vec![walkway(&["sku-bag"])],
            ..Default::default()
        },
    )
    .await;
    assert!(stored.updated_at_ms > 0);
    let (_, records) = stream_vtest(&t.url, "acme", "plaza", 5.0, 120).await;
    let mut with_product = 0;
    let mut ingest = client::connect(&t.url).await.unwrap();
    for i in &records {
        let d = data(i);
        let dwelt: Vec<&serde_json::Value> = d["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "zone_dwell" && e["place"] == "walkway")
            .collect();
        if i.product_ids.is_empty() {
            assert!(
                dwelt.is_empty(),
                "a dwell without its product: {}",
                i.summary
            );
            continue;
        }
        with_product += 1;
        assert_eq!(
            i.product_ids,
            vec!["sku-bag".to_owned()],
            "only the zone's product"
        );
        assert!(
            !dwelt.is_empty(),
            "a product without a dwell: {}",
            i.summary
        );
        // The summary says it in plain words, the product by its catalog name.
        assert!(
            i.summary.contains("stopped at walkway (leather handbag)"),
            "{}",
            i.summary
        );
        let finding = &d["products"][0];
        assert!(finding["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["kind"] == "dwell"
                && e["zone"] == "walkway"
                && e["dwell_ms"].as_i64().unwrap() >= 1_000));
        let confidence = finding["confidence"].as_f64().unwrap();
        assert!(
            confidence > 0.0 && confidence < 1.0,
            "from the evidence: {confidence}"
        );
        // The evidence frames exist and their keyframes can be fetched.
        let frames = finding["evidence_frames"].as_array().unwrap();
        assert!(!frames.is_empty());
        for f in frames {
            let k = ingest
                .get_keyframe(GetKeyframeRequest {
                    organization_id: "acme".into(),
                    session_id: i.session_id.clone(),
                    frame_index: f.as_u64().unwrap(),
                })
                .await
                .unwrap()
                .into_inner();
            assert!(k.data.starts_with(&[0xFF, 0xD8]), "a JPEG keyframe");
        }
    }
    assert!(
        with_product > 0,
        "people walk through the middle of the plaza"
    );
    let ev = events(&records);
    let entered = ev.iter().filter(|e| e.0 == "zone_enter").count();
    let exited = ev.iter().filter(|e| e.0 == "zone_exit").count();
    assert!(entered > 0);
    assert_eq!(entered, exited, "every visit ends (the session closed)");
    t.stop().await;
}

/// Line crossings per direction of a session's records.
fn crossings(records: &[Interaction]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (kind, _, _) in events(records) {
        if kind.starts_with("line_") {
            *out.entry(kind).or_default() += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tripwire_counts_both_directions_the_same_each_time() {
    let t = TestServer::start(PipelineConfig::default()).await;
    let mut counts = Vec::new();
    for camera in ["first", "second"] {
        configure(
            &t.url,
            Camera {
                organization_id: "acme".into(),
                camera_id: camera.into(),
                lines: vec![middle_line()],
                ..Default::default()
            },
        )
        .await;
        let (_, records) = stream_vtest(&t.url, "acme", camera, 5.0, 120).await;
        counts.push(crossings(&records));
    }
    assert_eq!(counts[0], counts[1], "the same footage counts the same");
    assert!(
        counts[0].get("line_in").copied().unwrap_or(0) > 0,
        "{:?}",
        counts[0]
    );
    assert!(
        counts[0].get("line_out").copied().unwrap_or(0) > 0,
        "{:?}",
        counts[0]
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_uses_its_own_detector_input() {
    // The same frames through two cameras: one at the server's detector input, one whose frames are
    // shrunk to 32 x 32 pixels for the detector, where vtest.avi's people are 4-6 px tall: that camera
    // sees nobody, so its own setting is what ran.
    let t = TestServer::start(PipelineConfig::default()).await;
    let mut no_person = Vec::new();
    for (camera, input) in [("server-input", None), ("tiny-input", Some((32, 32)))] {
        let stored = configure(
            &t.url,
            Camera {
                organization_id: "acme".into(),
                camera_id: camera.into(),
                detector_input: input
                    .map(|(width, height)| crow::proto::DetectorInput { width, height }),
                // Tiles at 32 x 32 see nobody either.
                detector_tiles: input.map(|_| crow::proto::DetectorTiles {
                    columns: 2,
                    rows: 2,
                }),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(
            stored.detector_input.map(|d| (d.width, d.height)),
            input,
            "stored as given"
        );
        assert_eq!(
            stored.detector_tiles.map(|t| (t.columns, t.rows)),
            input.map(|_| (2, 2))
        );
        let (closed, _) = stream_vtest(&t.url, "acme", camera, 1.0, 12).await;
        let detected = closed.frames_received - closed.frames_skipped - closed.frames_rejected;
        no_person.push((closed.frames_no_person, detected));
    }
    assert_eq!(no_person[0].0, 0, "people on every frame: {no_person:?}");
    assert_eq!(
        no_person[1].0, no_person[1].1,
        "nobody at 32 x 32: {no_person:?}"
    );
    // Out of range: refused with the rule, nothing stored.
    let mut c = CameraServiceClient::connect(t.url.clone()).await.unwrap();
    let err = c
        .upsert_camera(Camera {
            organization_id: "acme".into(),
            camera_id: "too-small".into(),
            detector_input: Some(crow::proto::DetectorInput {
                width: 16,
                height: 480,
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("32..=4096"), "{}", err.message());
    let err = c
        .upsert_camera(Camera {
            organization_id: "acme".into(),
            camera_id: "too-many-tiles".into(),
            detector_tiles: Some(crow::proto::DetectorTiles {
                columns: 5,
                rows: 1,
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("1..=4"), "{}", err.message());
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_camera_configuration_is_refused_with_its_reason() {
    let t = TestServer::start(PipelineConfig::default()).await;
    let mut c = CameraServiceClient::connect(t.url.clone()).await.unwrap();
    let bad = |zone: Zone| Camera {
        organization_id: "acme".into(),
        camera_id: "cam".into(),
        zones: vec![zone],
        ..Default::default()
    };
    let two_points = Zone {
        id: "z".into(),
        polygon: vec![Point { x: 0.1, y: 0.1 }, Point { x: 0.2, y: 0.2 }],
        ..Default::default()
    };
    let err = c.upsert_camera(bad(two_points)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("3 to 64 points"),
        "{}",
        err.message()
    );
    let outside = Zone {
        id: "z".into(),
        polygon: vec![
            Point { x: 0.1, y: 0.1 },
            Point { x: 1.5, y: 0.2 },
            Point { x: 0.2, y: 0.9 },
        ],
        ..Default::default()
    };
    let err = c.upsert_camera(bad(outside)).await.unwrap_err();
    assert!(err.message().contains("0..1"), "{}", err.message());
    let err = c
        .get_camera(crow::proto::GetCameraRequest {
            organization_id: "acme".into(),
            camera_id: "cam".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "nothing was stored");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_describer_sees_every_busy_stretch_and_no_idle_frame() {
    // Real frames of vtest.avi at 1 frame per second: idle stretches (the plaza without its people), two
    // busy stretches, a blinking sign throughout and an exposure step.
    let footage = gate_footage(&common::data("vtest.avi"), 2).unwrap();
    let items: Vec<(u64, i64, Vec<u8>, ImageFormat)> = footage
        .frames
        .iter()
        .enumerate()
        .map(|(i, m)| {
            (
                i as u64,
                i as i64 * 1000,
                encode_jpeg(m, 80).unwrap(),
                ImageFormat::Jpeg,
            )
        })
        .collect();

    let t = TestServer::start(PipelineConfig::default()).await;
    let acks = common::send(&t.url, common::frames("acme", "shop", START_MS, &items)).await;
    let described: Vec<usize> = acks
        .iter()
        .filter(|a| a.outcome == FrameOutcome::Accepted as i32)
        .map(|a| a.frame_index as usize)
        .collect();
    let idle_described: Vec<usize> = described
        .iter()
        .copied()
        .filter(|i| !footage.is_busy(*i))
        .collect();
    assert!(
        idle_described.is_empty(),
        "idle frames described: {idle_described:?}"
    );
    assert_eq!(footage.busy.len(), 2);
    for stretch in &footage.busy {
        assert!(
            described.iter().any(|i| stretch.contains(i)),
            "busy stretch {stretch:?} missed: {described:?}"
        );
    }
    for a in acks
        .iter()
        .filter(|a| !footage.is_busy(a.frame_index as usize))
    {
        assert!(
            a.outcome == FrameOutcome::NoPerson as i32
                || a.outcome == FrameOutcome::SkippedDuplicate as i32,
            "idle frame {} got {:?}",
            a.frame_index,
            FrameOutcome::try_from(a.outcome)
        );
    }
    let session = acks[0].session_id.clone();
    let closed = common::close_session(&t.url, "acme", &session).await;
    assert_eq!(closed.frames_received, footage.frames.len() as u64);
    t.stop().await;
}

/// People leave and the scene stays still (frames the near-duplicate gate skips before the
/// detector): their tracks end and occupancy returns to 0 within seconds of the last sighting, not when
/// the next person appears or the session closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_standing_still_are_detected_again_every_few_seconds() {
    // One frame of vtest.avi with its people, sent 21 times at 1 frame/s: every frame after the first
    // is a near-duplicate, yet the detector looks again every `redetect_interval_ms` (5 s) while
    // someone is tracked; with the interval at 0 it never does.
    let frame = crow::inference::MediaReader::open(common::data("vtest.avi"), None)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let jpeg = encode_jpeg(&frame.image, 85).unwrap();
    let items: Vec<(u64, i64, Vec<u8>, ImageFormat)> = (0..21)
        .map(|i| (i, i as i64 * 1000, jpeg.clone(), ImageFormat::Jpeg))
        .collect();
    let mut skipped = Vec::new();
    for interval in [5_000, 0] {
        let mut config = PipelineConfig::default();
        config.perception.redetect_interval_ms = interval;
        let t = TestServer::start(config).await;
        let acks = common::send(&t.url, common::frames("acme", "still", START_MS, &items)).await;
        let detected: Vec<usize> = acks
            .iter()
            .enumerate()
            .filter(|(_, a)| a.outcome != FrameOutcome::SkippedDuplicate as i32)
            .map(|(i, _)| i)
            .collect();
        skipped.push(acks.len() - detected.len());
        if interval > 0 {
            assert_eq!(detected, [0, 5, 10, 15, 20], "frames the detector saw");
        } else {
            assert_eq!(detected, [0], "frames the detector saw");
        }
        t.stop().await;
    }
    assert_eq!(skipped, [16, 20]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_who_leave_a_still_scene_end_their_tracks_within_seconds() {
    let footage = gate_footage(&common::data("vtest.avi"), 2).unwrap();
    // Each idle stretch is still: its first frame over and over (no blinking sign).
    let mut items: Vec<(u64, i64, Vec<u8>, ImageFormat)> = Vec::new();
    let mut still: Option<Vec<u8>> = None;
    for (i, m) in footage.frames.iter().enumerate() {
        let jpeg = if footage.is_busy(i) {
            still = None;
            encode_jpeg(m, 80).unwrap()
        } else {
            still
                .get_or_insert_with(|| encode_jpeg(m, 80).unwrap())
                .clone()
        };
        items.push((i as u64, i as i64 * 1000, jpeg, ImageFormat::Jpeg));
    }
    let t = TestServer::start(PipelineConfig::default()).await;
    let acks = common::send(&t.url, common::frames("acme", "still", START_MS, &items)).await;
    let skipped = acks
        .iter()
        .filter(|a| a.outcome == FrameOutcome::SkippedDuplicate as i32)
        .count();
    assert!(
        skipped > 40,
        "the still stretches are duplicates: {skipped} skipped"
    );
    let closed = common::close_session(&t.url, "acme", &acks[0].session_id).await;
    let records = common::wait_for_session_records(
        &t.url,
        "acme",
        &closed.session_id,
        closed.batches_emitted,
    )
    .await;
    let log = event_log(&records);
    let mut occupancy: Vec<(u64, u64)> = records
        .iter()
        .flat_map(|r| data(r)["occupancy"].as_array().cloned().unwrap_or_default())
        .map(|o| {
            (
                o["frame_index"].as_u64().unwrap(),
                o["people"].as_u64().unwrap(),
            )
        })
        .collect();
    occupancy.sort_unstable();
    // A track ends once unseen for more than 3 s: by the 5th frame after its stretch, 1 frame/s.
    let max_lost_frames = 5;
    for stretch in &footage.busy {
        let (start, end) = (stretch.start as u64, stretch.end as u64);
        let started: Vec<u64> = log
            .iter()
            .filter(|(f, kind, _, _)| kind == "track_started" && (start..end).contains(f))
            .map(|(_, _, _, track)| *track)
            .collect();
        assert!(
            !started.is_empty(),
            "nobody tracked in {stretch:?}: {log:?}"
        );
        for track in started {
            let ended = log
                .iter()
                .find(|(_, kind, _, t)| kind == "track_ended" && *t == track)
                .map(|(f, _, _, _)| *f);
            assert!(
                ended.is_some_and(|f| f < end + max_lost_frames),
                "track {track} of {stretch:?} ended at {ended:?}: {log:?}"
            );
        }
        let people_after = occupancy
            .iter()
            .rfind(|(f, _)| *f < end + max_lost_frames)
            .map(|(_, n)| *n);
        assert_eq!(people_after, Some(0), "{occupancy:?}");
    }
    t.stop().await;
}

/// Every event of a camera's records: (frame, kind, place, track).
fn event_log(records: &[Interaction]) -> Vec<(u64, String, String, u64)> {
    let mut out: Vec<(u64, String, String, u64)> = records
        .iter()
        .flat_map(|i| {
            data(i)["events"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|e| {
                    (
                        e["frame_index"].as_u64().unwrap(),
                        e["kind"].as_str().unwrap().to_owned(),
                        e["place"].as_str().unwrap_or("").to_owned(),
                        e["track_id"].as_u64().unwrap(),
                    )
                })
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracks_survive_a_session_actor_restart_without_counting_twice() {
    let t = TestServer::start(PipelineConfig::default()).await;
    let jpegs = common::jpeg_frames("vtest.avi", 5.0, 60);
    let items: Vec<_> = jpegs
        .iter()
        .enumerate()
        .map(|(i, (pos, j))| (i as u64, *pos, j.clone(), ImageFormat::Jpeg))
        .collect();
    let mut logs = Vec::new();
    for (camera, panic_at) in [("steady", None), ("restarted", Some(30))] {
        configure(
            &t.url,
            Camera {
                organization_id: "acme".into(),
                camera_id: camera.into(),
                zones: vec![walkway(&[])],
                lines: vec![middle_line()],
                ..Default::default()
            },
        )
        .await;
        let split = panic_at.unwrap_or(items.len());
        let acks = common::send(
            &t.url,
            common::frames("acme", camera, START_MS, &items[..split]),
        )
        .await;
        let session_id = acks[0].session_id.clone();
        if panic_at.is_some() {
            // Fault injection (a panic cannot be provoked with valid input): the actor dies and its
            // supervisor starts a new one, which must resume the same tracks from sled.
            assert!(
                t.crow
                    .pipeline()
                    .sessions()
                    .inject_session_panic(&session_id)
                    .await
            );
            common::send(
                &t.url,
                common::frames("acme", camera, START_MS, &items[split..]),
            )
            .await;
        }
        let closed = common::close_session(&t.url, "acme", &session_id).await;
        let records =
            common::wait_for_session_records(&t.url, "acme", &session_id, closed.batches_emitted)
                .await;
        assert_eq!(records.len() as u64, closed.batches_emitted);
        logs.push(event_log(&records));
    }
    assert!(!logs[0].is_empty());
    assert_eq!(
        logs[0], logs[1],
        "the restarted session measured the same tracks, visits and crossings"
    );
    t.stop().await;
}

/// crow's counts against footage with exact truth (`crow bench truth` measures the whole set): 5 minutes
/// of large people (130-280 px), at most 3 in view: walkers, visitors at the display, groups of 2-3,
/// pairs crossing at the door, one person standing at the display for a minute. The goals of issue 29
/// that hold here are asserted as goals; the others at the level measured on 2026-12-07, so that a
/// change that makes them worse fails (docs/benchmarks.md has the figures of every scenario).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_on_labelled_footage_meet_the_goals() {
    use crow::inference::truth_footage::{truth_footage, PersonScale, TruthSpec};
    let spec = TruthSpec {
        seconds: 300,
        fps: 1.0,
        max_in_view: 3,
        scale: PersonScale::Large,
        bursts: None,
        seed: 1,
    };
    let footage = truth_footage(&common::data("vtest.avi"), spec).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let report = crow::truth::measure(
        std::sync::Arc::new(footage),
        PipelineConfig::default(),
        &dir.path().join("data"),
    )
    .await
    .unwrap();
    println!("{report}");
    assert!(report.people >= 40, "{report}");
    assert!(report.recall_from_60px.value() >= 0.9, "{report}");
    assert!(report.precision.value() >= 0.95, "{report}");
    assert!(report.id_switches_per_100() <= 2.0, "{report}");
    assert!(report.dwell_error_s <= 1.0, "{report}");
    assert!(report.visits_paired >= 25, "{report}");
    assert!(report.occupancy_error <= 0.2, "{report}");
    // Not yet at the goal (within 5 %): no worse than measured (19 and 16 % at the door, 13 % of
    // visits, 20 % of dwells).
    assert!(report.door_in.error() <= 0.2, "{report}");
    assert!(report.door_out.error() <= 0.2, "{report}");
    assert!(report.visits.error() <= 0.15, "{report}");
    assert!(report.dwells.error() <= 0.25, "{report}");
}

/// The detector on people boxed by hand on vtest.avi's own frames (44 people on 8 frames): what the
/// composed footage cannot show. Not at the goal (recall >= 0.9): a change that finds fewer real people,
/// or more that are not there, than measured fails.
#[test]
fn the_detector_on_hand_labelled_real_frames_is_no_worse_than_measured() {
    use crow::inference::{DetectionFilter, PersonDetector};
    let labels: crow::truth::LabelledFrames = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/truth/vtest-people.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let config = PipelineConfig::default();
    let model = std::fs::read(&config.perception.model).unwrap();
    let mut detector =
        PersonDetector::ssd_with_input(&model, config.perception.detector_input).unwrap();
    let filter = DetectionFilter {
        min_score: config.perception.min_score,
        max_width_to_height: config.perception.max_width_to_height,
    };
    let report = crow::truth::measure_labelled(
        &labels,
        &common::data("vtest.avi"),
        &mut detector,
        &filter,
        config.perception.detector_tiles,
    )
    .unwrap();
    println!("{report}");
    assert_eq!(report.recall.total, 44, "{report}");
    // Measured 2026-12-07 at 300 x 300: recall 0.545 (24/44), precision 0.800 (24/30).
    assert!(report.recall.value() >= 0.5, "{report}");
    assert!(report.precision.value() >= 0.75, "{report}");
    // 2 x 2 tiles besides the whole frame find a third more of the real people: measured 0.727
    // (32/44), precision 0.865 (32/37).
    let tiled = crow::truth::measure_labelled(
        &labels,
        &common::data("vtest.avi"),
        &mut detector,
        &filter,
        [2, 2],
    )
    .unwrap();
    println!("2x2 tiles: {tiled}");
    assert!(tiled.recall.value() >= 0.7, "{tiled}");
    assert!(tiled.precision.value() >= 0.85, "{tiled}");
}
