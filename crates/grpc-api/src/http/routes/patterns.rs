//! `GET .../patterns`: live CCTV pattern events as server-sent events.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt as _};

use super::shared::{or_empty, Errors, Result};
use crate::http::dto;
use crate::http::extract::{Path, Query};
use crate::http::{ApiError, ErrorBody, HttpApi};
use crate::proto;
use crate::proto::analysis_service_server::AnalysisService;

/// Live CCTV pattern events as server-sent events (`event: pattern`, data: a PatternEvent), as each
/// batch's interaction is written. A subscriber that falls too far behind gets `event: error` and the
/// stream ends (reconnect to go on).
#[utoipa::path(
    get,
    path = "/api/v1/organizations/{orgId}/patterns",
    tag = "interactions",
    params(("orgId" = String, Path, description = "Organization id"), dto::PatternQuery),
    responses(
        (status = 200, description = "text/event-stream of PatternEvent", content_type = "text/event-stream", body = dto::PatternEvent),
        Errors
    ),
    security(("bearer" = []))
)]
pub(super) async fn watch_patterns(
    State(api): State<HttpApi>,
    Path(org): Path<String>,
    Query(q): Query<dto::PatternQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = std::result::Result<Event, Infallible>>>> {
    let message = proto::WatchPatternsRequest {
        organization_id: org.clone(),
        camera_id: or_empty(q.camera_id),
    };
    let events = api
        .call(&headers, &org, false, message, |s, r| {
            s.analysis.watch_patterns(r)
        })
        .await?;
    let stream = events
        .map(|item| match item {
            Ok(e) => (
                Event::default()
                    .event("pattern")
                    .json_data(dto::PatternEvent::from(e))
                    .unwrap_or_default(),
                false,
            ),
            Err(status) => (
                Event::default()
                    .event("error")
                    .json_data(ErrorBody {
                        error: ApiError::from(status).detail().clone(),
                    })
                    .unwrap_or_default(),
                true,
            ),
        })
        // The error event is the last one.
        .scan(false, |ended, (event, last)| {
            let out = (!*ended).then_some(event);
            *ended |= last;
            futures::future::ready(out)
        })
        .map(Ok);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
