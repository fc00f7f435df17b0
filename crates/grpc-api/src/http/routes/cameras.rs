//! Camera routes: list, get, upsert and delete a camera's zones, tripwires and masks.

use axum::extract::State;
use axum::http::HeaderMap;

use super::shared::{or_empty, Errors, Result};
use crate::fields::none_if_empty;
use crate::http::dto;
use crate::http::extract::{Json, Path, Query};
use crate::http::HttpApi;
use crate::proto;
use crate::proto::camera_service_server::CameraService;

/// The organization's configured cameras (zones, tripwires, masks).
#[utoipa::path(
    get,
    path = "/api/v1/organizations/{orgId}/cameras",
    tag = "cameras",
    params(("orgId" = String, Path, description = "Organization id"), dto::PageQuery),
    responses((status = 200, body = dto::CameraPage), Errors),
    security(("bearer" = []))
)]
pub(super) async fn list_cameras(
    State(api): State<HttpApi>,
    Path(org): Path<String>,
    Query(q): Query<dto::PageQuery>,
    headers: HeaderMap,
) -> Result<axum::Json<dto::CameraPage>> {
    let message = proto::ListCamerasRequest {
        organization_id: org.clone(),
        page_size: q.page_size.unwrap_or(0),
        page_token: or_empty(q.page_token),
    };
    let page = api
        .call(&headers, &org, false, message, |s, r| {
            s.cameras.list_cameras(r)
        })
        .await?;
    Ok(axum::Json(dto::CameraPage {
        cameras: page.cameras.into_iter().map(Into::into).collect(),
        next_page_token: none_if_empty(page.next_page_token),
    }))
}

/// One camera's configuration.
#[utoipa::path(
    get,
    path = "/api/v1/organizations/{orgId}/cameras/{cameraId}",
    tag = "cameras",
    params(
        ("orgId" = String, Path, description = "Organization id"),
        ("cameraId" = String, Path, description = "Camera id")
    ),
    responses((status = 200, body = dto::Camera), Errors),
    security(("bearer" = []))
)]
pub(super) async fn get_camera(
    State(api): State<HttpApi>,
    Path((org, camera_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<axum::Json<dto::Camera>> {
    let message = proto::GetCameraRequest {
        organization_id: org.clone(),
        camera_id,
    };
    let c = api
        .call(&headers, &org, false, message, |s, r| {
            s.cameras.get_camera(r)
        })
        .await?;
    Ok(axum::Json(c.into()))
}

/// Creates or replaces a camera's configuration. Role admin.
#[utoipa::path(
    put,
    path = "/api/v1/organizations/{orgId}/cameras/{cameraId}",
    tag = "cameras",
    params(
        ("orgId" = String, Path, description = "Organization id"),
        ("cameraId" = String, Path, description = "Camera id")
    ),
    request_body = dto::CameraConfig,
    responses((status = 200, body = dto::Camera), Errors),
    security(("bearer" = []))
)]
pub(super) async fn upsert_camera(
    State(api): State<HttpApi>,
    Path((org, camera_id)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<dto::CameraConfig>,
) -> Result<axum::Json<dto::Camera>> {
    let message = body.proto(&org, &camera_id);
    let c = api
        .call(&headers, &org, false, message, |s, r| {
            s.cameras.upsert_camera(r)
        })
        .await?;
    Ok(axum::Json(c.into()))
}

/// Removes a camera's configuration. Role admin.
#[utoipa::path(
    delete,
    path = "/api/v1/organizations/{orgId}/cameras/{cameraId}",
    tag = "cameras",
    params(
        ("orgId" = String, Path, description = "Organization id"),
        ("cameraId" = String, Path, description = "Camera id")
    ),
    responses((status = 200, body = dto::Deleted), Errors),
    security(("bearer" = []))
)]
pub(super) async fn delete_camera(
    State(api): State<HttpApi>,
    Path((org, camera_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<axum::Json<dto::Deleted>> {
    let message = proto::DeleteCameraRequest {
        organization_id: org.clone(),
        camera_id,
    };
    let r = api
        .call(&headers, &org, false, message, |s, r| {
            s.cameras.delete_camera(r)
        })
        .await?;
    Ok(axum::Json(dto::Deleted { deleted: r.deleted }))
}
