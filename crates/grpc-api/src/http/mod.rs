//! crow's HTTP/JSON API: the routes the services crow replaces were called on (`/api/v1/interactions/...`,
//! `/api/v1/cctv/...`) with their camelCase JSON, JSON routes for the rest of crow's RPCs, the OpenAPI
//! document (`/openapi.json`) and the web dashboard (`/`).
//!
//! Every handler turns its request into the gRPC request message, authenticates it with the same
//! [`Authenticator`] interceptor the gRPC services sit behind, and calls the same service implementation
//! ([`InteractionApi`], [`IngestApi`], ...): one set of rules (tokens, roles, organizations, the gateway
//! key, validation, limits), not two. Errors are the services' sanitized statuses as JSON
//! `{"error": {"code", "message", "correlationId"}}` with the matching HTTP status.

mod dashboard;
pub mod dto;
mod error;
mod extract;
pub mod openapi;
mod routes;
pub(crate) mod time;

use std::sync::{Arc, OnceLock};

use axum::http::HeaderMap;
use tonic::metadata::MetadataMap;
use tonic::service::Interceptor;

use crate::auth::Authenticator;
use crate::{AnalysisApi, CameraApi, CatalogApi, IngestApi, InteractionApi};

pub use error::{ApiError, ErrorBody, ErrorDetail};

/// Header the seed's gateway sends with the caller's organization; when present it must name the
/// organization the request is about.
pub const ORGANIZATION_HEADER: &str = "x-organization-id";

/// What the HTTP routes answer before the pipeline is up (as the gRPC services do).
pub const STARTING: &str = "crow is starting (opening the database, loading models); retry shortly";

/// The service implementations the routes call, once the pipeline is up.
#[derive(Clone)]
pub struct Services {
    /// `crow.v1.IngestService`.
    pub ingest: IngestApi,
    /// `crow.v1.InteractionService`.
    pub interactions: InteractionApi,
    /// `crow.v1.CatalogService`.
    pub catalog: CatalogApi,
    /// `crow.v1.CameraService`.
    pub cameras: CameraApi,
    /// `crow.v1.AnalysisService`.
    pub analysis: AnalysisApi,
}

/// Options of the HTTP surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpOptions {
    /// Serve the web dashboard at `/`.
    pub dashboard: bool,
    /// Largest JSON request body, bytes (`pipeline.limits.max_message_bytes`).
    pub max_body_bytes: usize,
    /// Largest encoded frame, bytes (`pipeline.limits.max_frame_bytes`): `POST /api/v1/cctv/frames`
    /// takes one such frame, base64 encoded, plus its envelope.
    pub max_frame_bytes: usize,
}

impl HttpOptions {
    /// Largest body of `POST /api/v1/cctv/frames`.
    pub fn max_frames_body_bytes(&self) -> usize {
        (self.max_frame_bytes / 3 + 1)
            .saturating_mul(4)
            .saturating_add(64 * 1024)
    }
}

/// The HTTP/JSON API. Clone it freely: clones share the services, set once by [`HttpApi::ready`].
#[derive(Clone)]
pub struct HttpApi {
    services: Arc<OnceLock<Services>>,
    auth: Authenticator,
    options: HttpOptions,
    closing: Arc<std::sync::atomic::AtomicBool>,
}

impl HttpApi {
    /// Routes that authenticate with `auth` and answer `503` until [`HttpApi::ready`].
    pub fn new(auth: Authenticator, options: HttpOptions) -> HttpApi {
        HttpApi {
            services: Arc::default(),
            auth,
            options,
            closing: Arc::default(),
        }
    }

    /// Hands over the services: the routes start answering. A second call changes nothing.
    pub fn ready(&self, services: Services) {
        let _ = self.services.set(services);
    }

    /// Marks the server as shutting down: health answers `stopping` and new calls `503`.
    pub fn closing(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The axum router of every HTTP route (merge it with the gRPC routes on one port).
    pub fn router(&self) -> axum::Router {
        routes::router(self.clone()).merge(openapi::router())
    }

    fn services(&self) -> Result<&Services, ApiError> {
        if self.closing.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(ApiError::from(tonic::Status::unavailable(
                "crow is shutting down; retry on another server",
            )));
        }
        self.services
            .get()
            .ok_or_else(|| ApiError::from(tonic::Status::unavailable(STARTING)))
    }

    /// The gRPC request for `message`, authenticated from the HTTP headers exactly as the gRPC
    /// interceptor authenticates a call (`authorization: Bearer`, and the gateway key where the route
    /// is internal). `organization` is the organization the request is about: an
    /// `X-Organization-Id` header must name the same one.
    fn request<T>(
        &self,
        headers: &HeaderMap,
        organization: &str,
        internal: bool,
        message: T,
    ) -> Result<tonic::Request<T>, ApiError> {
        if let Some(given) = headers.get(ORGANIZATION_HEADER) {
            if given.as_bytes() != organization.as_bytes() {
                return Err(ApiError::from(tonic::Status::permission_denied(
                    "X-Organization-Id does not match the organization of the request",
                )));
            }
        }
        let metadata = MetadataMap::from_headers(headers.clone());
        let authenticated = self
            .auth
            .interceptor(internal)
            .call(tonic::Request::from_parts(
                metadata,
                tonic::Extensions::default(),
                (),
            ))
            .map_err(ApiError::from)?;
        let (metadata, extensions, ()) = authenticated.into_parts();
        Ok(tonic::Request::from_parts(metadata, extensions, message))
    }

    /// The shape every route shares: the caller's token checked for `organization` (see
    /// [`HttpApi::request`]), one call of the gRPC service `call` picks, and its answer's message.
    /// `503` while the server starts or stops.
    async fn call<'a, T, R, F>(
        &'a self,
        headers: &HeaderMap,
        organization: &str,
        internal: bool,
        message: T,
        call: impl FnOnce(&'a Services, tonic::Request<T>) -> F,
    ) -> Result<R, ApiError>
    where
        F: std::future::Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    {
        let services = self.services()?;
        let request = self.request(headers, organization, internal, message)?;
        Ok(call(services, request).await?.into_inner())
    }

    /// Whether the ingest routes need the gateway key (`auth.ingest_requires_gateway_key`).
    fn ingest_internal(&self) -> bool {
        self.auth.ingest_is_internal()
    }
}
