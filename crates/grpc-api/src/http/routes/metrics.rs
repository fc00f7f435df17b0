//! Store metrics: people in and out, visits, dwell, occupancy and product visits per group of time.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};

use super::shared::{optional_ms, or_empty, Errors, Result};
use crate::http::dto;
use crate::http::extract::{Path, Query};
use crate::http::HttpApi;
use crate::proto;
use crate::proto::interaction_service_server::InteractionService;
use crate::store_metrics;

/// Store metrics measured from the track events of the organization's CCTV records, one row per group
/// of time (every group of the range; an empty hour is a row of zeros): people in and out per tripwire,
/// people first seen, zone visits and dwell (p50, p90, total), people in view and in each zone (mean,
/// peak), visits per product. `format=csv` answers `text/csv`.
#[utoipa::path(
    get,
    path = "/api/v1/organizations/{orgId}/metrics",
    tag = "interactions",
    params(("orgId" = String, Path, description = "Organization id"), dto::MetricsQuery),
    responses(
        (status = 200, body = dto::MetricsReport, description = "The report (JSON, or CSV with format=csv)"),
        Errors
    ),
    security(("bearer" = []))
)]
pub(super) async fn metrics(
    State(api): State<HttpApi>,
    Path(org): Path<String>,
    Query(q): Query<dto::MetricsQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let message = proto::GetMetricsRequest {
        organization_id: org.clone(),
        camera_id: or_empty(q.camera),
        from_ms: optional_ms(q.from.as_deref(), "from")?,
        to_ms: optional_ms(q.to.as_deref(), "to")?,
        grouping: q.by.map_or(proto::MetricsGrouping::Hour, |g| g.proto()) as i32,
        time_zone: or_empty(q.tz),
    };
    let report = api
        .call(&headers, &org, false, message, |s, r| {
            s.interactions.get_metrics(r)
        })
        .await?;
    Ok(match q.format.unwrap_or_default() {
        dto::MetricsFormat::Csv => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            store_metrics::csv(&report),
        )
            .into_response(),
        dto::MetricsFormat::Json => {
            axum::Json(dto::MetricsReport::new(org, report)).into_response()
        }
    })
}
