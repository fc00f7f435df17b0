//! Ingest session routes: create, get (with or without the organization in the path), close, and a
//! session's keyframes.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::shared::{Errors, Result};
use crate::http::dto;
use crate::http::extract::{Json, Path, Query};
use crate::http::{ApiError, HttpApi, ORGANIZATION_HEADER};
use crate::proto;
use crate::proto::ingest_service_server::IngestService;

/// Opens an ingest session (one camera-hour) explicitly; frames may also open one implicitly.
#[utoipa::path(
    post,
    path = "/api/v1/cctv/sessions",
    tag = "cctv",
    request_body = dto::CreateSession,
    responses((status = 201, body = dto::Session), Errors),
    security(("bearer" = []))
)]
pub(super) async fn create_session(
    State(api): State<HttpApi>,
    headers: HeaderMap,
    Json(body): Json<dto::CreateSession>,
) -> Result<(StatusCode, axum::Json<dto::Session>)> {
    let message = proto::CreateSessionRequest {
        organization_id: body.organization_id.clone(),
        camera_id: body.camera_id,
    };
    let internal = api.ingest_internal();
    let s = api
        .call(
            &headers,
            &body.organization_id,
            internal,
            message,
            |s, r| s.ingest.create_session(r),
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(s.into())))
}

async fn session_of(
    api: &HttpApi,
    headers: &HeaderMap,
    org: String,
    session_id: String,
) -> Result<axum::Json<dto::Session>> {
    let message = proto::GetSessionRequest {
        organization_id: org.clone(),
        session_id,
    };
    let s = api
        .call(headers, &org, false, message, |s, r| {
            s.ingest.get_session(r)
        })
        .await?;
    Ok(axum::Json(s.into()))
}

/// The organization of a route whose path does not name one: `organizationId` in the query or the
/// `X-Organization-Id` header.
fn organization_of(query: dto::OrganizationQuery, headers: &HeaderMap) -> Result<String> {
    query
        .organization_id
        .or_else(|| {
            headers
                .get(ORGANIZATION_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .ok_or_else(|| {
            ApiError::invalid(
                "the organization is required: the organizationId query parameter or the X-Organization-Id header",
            )
        })
}

/// A session with its counters. The organization comes from the `organizationId` query parameter or
/// the `X-Organization-Id` header.
#[utoipa::path(
    get,
    path = "/api/v1/cctv/sessions/{sessionId}",
    tag = "cctv",
    params(("sessionId" = String, Path, description = "Session id"), dto::OrganizationQuery),
    responses((status = 200, body = dto::Session), Errors),
    security(("bearer" = []))
)]
pub(super) async fn get_session(
    State(api): State<HttpApi>,
    Path(session_id): Path<String>,
    Query(q): Query<dto::OrganizationQuery>,
    headers: HeaderMap,
) -> Result<axum::Json<dto::Session>> {
    let org = organization_of(q, &headers)?;
    session_of(&api, &headers, org, session_id).await
}

/// A session of the organization with its counters.
#[utoipa::path(
    get,
    path = "/api/v1/organizations/{orgId}/sessions/{sessionId}",
    tag = "cctv",
    params(
        ("orgId" = String, Path, description = "Organization id"),
        ("sessionId" = String, Path, description = "Session id")
    ),
    responses((status = 200, body = dto::Session), Errors),
    security(("bearer" = []))
)]
pub(super) async fn get_org_session(
    State(api): State<HttpApi>,
    Path((org, session_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<axum::Json<dto::Session>> {
    session_of(&api, &headers, org, session_id).await
}

/// Closes a session: pending descriptions finish, the last batch is analysed. Idempotent.
#[utoipa::path(
    post,
    path = "/api/v1/organizations/{orgId}/sessions/{sessionId}/close",
    tag = "cctv",
    params(
        ("orgId" = String, Path, description = "Organization id"),
        ("sessionId" = String, Path, description = "Session id")
    ),
    responses((status = 200, body = dto::Session), Errors),
    security(("bearer" = []))
)]
pub(super) async fn close_session(
    State(api): State<HttpApi>,
    Path((org, session_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<axum::Json<dto::Session>> {
    let message = proto::CloseSessionRequest {
        organization_id: org.clone(),
        session_id,
    };
    let internal = api.ingest_internal();
    let s = api
        .call(&headers, &org, internal, message, |s, r| {
            s.ingest.close_session(r)
        })
        .await?;
    Ok(axum::Json(s.into()))
}

/// The keyframe of a described frame, as the camera sent it (evidence of the interaction whose batch
/// holds it). Kept under retention limits: 404 once it is gone.
#[utoipa::path(
    get,
    path = "/api/v1/organizations/{orgId}/sessions/{sessionId}/keyframes/{frameIndex}",
    tag = "cctv",
    params(
        ("orgId" = String, Path, description = "Organization id"),
        ("sessionId" = String, Path, description = "Session id"),
        ("frameIndex" = u64, Path, description = "Frame index within the session")
    ),
    responses(
        (status = 200, description = "The image", content(
            (Vec<u8> = "image/jpeg"),
            (Vec<u8> = "image/png")
        )),
        Errors
    ),
    security(("bearer" = []))
)]
pub(super) async fn keyframe(
    State(api): State<HttpApi>,
    Path((org, session_id, frame_index)): Path<(String, String, u64)>,
    headers: HeaderMap,
) -> Result<Response> {
    let message = proto::GetKeyframeRequest {
        organization_id: org.clone(),
        session_id,
        frame_index,
    };
    let k = api
        .call(&headers, &org, false, message, |s, r| {
            s.ingest.get_keyframe(r)
        })
        .await?;
    let content_type = if k.format == proto::ImageFormat::Png as i32 {
        "image/png"
    } else {
        "image/jpeg"
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            // Evidence never changes once stored; it is the organization's, so only private caches.
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        k.data,
    )
        .into_response())
}
