//! Store metrics: the query of `GET /api/v1/organizations/{orgId}/metrics` and the report it returns.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::proto;

/// How a report groups time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
pub enum MetricsGrouping {
    /// Five minutes.
    #[serde(rename = "5m")]
    FiveMinutes,
    /// Hours of the time zone.
    #[serde(rename = "hour")]
    Hour,
    /// Days of the time zone.
    #[serde(rename = "day")]
    Day,
    /// One row for the whole range.
    #[serde(rename = "total")]
    Total,
}

impl MetricsGrouping {
    /// Its proto value.
    pub fn proto(self) -> proto::MetricsGrouping {
        match self {
            MetricsGrouping::FiveMinutes => proto::MetricsGrouping::FiveMinutes,
            MetricsGrouping::Hour => proto::MetricsGrouping::Hour,
            MetricsGrouping::Day => proto::MetricsGrouping::Day,
            MetricsGrouping::Total => proto::MetricsGrouping::Total,
        }
    }

    fn from_proto(value: i32) -> MetricsGrouping {
        match proto::MetricsGrouping::try_from(value) {
            Ok(proto::MetricsGrouping::FiveMinutes) => MetricsGrouping::FiveMinutes,
            Ok(proto::MetricsGrouping::Day) => MetricsGrouping::Day,
            Ok(proto::MetricsGrouping::Total) => MetricsGrouping::Total,
            _ => MetricsGrouping::Hour,
        }
    }
}

/// The format of a metrics report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MetricsFormat {
    /// The JSON report.
    #[default]
    Json,
    /// CSV: one line per group, a column per figure (`text/csv`).
    Csv,
}

/// Query of `GET /api/v1/organizations/{orgId}/metrics`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// One camera; default every camera of the organization.
    pub camera: Option<String>,
    /// From (RFC 3339 or ms since the Unix epoch); default a day before `to`.
    pub from: Option<String>,
    /// To, exclusive (RFC 3339 or ms since the Unix epoch); default now.
    pub to: Option<String>,
    /// Grouping: `5m`, `hour` (default), `day` or `total`.
    pub by: Option<MetricsGrouping>,
    /// IANA time zone of hours and days (e.g. `Europe/Paris`); default UTC.
    pub tz: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<MetricsFormat>,
}

/// People through one tripwire in one group.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LineMetrics {
    pub camera_id: String,
    pub line_id: String,
    pub people_in: u64,
    pub people_out: u64,
}

/// One zone in one group.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZoneMetrics {
    pub camera_id: String,
    pub zone_id: String,
    /// Visits begun.
    pub visits: u64,
    /// Visits that reached the zone's minimum dwell.
    pub dwelt: u64,
    /// Visits ended: the dwell figures are theirs.
    pub exits: u64,
    /// Median visit length, ms (within 2.4 %).
    pub dwell_p50_ms: Option<i64>,
    /// 90th percentile visit length, ms.
    pub dwell_p90_ms: Option<i64>,
    pub dwell_total_ms: u64,
    /// Mean people in the zone over the group (a queue's mean length).
    pub mean_people: f64,
    /// The most people in the zone at once.
    pub peak_people: u32,
}

/// One camera in one group.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CameraMetrics {
    pub camera_id: String,
    /// People first seen.
    pub people: u64,
    /// Mean people in view over the group.
    pub mean_people: f64,
    /// The most people in view at once.
    pub peak_people: u32,
}

/// Visits of one product in one group.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductMetrics {
    pub product_id: String,
    /// Dwells in zones mapped to it.
    pub visits: u64,
}

/// One group of time.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsRow {
    pub start_ms: i64,
    pub end_ms: i64,
    /// Start in the report's time zone, RFC 3339.
    pub start: String,
    /// Crossings in, all tripwires.
    pub people_in: u64,
    /// Crossings out, all tripwires.
    pub people_out: u64,
    /// People first seen, all cameras.
    pub people: u64,
    /// Zone visits begun, all zones.
    pub visits: u64,
    /// Mean people in view, summed over cameras.
    pub mean_people: f64,
    pub cameras: Vec<CameraMetrics>,
    pub lines: Vec<LineMetrics>,
    pub zones: Vec<ZoneMetrics>,
    pub products: Vec<ProductMetrics>,
}

/// A metrics report: every group of the (widened) range, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsReport {
    pub organization_id: String,
    pub grouping: MetricsGrouping,
    pub time_zone: String,
    pub from_ms: i64,
    pub to_ms: i64,
    /// The stored bucket width the groups were summed from, in minutes (5 or 60).
    pub source_minutes: u32,
    pub rows: Vec<MetricsRow>,
}

impl MetricsReport {
    /// The report of `organization_id`.
    pub fn new(organization_id: String, r: proto::MetricsReport) -> MetricsReport {
        MetricsReport {
            organization_id,
            grouping: MetricsGrouping::from_proto(r.grouping),
            time_zone: r.time_zone,
            from_ms: r.from_ms,
            to_ms: r.to_ms,
            source_minutes: r.source_minutes,
            rows: r
                .rows
                .into_iter()
                .map(|row| MetricsRow {
                    start_ms: row.start_ms,
                    end_ms: row.end_ms,
                    start: row.start,
                    people_in: row.people_in,
                    people_out: row.people_out,
                    people: row.people,
                    visits: row.visits,
                    mean_people: row.mean_people,
                    cameras: row
                        .cameras
                        .into_iter()
                        .map(|c| CameraMetrics {
                            camera_id: c.camera_id,
                            people: c.people,
                            mean_people: c.mean_people,
                            peak_people: c.peak_people,
                        })
                        .collect(),
                    lines: row
                        .lines
                        .into_iter()
                        .map(|l| LineMetrics {
                            camera_id: l.camera_id,
                            line_id: l.line_id,
                            people_in: l.people_in,
                            people_out: l.people_out,
                        })
                        .collect(),
                    zones: row
                        .zones
                        .into_iter()
                        .map(|z| ZoneMetrics {
                            camera_id: z.camera_id,
                            zone_id: z.zone_id,
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
                        .into_iter()
                        .map(|p| ProductMetrics {
                            product_id: p.product_id,
                            visits: p.visits,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}
