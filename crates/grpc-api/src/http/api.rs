//! [`HttpApi`]: the state every route shares (the services once the pipeline is up, the authenticator,
//! the options) and the one shape of a route's call: authenticate as the gRPC interceptor does, call
//! the service, take its answer.

use std::sync::{Arc, OnceLock};

use axum::http::HeaderMap;
use tonic::metadata::MetadataMap;
use tonic::service::Interceptor;

use super::error::ApiError;
use crate::auth::Authenticator;
use crate::{AnalysisApi, CameraApi, CatalogApi, IngestApi, InteractionApi};

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
    pub(super) options: HttpOptions,
    pub(super) closing: Arc<std::sync::atomic::AtomicBool>,
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

    pub(super) fn services(&self) -> Result<&Services, ApiError> {
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
    pub(super) fn request<T>(
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
    pub(super) async fn call<'a, T, R, F>(
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
    pub(super) fn ingest_internal(&self) -> bool {
        self.auth.ingest_is_internal()
    }
}
