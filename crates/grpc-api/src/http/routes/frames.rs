//! `POST /api/v1/cctv/frames`: camera frames as JSON (base64) or a multipart form, submitted to ingest.

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use base64::Engine as _;
use tonic::Code;

use super::shared::{or_empty, Errors, Result};
use crate::http::dto;
use crate::http::extract::Json;
use crate::http::{time, ApiError, HttpApi};
use crate::proto;

/// The multipart form of `POST /api/v1/cctv/frames` (for the OpenAPI document).
#[derive(utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct FramesForm {
    organization_id: String,
    camera_id: String,
    session_id: Option<String>,
    /// Index of the next `frame` part.
    frame_index: u64,
    /// Capture time of the next `frame` part (RFC 3339 or ms); absent means now.
    captured_at: Option<String>,
    /// The encoded image, `image/jpeg` or `image/png`.
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    frame: String,
}

/// Submits camera frames: the same validation, limits, idempotent frame indexes and outcomes as the
/// gRPC stream, answered once every outcome is durable.
#[utoipa::path(
    post,
    path = "/api/v1/cctv/frames",
    tag = "cctv",
    request_body(content(
        (dto::SubmitFrames = "application/json"),
        (FramesForm = "multipart/form-data")
    )),
    responses((status = 200, description = "One ack per frame, in order", body = dto::FrameAcks), Errors),
    security(("bearer" = []))
)]
pub(super) async fn submit_frames(
    State(api): State<HttpApi>,
    headers: HeaderMap,
    request: Request,
) -> Result<axum::Json<dto::FrameAcks>> {
    let multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let body = if multipart {
        frames_from_form(Multipart::from_request(request, &()).await?).await?
    } else {
        let Json(body) = Json::<dto::SubmitFrames>::from_request(request, &()).await?;
        SubmittedFrames::from_json(body)?
    };
    let max = api.options.max_frame_bytes;
    let session_id = or_empty(body.session_id);
    let mut frames = Vec::with_capacity(body.frames.len());
    for f in body.frames {
        if f.data.len() > max {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                Code::ResourceExhausted,
                format!(
                    "frame {} is {} bytes, over pipeline.limits.max_frame_bytes ({max})",
                    f.frame_index,
                    f.data.len()
                ),
            ));
        }
        frames.push(proto::Frame {
            organization_id: body.organization_id.clone(),
            camera_id: body.camera_id.clone(),
            session_id: session_id.clone(),
            frame_index: f.frame_index,
            captured_at_ms: match f.captured_at {
                Some(t) => t.ms("capturedAt").map_err(ApiError::invalid)?,
                None => now_ms(),
            },
            data: f.data,
            format: f.format.proto(),
        });
    }
    let internal = api.ingest_internal();
    let request = api.request(&headers, &body.organization_id, internal, frames)?;
    let acks = api.services()?.ingest.submit_frames(request).await?;
    Ok(axum::Json(dto::FrameAcks {
        acks: acks.into_iter().map(Into::into).collect(),
    }))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The frames of a `POST /api/v1/cctv/frames` request, whichever form its body took, with their bytes
/// decoded.
struct SubmittedFrames {
    organization_id: String,
    camera_id: String,
    session_id: Option<String>,
    frames: Vec<FramePart>,
}

/// One frame of a [`SubmittedFrames`].
struct FramePart {
    frame_index: u64,
    captured_at: Option<time::Instant>,
    format: dto::ImageFormat,
    data: Vec<u8>,
}

impl SubmittedFrames {
    /// The JSON body's frames, their base64 data decoded.
    fn from_json(body: dto::SubmitFrames) -> Result<SubmittedFrames> {
        let frames = body
            .frames
            .into_iter()
            .map(|f| {
                let data = base64::engine::general_purpose::STANDARD
                    .decode(f.data.as_bytes())
                    .map_err(|_| {
                        ApiError::invalid(format!(
                            "frame {}: data is not valid base64",
                            f.frame_index
                        ))
                    })?;
                Ok(FramePart {
                    frame_index: f.frame_index,
                    captured_at: f.captured_at,
                    format: f.format,
                    data,
                })
            })
            .collect::<Result<_>>()?;
        Ok(SubmittedFrames {
            organization_id: body.organization_id,
            camera_id: body.camera_id,
            session_id: body.session_id,
            frames,
        })
    }
}

/// The frames of a multipart form, their bytes taken as sent (frames are at most `max_frame_bytes`).
async fn frames_from_form(mut form: Multipart) -> Result<SubmittedFrames> {
    let mut organization_id = None;
    let mut camera_id = None;
    let mut session_id = None;
    let mut next_index: Option<u64> = None;
    let mut captured_at: Option<time::Instant> = None;
    let mut frames = Vec::new();
    while let Some(field) = form.next_field().await? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "frame" => {
                let format = match field.content_type() {
                    Some("image/jpeg") => dto::ImageFormat::Jpeg,
                    Some("image/png") => dto::ImageFormat::Png,
                    _ => {
                        return Err(ApiError::invalid(
                            "a frame part must be of type image/jpeg or image/png",
                        ))
                    }
                };
                let frame_index = next_index.take().ok_or_else(|| {
                    ApiError::invalid("each frame part must follow a frameIndex field")
                })?;
                let data = field.bytes().await?;
                frames.push(FramePart {
                    frame_index,
                    captured_at: captured_at.take(),
                    format,
                    data: data.into(),
                });
            }
            _ => {
                let value = field.text().await?;
                match name.as_str() {
                    "organizationId" => organization_id = Some(value),
                    "cameraId" => camera_id = Some(value),
                    "sessionId" => session_id = Some(value),
                    "frameIndex" => {
                        next_index = Some(value.trim().parse().map_err(|_| {
                            ApiError::invalid("frameIndex must be a non-negative integer")
                        })?)
                    }
                    "capturedAt" => captured_at = Some(time::Instant::Text(value)),
                    other => {
                        return Err(ApiError::invalid(format!("unknown form field {other:?}")))
                    }
                }
            }
        }
    }
    Ok(SubmittedFrames {
        organization_id: organization_id
            .ok_or_else(|| ApiError::invalid("the organizationId field is required"))?,
        camera_id: camera_id.ok_or_else(|| ApiError::invalid("the cameraId field is required"))?,
        session_id,
        frames,
    })
}
