//! The HTTP routes. Each one builds the gRPC request, authenticates it ([`HttpApi::request`]) and calls
//! the gRPC service implementation; the answer is converted to its JSON shape ([`super::dto`]).
//!
//! ```text
//! mod.rs           router(): every route
//! shared.rs        what the routes share: Errors (the documented error responses), the result type,
//!                  optional strings and times of the query
//! interactions.rs  list (words or meaning), summary, create-interaction (outbox), get
//! metrics.rs       store metrics (JSON or CSV)
//! analyses.rs      analyze, ask, get an analysis
//! frames.rs        POST /api/v1/cctv/frames (JSON or multipart)
//! sessions.rs      create, get, close a session; its keyframes
//! catalog.rs       products: list, upsert, delete
//! dead_letters.rs  list, retry
//! cameras.rs       zones, tripwires, masks: list, get, upsert, delete
//! patterns.rs      live pattern events (server-sent events)
//! health.rs        health (no token)
//! ```

pub(super) mod analyses;
pub(super) mod cameras;
pub(super) mod catalog;
pub(super) mod dead_letters;
pub(super) mod frames;
pub(super) mod health;
pub(super) mod interactions;
pub(super) mod metrics;
pub(super) mod patterns;
pub(super) mod sessions;
mod shared;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use super::api::HttpApi;

/// Every route of the HTTP API.
pub(super) fn router(api: HttpApi) -> Router {
    let frames_limit = api.options.max_frames_body_bytes();
    let body_limit = api.options.max_body_bytes;
    let dashboard = api.options.dashboard;
    let mut router = Router::new()
        .route(
            "/api/v1/interactions/organization/{org_id}",
            get(interactions::list_interactions),
        )
        .route(
            "/api/v1/interactions/organization/{org_id}/summary",
            get(interactions::summary),
        )
        .route(
            "/api/v1/interactions/organization/{org_id}/analyze",
            post(analyses::analyze),
        )
        .route(
            "/api/v1/interactions/organization/{org_id}/ask",
            post(analyses::ask),
        )
        .route(
            "/api/v1/interactions/create-interaction",
            post(interactions::create_interaction),
        )
        .route(
            "/api/v1/cctv/frames",
            post(frames::submit_frames).layer(DefaultBodyLimit::max(frames_limit)),
        )
        .route("/api/v1/cctv/sessions", post(sessions::create_session))
        .route(
            "/api/v1/cctv/sessions/{session_id}",
            get(sessions::get_session),
        )
        .route(
            "/api/v1/organizations/{org_id}/interactions/{id}",
            get(interactions::get_interaction),
        )
        .route(
            "/api/v1/organizations/{org_id}/sessions/{session_id}",
            get(sessions::get_org_session),
        )
        .route(
            "/api/v1/organizations/{org_id}/sessions/{session_id}/close",
            post(sessions::close_session),
        )
        .route(
            "/api/v1/organizations/{org_id}/sessions/{session_id}/keyframes/{frame_index}",
            get(sessions::keyframe),
        )
        .route(
            "/api/v1/organizations/{org_id}/products",
            get(catalog::list_products).put(catalog::upsert_products),
        )
        .route(
            "/api/v1/organizations/{org_id}/products/{product_id}",
            axum::routing::delete(catalog::delete_product),
        )
        .route(
            "/api/v1/organizations/{org_id}/dead-letters",
            get(dead_letters::list_dead_letters),
        )
        .route(
            "/api/v1/organizations/{org_id}/dead-letters/{id}/retry",
            post(dead_letters::retry_dead_letter),
        )
        .route(
            "/api/v1/organizations/{org_id}/analyses/{analysis_id}",
            get(analyses::get_analysis),
        )
        .route(
            "/api/v1/organizations/{org_id}/patterns",
            get(patterns::watch_patterns),
        )
        .route(
            "/api/v1/organizations/{org_id}/metrics",
            get(metrics::metrics),
        )
        .route(
            "/api/v1/organizations/{org_id}/cameras",
            get(cameras::list_cameras),
        )
        .route(
            "/api/v1/organizations/{org_id}/cameras/{camera_id}",
            get(cameras::get_camera)
                .put(cameras::upsert_camera)
                .delete(cameras::delete_camera),
        )
        .route("/api/v1/health", get(health::health))
        .layer(DefaultBodyLimit::max(body_limit));
    if dashboard {
        router = router.merge(super::dashboard::router());
    }
    router.with_state(api)
}
