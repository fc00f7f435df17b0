//! Metrics reports: the stored buckets ([`crate::metrics`]) of an organization's cameras grouped by five
//! minutes, hours or days of a time zone, or over a whole range, with every group of the range present
//! (an empty hour is a row of zeros, not a gap).

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, ZonedDateTime as Zoned};
use serde::{Deserialize, Serialize};

use crate::metrics::{BucketWidth, MetricBucket, StoredBucket};
use crate::{Result, StorageError};

/// Most rows one report holds: a longer range needs a coarser grouping.
pub const MAX_REPORT_ROWS: usize = 10_000;

/// How a report groups time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grouping {
    /// Five minutes.
    FiveMinutes,
    /// Hours of the time zone.
    Hour,
    /// Days of the time zone (midnight to midnight, 23 or 25 hours on a daylight-saving change).
    Day,
    /// One row for the whole range.
    Total,
}

impl Grouping {
    /// Its name in the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Grouping::FiveMinutes => "5m",
            Grouping::Hour => "hour",
            Grouping::Day => "day",
            Grouping::Total => "total",
        }
    }

    /// The grouping a name stands for (`5m`, `hour`, `day`, `total`).
    pub fn parse(name: &str) -> Option<Grouping> {
        [
            Grouping::FiveMinutes,
            Grouping::Hour,
            Grouping::Day,
            Grouping::Total,
        ]
        .into_iter()
        .find(|g| g.as_str() == name)
    }
}

/// What a report covers.
#[derive(Debug, Clone)]
pub struct MetricsQuery {
    /// One camera, or every camera of the organization.
    pub camera_id: Option<String>,
    /// From (inclusive), ms since the epoch; widened to the start of its group.
    pub from_ms: i64,
    /// To (exclusive), ms since the epoch; widened to the end of its group.
    pub to_ms: i64,
    /// How rows group time.
    pub grouping: Grouping,
    /// The time zone hours and days are of.
    pub time_zone: TimeZone,
}

/// People through one tripwire in one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineRow {
    /// The camera.
    pub camera_id: String,
    /// The tripwire.
    pub line_id: String,
    /// Crossings in.
    pub people_in: u64,
    /// Crossings out.
    pub people_out: u64,
}

/// One zone in one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneRow {
    /// The camera.
    pub camera_id: String,
    /// The zone.
    pub zone_id: String,
    /// Visits begun.
    pub visits: u64,
    /// Visits that reached the zone's minimum dwell.
    pub dwelt: u64,
    /// Visits ended.
    pub exits: u64,
    /// Median length of the ended visits, ms (within the sketch's 2.4 %).
    pub dwell_p50_ms: Option<i64>,
    /// 90th percentile, ms.
    pub dwell_p90_ms: Option<i64>,
    /// Total length of the ended visits, ms.
    pub dwell_total_ms: u64,
    /// Mean people in the zone over the row's time (a queue's mean length).
    pub mean_people: f64,
    /// The most people in the zone at once.
    pub peak_people: u32,
}

/// One camera in one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraRow {
    /// The camera.
    pub camera_id: String,
    /// People first seen.
    pub people: u64,
    /// Mean people in view over the row's time.
    pub mean_people: f64,
    /// The most people in view at once.
    pub peak_people: u32,
}

/// Visits of one product in one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductRow {
    /// Catalog id.
    pub product_id: String,
    /// Zone dwells in zones mapped to it.
    pub visits: u64,
}

/// One group of time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRow {
    /// Start, ms since the epoch.
    pub start_ms: i64,
    /// End (exclusive).
    pub end_ms: i64,
    /// Start in the report's time zone, RFC 3339 with its offset.
    pub start: String,
    /// Crossings in, all tripwires.
    pub people_in: u64,
    /// Crossings out, all tripwires.
    pub people_out: u64,
    /// People first seen, all cameras (one person seen by two cameras counts twice).
    pub people: u64,
    /// Zone visits begun, all zones.
    pub visits: u64,
    /// Mean people in view, summed over cameras.
    pub mean_people: f64,
    /// Per camera.
    pub cameras: Vec<CameraRow>,
    /// Per tripwire.
    pub lines: Vec<LineRow>,
    /// Per zone.
    pub zones: Vec<ZoneRow>,
    /// Per product.
    pub products: Vec<ProductRow>,
}

/// A report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsReport {
    /// The grouping.
    pub grouping: Grouping,
    /// The time zone's name.
    pub time_zone: String,
    /// The stored width the rows were summed from.
    pub source_width: BucketWidth,
    /// The widened range: from.
    pub from_ms: i64,
    /// The widened range: to.
    pub to_ms: i64,
    /// Every group of the range, oldest first.
    pub rows: Vec<MetricsRow>,
}

fn zoned(ms: i64, tz: &TimeZone) -> Result<Zoned> {
    Timestamp::from_millisecond(ms)
        .map(|t| t.to_zoned_datetime(tz.clone()))
        .map_err(|e| StorageError::InvalidQuery(format!("time {ms} ms is out of range: {e}")))
}

fn ms_of(z: &Zoned) -> i64 {
    z.timestamp().as_millisecond()
}

/// The start of the group holding `ms`.
fn group_start(ms: i64, grouping: Grouping, tz: &TimeZone) -> Result<i64> {
    let five = BucketWidth::FiveMinutes;
    let bad = |e: jiff::Error| StorageError::InvalidQuery(format!("time zone arithmetic: {e}"));
    Ok(match grouping {
        // Every offset in use is a multiple of 15 minutes: five-minute groups are the same in UTC.
        Grouping::FiveMinutes | Grouping::Total => five.start_of(ms),
        Grouping::Hour => {
            let z = zoned(ms, tz)?;
            let start = z
                .with()
                .minute(0)
                .second(0)
                .subsec_nanosecond(0)
                .build()
                .map_err(bad)?;
            ms_of(&start)
        }
        Grouping::Day => ms_of(&zoned(ms, tz)?.start_of_day().map_err(bad)?),
    })
}

/// The end of the group starting at `start`.
fn group_end(start: i64, grouping: Grouping, tz: &TimeZone) -> Result<i64> {
    let bad = |e: jiff::Error| StorageError::InvalidQuery(format!("time zone arithmetic: {e}"));
    Ok(match grouping {
        Grouping::FiveMinutes | Grouping::Total => start + BucketWidth::FiveMinutes.ms(),
        Grouping::Hour => start + BucketWidth::Hour.ms(),
        Grouping::Day => ms_of(&zoned(start, tz)?.checked_add(1.day()).map_err(bad)?),
    })
}

/// The groups of a query: `(start, end)`, oldest first, covering the widened range.
pub fn groups(query: &MetricsQuery) -> Result<Vec<(i64, i64)>> {
    if query.to_ms <= query.from_ms {
        return Err(StorageError::InvalidQuery(format!(
            "the range is empty: from {} ms is not before to {} ms",
            query.from_ms, query.to_ms
        )));
    }
    let tz = &query.time_zone;
    let from = group_start(query.from_ms, query.grouping, tz)?;
    if query.grouping == Grouping::Total {
        let last = group_start(query.to_ms - 1, query.grouping, tz)?;
        return Ok(vec![(from, group_end(last, query.grouping, tz)?)]);
    }
    let mut out = Vec::new();
    let mut start = from;
    while start < query.to_ms {
        if out.len() == MAX_REPORT_ROWS {
            return Err(StorageError::InvalidQuery(format!(
                "the range holds more than {MAX_REPORT_ROWS} groups of {}: choose a coarser grouping or a shorter range",
                query.grouping.as_str()
            )));
        }
        let end = group_end(start, query.grouping, tz)?;
        out.push((start, end));
        start = end;
    }
    Ok(out)
}

/// The stored width a report sums: hours where every group boundary is a UTC hour, else five minutes.
pub fn source_width(query: &MetricsQuery, groups: &[(i64, i64)]) -> BucketWidth {
    let hour = BucketWidth::Hour.ms();
    let aligned = query.grouping != Grouping::FiveMinutes
        && groups
            .iter()
            .all(|(s, e)| s.rem_euclid(hour) == 0 && e.rem_euclid(hour) == 0);
    if aligned {
        BucketWidth::Hour
    } else {
        BucketWidth::FiveMinutes
    }
}

/// Builds the report from the buckets of `width` stored in the groups' span (any order).
pub fn build(
    query: &MetricsQuery,
    groups: &[(i64, i64)],
    width: BucketWidth,
    buckets: &[StoredBucket],
) -> Result<MetricsReport> {
    let mut merged: Vec<BTreeMap<String, MetricBucket>> = vec![BTreeMap::new(); groups.len()];
    for b in buckets {
        if b.width != width {
            continue;
        }
        let i = groups.partition_point(|(_, end)| *end <= b.start_ms);
        if i < groups.len() && groups[i].0 <= b.start_ms {
            merged[i]
                .entry(b.camera_id.clone())
                .or_default()
                .merge(&b.bucket);
        }
    }
    let mut rows = Vec::with_capacity(groups.len());
    for ((start, end), cameras) in groups.iter().zip(merged) {
        let length = (end - start) as f64;
        let mut row = MetricsRow {
            start_ms: *start,
            end_ms: *end,
            start: zoned(*start, &query.time_zone)?
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string(),
            people_in: 0,
            people_out: 0,
            people: 0,
            visits: 0,
            mean_people: 0.0,
            cameras: Vec::new(),
            lines: Vec::new(),
            zones: Vec::new(),
            products: Vec::new(),
        };
        let mut products: BTreeMap<String, u64> = BTreeMap::new();
        for (camera, b) in cameras {
            let mean = b.people_ms as f64 / length;
            row.people += b.people;
            row.mean_people += mean;
            row.cameras.push(CameraRow {
                camera_id: camera.clone(),
                people: b.people,
                mean_people: mean,
                peak_people: b.peak_people,
            });
            for (id, l) in &b.lines {
                row.people_in += l.people_in;
                row.people_out += l.people_out;
                row.lines.push(LineRow {
                    camera_id: camera.clone(),
                    line_id: id.clone(),
                    people_in: l.people_in,
                    people_out: l.people_out,
                });
            }
            for (id, z) in &b.zones {
                row.visits += z.visits;
                row.zones.push(ZoneRow {
                    camera_id: camera.clone(),
                    zone_id: id.clone(),
                    visits: z.visits,
                    dwelt: z.dwelt,
                    exits: z.exits,
                    dwell_p50_ms: z.dwell.quantile(0.5),
                    dwell_p90_ms: z.dwell.quantile(0.9),
                    dwell_total_ms: z.dwell_total_ms,
                    mean_people: z.people_ms as f64 / length,
                    peak_people: z.peak_people,
                });
            }
            for (id, n) in &b.products {
                *products.entry(id.clone()).or_default() += n;
            }
        }
        row.products = products
            .into_iter()
            .map(|(product_id, visits)| ProductRow { product_id, visits })
            .collect();
        rows.push(row);
    }
    Ok(MetricsReport {
        grouping: query.grouping,
        time_zone: query.time_zone.iana_name().unwrap_or("UTC").to_owned(),
        source_width: width,
        from_ms: groups.first().map_or(query.from_ms, |g| g.0),
        to_ms: groups.last().map_or(query.to_ms, |g| g.1),
        rows,
    })
}

/// A UTC time as text in a `strftime` format (e.g. `%Y-%m-%d %H:%M`); the number of ms when it lies
/// outside what a calendar writes.
pub fn utc(ms: i64, format: &str) -> String {
    Timestamp::from_millisecond(ms)
        .map(|t| t.strftime(format).to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// The time zone a name stands for (an IANA name such as `Europe/Paris`, or `UTC`).
pub fn time_zone(name: &str) -> Result<TimeZone> {
    TimeZone::get(name).map_err(|e| {
        StorageError::InvalidQuery(format!(
            "unknown time zone {name:?} ({e}): use an IANA name such as Europe/Paris or UTC"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::LineCounts;

    fn query(grouping: Grouping, tz: &str, from_ms: i64, to_ms: i64) -> MetricsQuery {
        MetricsQuery {
            camera_id: None,
            from_ms,
            to_ms,
            grouping,
            time_zone: time_zone(tz).unwrap(),
        }
    }

    const DAY: i64 = 86_400_000;
    const HOUR: i64 = 3_600_000;

    #[test]
    fn days_follow_the_time_zone_and_its_daylight_saving() {
        // 2026-03-29 is the day Europe/Paris moves from +01:00 to +02:00: 23 hours long.
        let march_28 = Timestamp::from_second(1_774_652_400)
            .unwrap()
            .as_millisecond(); // 2026-03-28T00:00+01:00
        let q = query(
            Grouping::Day,
            "Europe/Paris",
            march_28 + HOUR,
            march_28 + 71 * HOUR,
        );
        let g = groups(&q).unwrap();
        assert_eq!(g.len(), 3);
        assert_eq!(g[0].0, march_28, "widened to local midnight");
        assert_eq!(g[1].1 - g[1].0, 23 * HOUR);
        assert_eq!(source_width(&q, &g), BucketWidth::Hour);
        // Kolkata is +05:30: its hours start at half past a UTC hour.
        let q = query(Grouping::Hour, "Asia/Kolkata", 0, 2 * HOUR);
        let g = groups(&q).unwrap();
        assert_eq!(g[0].0, -HOUR / 2);
        assert_eq!(source_width(&q, &g), BucketWidth::FiveMinutes);
    }

    #[test]
    fn empty_groups_are_rows_of_zeros_and_buckets_land_in_their_group() {
        let q = query(Grouping::Hour, "UTC", 0, 3 * HOUR);
        let g = groups(&q).unwrap();
        let mut b = MetricBucket::default();
        b.lines.insert(
            "door".into(),
            LineCounts {
                people_in: 3,
                people_out: 1,
            },
        );
        b.people_ms = 1_800_000;
        let stored = |start_ms, camera: &str| StoredBucket {
            camera_id: camera.into(),
            width: BucketWidth::Hour,
            start_ms,
            bucket: b.clone(),
        };
        let r = build(
            &q,
            &g,
            BucketWidth::Hour,
            &[stored(2 * HOUR, "a"), stored(2 * HOUR, "b")],
        )
        .unwrap();
        assert_eq!(r.rows.len(), 3);
        assert_eq!(r.rows[0].people_in, 0);
        assert_eq!(r.rows[2].people_in, 6);
        assert_eq!(r.rows[2].lines.len(), 2);
        assert!(
            (r.rows[2].mean_people - 1.0).abs() < 1e-9,
            "0.5 per camera, summed"
        );
        assert_eq!(r.rows[2].start, "1970-01-01T02:00:00+00:00");
    }

    #[test]
    fn a_range_too_long_for_its_grouping_is_refused_with_what_to_do() {
        let q = query(Grouping::FiveMinutes, "UTC", 0, 365 * DAY);
        let e = groups(&q).unwrap_err().to_string();
        assert!(e.contains("coarser grouping"), "{e}");
        assert!(time_zone("Mars/Olympus")
            .unwrap_err()
            .to_string()
            .contains("IANA"));
    }
}
