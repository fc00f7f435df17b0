//! crow's HTTP/JSON API: the routes the services crow replaces were called on (`/api/v1/interactions/...`,
//! `/api/v1/cctv/...`) with their camelCase JSON, JSON routes for the rest of crow's RPCs, the OpenAPI
//! document (`/openapi.json`) and the web dashboard (`/`).
//!
//! Every handler turns its request into the gRPC request message, authenticates it with the same
//! [`Authenticator`](crate::auth::Authenticator) interceptor the gRPC services sit behind, and calls the same service implementation
//! ([`InteractionApi`](crate::interactions::InteractionApi), [`IngestApi`](crate::ingest::IngestApi), ...): one set of rules (tokens, roles, organizations, the gateway
//! key, validation, limits), not two. Errors are the services' sanitized statuses as JSON
//! `{"error": {"code", "message", "correlationId"}}` with the matching HTTP status.

mod api;
mod dashboard;
pub mod dto;
mod error;
mod extract;
pub mod openapi;
mod routes;
pub(crate) mod time;

pub use api::{HttpApi, HttpOptions, Services, ORGANIZATION_HEADER, STARTING};
pub use error::{ApiError, ErrorBody, ErrorDetail};

/// The axum router of every HTTP route and the OpenAPI document (merge it with the gRPC routes on one
/// port).
pub fn router(api: &HttpApi) -> axum::Router {
    routes::router(api.clone()).merge(openapi::router())
}
