//! `GET /api/v1/health`: whether the server is serving (no token needed).

use axum::extract::State;
use axum::http::StatusCode;

use crate::http::dto;
use crate::http::HttpApi;

/// Whether the server is serving: started, not stopping, and its record store answers (no token
/// needed: it reveals readiness only).
#[utoipa::path(
    get,
    path = "/api/v1/health",
    tag = "system",
    responses(
        (status = 200, description = "Serving", body = dto::Health),
        (status = 503, description = "Starting, stopping, or the record store or NATS does not answer", body = dto::Health)
    )
)]
pub(super) async fn health(State(api): State<HttpApi>) -> (StatusCode, axum::Json<dto::Health>) {
    let status = match api.services() {
        Ok(services) => {
            let pipeline = services.interactions.pipeline();
            let answer =
                tokio::time::timeout(std::time::Duration::from_secs(2), pipeline.ready()).await;
            match answer {
                Ok(Ok(())) => "serving",
                // Which dependency failed; the details are in the node's log.
                Ok(Err(crow_actors::Unready::NatsDisconnected)) => "nats unavailable",
                _ => "storage unavailable",
            }
        }
        Err(_) if api.closing.load(std::sync::atomic::Ordering::Relaxed) => "stopping",
        Err(_) => "starting",
    };
    let code = if status == "serving" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        axum::Json(dto::Health {
            status: status.into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }),
    )
}
