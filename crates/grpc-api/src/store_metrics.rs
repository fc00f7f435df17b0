//! Store metrics on the wire: a `GetMetricsRequest` becomes a [`MetricsQuery`], a [`MetricsReport`]
//! its proto form.

use crow_actors::validate_id;
use crow_storage::metrics::BucketWidth;
use crow_storage::metrics_report::{self, Grouping, MetricsQuery, MetricsReport};
use crow_storage::now_ms;
use tonic::Status;

use crate::convert;
use crate::proto;

/// The range a request without one covers: the last 24 hours.
pub const DEFAULT_RANGE_MS: i64 = 24 * 3_600_000;

/// The query a request asks for: `to_ms` 0 is now, `from_ms` 0 is a day before `to_ms`, the grouping
/// unspecified is hours and the time zone empty is UTC.
pub(crate) fn query(r: &proto::GetMetricsRequest) -> Result<MetricsQuery, Status> {
    validate_id("organization_id", &r.organization_id).map_err(convert::status)?;
    let camera_id = (!r.camera_id.is_empty())
        .then(|| {
            validate_id("camera_id", &r.camera_id)
                .map_err(convert::status)
                .map(|()| r.camera_id.clone())
        })
        .transpose()?;
    let grouping = match proto::MetricsGrouping::try_from(r.grouping) {
        Ok(proto::MetricsGrouping::Unspecified | proto::MetricsGrouping::Hour) => Grouping::Hour,
        Ok(proto::MetricsGrouping::FiveMinutes) => Grouping::FiveMinutes,
        Ok(proto::MetricsGrouping::Day) => Grouping::Day,
        Ok(proto::MetricsGrouping::Total) => Grouping::Total,
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "grouping {} is not a MetricsGrouping (1 five minutes, 2 hour, 3 day, 4 total)",
                r.grouping
            )))
        }
    };
    let to_ms = if r.to_ms == 0 { now_ms() } else { r.to_ms };
    let from_ms = if r.from_ms == 0 {
        to_ms - DEFAULT_RANGE_MS
    } else {
        r.from_ms
    };
    let zone = if r.time_zone.is_empty() {
        "UTC"
    } else {
        r.time_zone.as_str()
    };
    let time_zone = metrics_report::time_zone(zone).map_err(convert::storage_status)?;
    Ok(MetricsQuery {
        camera_id,
        from_ms,
        to_ms,
        grouping,
        time_zone,
    })
}

fn grouping(g: Grouping) -> proto::MetricsGrouping {
    match g {
        Grouping::FiveMinutes => proto::MetricsGrouping::FiveMinutes,
        Grouping::Hour => proto::MetricsGrouping::Hour,
        Grouping::Day => proto::MetricsGrouping::Day,
        Grouping::Total => proto::MetricsGrouping::Total,
    }
}

/// The report's proto form.
pub(crate) fn report(r: &MetricsReport) -> proto::MetricsReport {
    proto::MetricsReport {
        grouping: grouping(r.grouping) as i32,
        time_zone: r.time_zone.clone(),
        from_ms: r.from_ms,
        to_ms: r.to_ms,
        source_minutes: match r.source_width {
            BucketWidth::FiveMinutes => 5,
            BucketWidth::Hour => 60,
        },
        rows: r
            .rows
            .iter()
            .map(|row| proto::MetricsRow {
                start_ms: row.start_ms,
                end_ms: row.end_ms,
                start: row.start.clone(),
                people_in: row.people_in,
                people_out: row.people_out,
                people: row.people,
                visits: row.visits,
                mean_people: row.mean_people,
                cameras: row
                    .cameras
                    .iter()
                    .map(|c| proto::CameraMetrics {
                        camera_id: c.camera_id.clone(),
                        people: c.people,
                        mean_people: c.mean_people,
                        peak_people: c.peak_people,
                    })
                    .collect(),
                lines: row
                    .lines
                    .iter()
                    .map(|l| proto::LineMetrics {
                        camera_id: l.camera_id.clone(),
                        line_id: l.line_id.clone(),
                        people_in: l.people_in,
                        people_out: l.people_out,
                    })
                    .collect(),
                zones: row
                    .zones
                    .iter()
                    .map(|z| proto::ZoneMetrics {
                        camera_id: z.camera_id.clone(),
                        zone_id: z.zone_id.clone(),
                        visits: z.visits,
                        dwelt: z.dwelt,
                        exits: z.exits,
                        dwell_p50_ms: z.dwell_p50_ms,
                        dwell_p90_ms: z.dwell_p90_ms,
                        dwell_total_ms: z.dwell_total_ms,
                        mean_people: z.mean_people,
                        peak_people: z.peak_people,
                    })
                    .collect(),
                products: row
                    .products
                    .iter()
                    .map(|p| proto::ProductMetrics {
                        product_id: p.product_id.clone(),
                        visits: p.visits,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// The report as CSV: a header, then one line per group — its start (in the report's time zone), its
/// length in minutes, the totals, then a column per camera, tripwire, zone and product figure (the
/// union over the groups; a figure a group lacks is 0, a dwell it lacks is empty). Dwell in seconds.
pub fn csv(report: &proto::MetricsReport) -> String {
    use std::collections::BTreeMap;
    use std::fmt::Write as _;

    // column name -> value per row index
    let mut columns: BTreeMap<String, BTreeMap<usize, String>> = BTreeMap::new();
    let mut put = |name: String, row: usize, value: String| {
        columns.entry(name).or_default().insert(row, value);
    };
    let seconds =
        |ms: Option<i64>| ms.map_or(String::new(), |ms| format!("{:.1}", ms as f64 / 1000.0));
    for (i, row) in report.rows.iter().enumerate() {
        for c in &row.cameras {
            let at = &c.camera_id;
            put(format!("camera {at} people"), i, c.people.to_string());
            put(
                format!("camera {at} mean people"),
                i,
                format!("{:.3}", c.mean_people),
            );
            put(
                format!("camera {at} peak people"),
                i,
                c.peak_people.to_string(),
            );
        }
        for l in &row.lines {
            let at = format!("{}/{}", l.camera_id, l.line_id);
            put(format!("line {at} in"), i, l.people_in.to_string());
            put(format!("line {at} out"), i, l.people_out.to_string());
        }
        for z in &row.zones {
            let at = format!("{}/{}", z.camera_id, z.zone_id);
            put(format!("zone {at} visits"), i, z.visits.to_string());
            put(format!("zone {at} dwelt"), i, z.dwelt.to_string());
            put(format!("zone {at} dwell p50 s"), i, seconds(z.dwell_p50_ms));
            put(format!("zone {at} dwell p90 s"), i, seconds(z.dwell_p90_ms));
            put(
                format!("zone {at} mean people"),
                i,
                format!("{:.3}", z.mean_people),
            );
            put(
                format!("zone {at} peak people"),
                i,
                z.peak_people.to_string(),
            );
        }
        for p in &row.products {
            put(
                format!("product {} visits", p.product_id),
                i,
                p.visits.to_string(),
            );
        }
    }
    let mut out = String::from("start,minutes,people in,people out,people,visits,mean people");
    for name in columns.keys() {
        out.push(',');
        out.push_str(name);
    }
    out.push('\n');
    for (i, row) in report.rows.iter().enumerate() {
        let _ = write!(
            out,
            "{},{},{},{},{},{},{:.3}",
            row.start,
            (row.end_ms - row.start_ms) / 60_000,
            row.people_in,
            row.people_out,
            row.people,
            row.visits,
            row.mean_people
        );
        for (name, values) in &columns {
            out.push(',');
            match values.get(&i) {
                Some(v) => out.push_str(v),
                None if name.contains("dwell p") => {}
                None => out.push('0'),
            }
        }
        out.push('\n');
    }
    out
}
