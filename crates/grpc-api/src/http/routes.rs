//! The HTTP routes. Each one builds the gRPC request, authenticates it ([`HttpApi::request`]) and calls
//! the gRPC service implementation; the answer is converted to its JSON shape ([`super::dto`]).

use std::convert::Infallible;

use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use futures::{Stream, StreamExt as _};
use tonic::Code;

use super::dto::{self, source_proto};
use super::extract::{Json, Path, Query};
use super::{time, ApiError, ErrorBody, HttpApi};
use crate::fields::none_if_empty;
use crate::proto;
use crate::proto::analysis_service_server::AnalysisService;
use crate::proto::camera_service_server::CameraService;
use crate::proto::catalog_service_server::CatalogService;
use crate::proto::ingest_service_server::IngestService;
use crate::proto::interaction_service_server::InteractionService;

type Result<T> = std::result::Result<T, ApiError>;

/// Every route of the HTTP API.
pub(super) fn router(api: HttpApi) -> Router {
    let frames_limit = api.options.max_frames_body_bytes();
    let body_limit = api.options.max_body_bytes;
    let dashboard = api.options.dashboard;
    let mut router = Router::new()
        .route(
            "/api/v1/interactions/organization/{org_id}",
            get(list_interactions),
        )
        .route(
            "/api/v1/interactions/organization/{org_id}/summary",
            get(summary),
        )
        .route(
            "/api/v1/interactions/organization/{org_id}/analyze",
            post(analyze),
        )
        .route("/api/v1/interactions/organization/{org_id}/ask", post(ask))
        .route(
            "/api/v1/interactions/create-interaction",
            post(create_interaction),
        )
        .route(
            "/api/v1/cctv/frames",
            post(submit_frames).layer(DefaultBodyLimit::max(frames_limit)),
        )
        .route("/api/v1/cctv/sessions", post(create_session))
        .route("/api/v1/cctv/sessions/{session_id}", get(get_session))
        .route(
            "/api/v1/organizations/{org_id}/interactions/{id}",
            get(get_interaction),
        )
        .route(
            "/api/v1/organizations/{org_id}/sessions/{session_id}",
            get(get_org_session),
        )
        .route(
            "/api/v1/organizations/{org_id}/sessions/{session_id}/close",
            post(close_session),
        )
        .route(
            "/api/v1/organizations/{org_id}/sessions/{session_id}/keyframes/{frame_index}",
            get(keyframe),
        )
        .route(
            "/api/v1/organizations/{org_id}/products",
            get(list_products).put(upsert_products),
        )
        .route(
            "/api/v1/organizations/{org_id}/products/{product_id}",
            axum::routing::delete(delete_product),
        )
        .route(
            "/api/v1/organizations/{org_id}/dead-letters",
            get(list_dead_letters),
        )
        .route(
            "/api/v1/organizations/{org_id}/dead-letters/{id}/retry",
            post(retry_dead_letter),
        )
        .route(
            "/api/v1/organizations/{org_id}/analyses/{analysis_id}",
            get(get_analysis),
        )
        .route(
            "/api/v1/organizations/{org_id}/patterns",
            get(watch_patterns),
        )
        .route("/api/v1/organizations/{org_id}/cameras", get(list_cameras))
        .route(
            "/api/v1/organizations/{org_id}/cameras/{camera_id}",
            get(get_camera).put(upsert_camera).delete(delete_camera),
        )
        .route("/api/v1/health", get(health))
        .layer(DefaultBodyLimit::max(body_limit));
    if dashboard {
        router = router.merge(super::dashboard::router());
    }
    router.with_state(api)
}

/// The documented error responses of a route that needs a token.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(super) enum Errors {
    /// The request is malformed or breaks a rule (the message names the field and the rule).
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No token, or an invalid or expired one.
    #[response(status = 401)]
    Unauthenticated(ErrorBody),
    /// The token's role or organizations do not allow it, or `X-Organization-Id` names another
    /// organization.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No such resource in the organization.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The body is over the size limit.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body is not JSON (or not the declared type).
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// Over a rate or concurrency limit; retry later (`Retry-After`).
    #[response(status = 429)]
    TooManyRequests(ErrorBody),
    /// An internal error; quote its correlation id.
    #[response(status = 500)]
    Internal(ErrorBody),
    /// Starting up or shutting down; retry shortly (`Retry-After`).
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// An absent optional string as the empty string, which means "not given" in the proto messages.
fn or_empty(s: Option<String>) -> String {
    s.unwrap_or_default()
}

fn optional_ms(value: Option<&str>, field: &str) -> Result<i64> {
    value
        .filter(|v| !v.is_empty())
        .map_or(Ok(0), |v| time::parse(v, field))
        .map_err(ApiError::invalid)
}

fn instant_ms(value: Option<&time::Instant>, field: &str) -> Result<i64> {
    value
        .map_or(Ok(0), |v| v.ms(field))
        .map_err(ApiError::invalid)
}

/// The organization of a route whose path does not name one: `organizationId` in the query or the
/// `X-Organization-Id` header.
fn organization_of(query: dto::OrganizationQuery, headers: &HeaderMap) -> Result<String> {
    query
        .organization_id
        .or_else(|| {
            headers
                .get(super::ORGANIZATION_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .ok_or_else(|| {
            ApiError::invalid(
                "the organization is required: the organizationId query parameter or the X-Organization-Id header",
            )
        })
}

/// Lists an organization's interactions, newest first, one page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/interactions/organization/{orgId}",
    tag = "interactions",
    params(("orgId" = String, Path, description = "Organization id"), dto::ListQuery),
    responses((status = 200, body = dto::InteractionPage), Errors),
    security(("bearer" = []))
)]
async fn list_interactions(
    State(api): State<HttpApi>,
    Path(org): Path<String>,
    Query(q): Query<dto::ListQuery>,
    headers: HeaderMap,
) -> Result<axum::Json<dto::InteractionPage>> {
    let message = proto::ListInteractionsRequest {
        organization_id: org.clone(),
        page_size: q.page_size.unwrap_or(0),
        page_token: or_empty(q.page_token),
        source_type: source_proto(q.source_type),
        q: or_empty(q.q),
        from_ms: optional_ms(q.from.as_deref(), "from")?,
        to_ms: optional_ms(q.to.as_deref(), "to")?,
        meaning: or_empty(q.meaning),
    };
    let page = api
        .call(&headers, &org, false, message, |s, r| {
            s.interactions.list_interactions(r)
        })
        .await?;
    Ok(axum::Json(dto::InteractionPage {
        interactions: page.interactions.into_iter().map(Into::into).collect(),
        matches: page.matches.into_iter().map(Into::into).collect(),
        next_page_token: none_if_empty(page.next_page_token),
    }))
}

/// Counts an organization's interactions per source.
#[utoipa::path(
    get,
    path = "/api/v1/interactions/organization/{orgId}/summary",
    tag = "interactions",
    params(("orgId" = String, Path, description = "Organization id")),
    responses((status = 200, body = dto::Summary), Errors),
    security(("bearer" = []))
)]
async fn summary(
    State(api): State<HttpApi>,
    Path(org): Path<String>,
    headers: HeaderMap,
) -> Result<axum::Json<dto::Summary>> {
    let message = proto::GetSummaryRequest {
        organization_id: org.clone(),
    };
    let s = api
        .call(&headers, &org, false, message, |s, r| {
            s.interactions.get_summary(r)
        })
        .await?;
    Ok(axum::Json(dto::Summary::new(org, s)))
}

/// Analyses an organization's interactions with the text model (summary, insights, anomalies,
/// recommendations) on crow's pool of analysis slots. With `wait: false` it answers `202` at once.
#[utoipa::path(
    post,
    path = "/api/v1/interactions/organization/{orgId}/analyze",
    tag = "interactions",
    params(("orgId" = String, Path, description = "Organization id")),
    request_body(content = dto::AnalyzeRequest, description = "Window and options (all optional)"),
    responses(
        (status = 200, description = "Done or failed", body = dto::Analysis),
        (status = 202, description = "Queued (wait: false)", body = dto::Analysis),
        Errors
    ),
    security(("bearer" = []))
)]
async fn analyze(
    State(api): State<HttpApi>,
    Path(org): Path<String>,
    headers: HeaderMap,
    Json(body): Json<dto::AnalyzeRequest>,
) -> Result<Response> {
    let wait = body.wait.unwrap_or(true);
    let message = proto::AnalyzeRequest {
        organization_id: org.clone(),
        from_ms: instant_ms(body.from.as_ref(), "from")?,
        to_ms: instant_ms(body.to.as_ref(), "to")?,
        source_type: source_proto(body.source_type),
        wait,
    };
    let analysis = api
        .call(&headers, &org, false, message, |s, r| s.analysis.analyze(r))
        .await?;
    let analysis = dto::Analysis::from(analysis);
    let status = match analysis.status {
        dto::AnalysisStatus::Done | dto::AnalysisStatus::Failed => StatusCode::OK,
        _ => StatusCode::ACCEPTED,
    };
    Ok((status, axum::Json(analysis)).into_response())
}

/// Answers a question from the organization's records with the text model: every statement cites the
/// records behind it, and crow keeps only statements close in meaning to what they cite; with no
/// supporting record, `found` is false and the answer says so.
#[utoipa::path(
    post,
    path = "/api/v1/interactions/organization/{orgId}/ask",
    tag = "interactions",
    params(("orgId" = String, Path, description = "Organization id")),
    request_body = dto::AskRequest,
    responses((status = 200, body = dto::Answer), Errors),
    security(("bearer" = []))
)]
async fn ask(
    State(api): State<HttpApi>,
    Path(org): Path<String>,
    headers: HeaderMap,
    Json(body): Json<dto::AskRequest>,
) -> Result<axum::Json<dto::Answer>> {
    let message = proto::AskRequest {
        organization_id: org.clone(),
        question: body.question,
        from_ms: instant_ms(body.from.as_ref(), "from")?,
        to_ms: instant_ms(body.to.as_ref(), "to")?,
        source_type: source_proto(body.source_type),
    };
    let answer = api
        .call(&headers, &org, false, message, |s, r| s.analysis.ask(r))
        .await?;
    Ok(axum::Json(answer.into()))
}

/// Queues a web, social or CCTV event: stored durably in the outbox before this answers, turned into
/// an interaction shortly after (with retries, then the dead letters).
#[utoipa::path(
    post,
    path = "/api/v1/interactions/create-interaction",
    tag = "interactions",
    params(("Idempotency-Key" = Option<String>, Header, description = "Same as idempotencyKey")),
    request_body = dto::CreateInteraction,
    responses((status = 202, description = "Accepted into the outbox", body = dto::Accepted), Errors),
    security(("bearer" = []))
)]
async fn create_interaction(
    State(api): State<HttpApi>,
    headers: HeaderMap,
    Json(body): Json<dto::CreateInteraction>,
) -> Result<(StatusCode, axum::Json<dto::Accepted>)> {
    let header_key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::invalid("Idempotency-Key must be text"))
        })
        .transpose()?;
    let idempotency_key = match (body.idempotency_key, header_key) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::invalid(
                "idempotencyKey and the Idempotency-Key header differ",
            ))
        }
        (a, b) => a.or(b),
    };
    if !body.data.is_object() {
        return Err(ApiError::invalid("data must be a JSON object"));
    }
    let message = proto::CreateInteractionRequest {
        organization_id: body.organization_id.clone(),
        source_type: body.source_type.proto(),
        data_json: body.data.to_string(),
        session_id: or_empty(body.session_id),
        summary: or_empty(body.summary),
        timestamp_ms: instant_ms(body.timestamp.as_ref(), "timestamp")?,
        product_ids: body.product_ids,
        idempotency_key: or_empty(idempotency_key),
    };
    let r = api
        .call(&headers, &body.organization_id, false, message, |s, r| {
            s.interactions.create_interaction(r)
        })
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(dto::Accepted {
            id: r.id,
            duplicate: r.duplicate,
            status: "pending".into(),
        }),
    ))
}

/// One interaction, or where it stands while it waits in the outbox.
#[utoipa::path(
    get,
    path = "/api/v1/organizations/{orgId}/interactions/{id}",
    tag = "interactions",
    params(
        ("orgId" = String, Path, description = "Organization id"),
        ("id" = String, Path, description = "Interaction id")
    ),
    responses((status = 200, body = dto::InteractionStatus), Errors),
    security(("bearer" = []))
)]
async fn get_interaction(
    State(api): State<HttpApi>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<axum::Json<dto::InteractionStatus>> {
    let message = proto::GetInteractionRequest {
        organization_id: org.clone(),
        id,
    };
    let r = api
        .call(&headers, &org, false, message, |s, r| {
            s.interactions.get_interaction(r)
        })
        .await?;
    Ok(axum::Json(r.into()))
}

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
async fn submit_frames(
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

/// Opens an ingest session (one camera-hour) explicitly; frames may also open one implicitly.
#[utoipa::path(
    post,
    path = "/api/v1/cctv/sessions",
    tag = "cctv",
    request_body = dto::CreateSession,
    responses((status = 201, body = dto::Session), Errors),
    security(("bearer" = []))
)]
async fn create_session(
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
async fn get_session(
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
async fn get_org_session(
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
async fn close_session(
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
async fn keyframe(
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

/// The organization's catalog, by product id.
#[utoipa::path(
    get,
    path = "/api/v1/organizations/{orgId}/products",
    tag = "catalog",
    params(("orgId" = String, Path, description = "Organization id"), dto::PageQuery),
    responses((status = 200, body = dto::ProductPage), Errors),
    security(("bearer" = []))
)]
async fn list_products(
    State(api): State<HttpApi>,
    Path(org): Path<String>,
    Query(q): Query<dto::PageQuery>,
    headers: HeaderMap,
) -> Result<axum::Json<dto::ProductPage>> {
    let message = proto::ListProductsRequest {
        organization_id: org.clone(),
        page_size: q.page_size.unwrap_or(0),
        page_token: or_empty(q.page_token),
    };
    let page = api
        .call(&headers, &org, false, message, |s, r| {
            s.catalog.list_products(r)
        })
        .await?;
    Ok(axum::Json(dto::ProductPage {
        products: page.products.into_iter().map(Into::into).collect(),
        next_page_token: none_if_empty(page.next_page_token),
    }))
}

/// Inserts or replaces up to 500 products at once (atomically). Role admin.
#[utoipa::path(
    put,
    path = "/api/v1/organizations/{orgId}/products",
    tag = "catalog",
    params(("orgId" = String, Path, description = "Organization id")),
    request_body = dto::UpsertProducts,
    responses((status = 200, body = dto::Upserted), Errors),
    security(("bearer" = []))
)]
async fn upsert_products(
    State(api): State<HttpApi>,
    Path(org): Path<String>,
    headers: HeaderMap,
    Json(body): Json<dto::UpsertProducts>,
) -> Result<axum::Json<dto::Upserted>> {
    let message = proto::UpsertProductsRequest {
        organization_id: org.clone(),
        products: body.products.into_iter().map(|p| p.proto(&org)).collect(),
    };
    let r = api
        .call(&headers, &org, false, message, |s, r| {
            s.catalog.upsert_products(r)
        })
        .await?;
    Ok(axum::Json(dto::Upserted {
        upserted: r.upserted,
    }))
}

/// Removes one product. Role admin.
#[utoipa::path(
    delete,
    path = "/api/v1/organizations/{orgId}/products/{productId}",
    tag = "catalog",
    params(
        ("orgId" = String, Path, description = "Organization id"),
        ("productId" = String, Path, description = "Product id")
    ),
    responses((status = 200, body = dto::Deleted), Errors),
    security(("bearer" = []))
)]
async fn delete_product(
    State(api): State<HttpApi>,
    Path((org, product_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<axum::Json<dto::Deleted>> {
    let message = proto::DeleteProductRequest {
        organization_id: org.clone(),
        product_id,
    };
    let r = api
        .call(&headers, &org, false, message, |s, r| {
            s.catalog.delete_product(r)
        })
        .await?;
    Ok(axum::Json(dto::Deleted { deleted: r.deleted }))
}

/// Events whose processing failed on every attempt, oldest first. Role admin.
#[utoipa::path(
    get,
    path = "/api/v1/organizations/{orgId}/dead-letters",
    tag = "interactions",
    params(("orgId" = String, Path, description = "Organization id"), dto::PageQuery),
    responses((status = 200, body = dto::DeadLetterPage), Errors),
    security(("bearer" = []))
)]
async fn list_dead_letters(
    State(api): State<HttpApi>,
    Path(org): Path<String>,
    Query(q): Query<dto::PageQuery>,
    headers: HeaderMap,
) -> Result<axum::Json<dto::DeadLetterPage>> {
    let message = proto::ListDeadLettersRequest {
        organization_id: org.clone(),
        page_size: q.page_size.unwrap_or(0),
        page_token: or_empty(q.page_token),
    };
    let page = api
        .call(&headers, &org, false, message, |s, r| {
            s.interactions.list_dead_letters(r)
        })
        .await?;
    Ok(axum::Json(dto::DeadLetterPage {
        dead_letters: page.dead_letters.into_iter().map(Into::into).collect(),
        next_page_token: none_if_empty(page.next_page_token),
    }))
}

/// Puts a dead letter back into the outbox with its attempts reset. Role admin.
#[utoipa::path(
    post,
    path = "/api/v1/organizations/{orgId}/dead-letters/{id}/retry",
    tag = "interactions",
    params(
        ("orgId" = String, Path, description = "Organization id"),
        ("id" = String, Path, description = "Dead letter (interaction) id")
    ),
    responses((status = 202, body = dto::Accepted), Errors),
    security(("bearer" = []))
)]
async fn retry_dead_letter(
    State(api): State<HttpApi>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<(StatusCode, axum::Json<dto::Accepted>)> {
    let message = proto::RetryDeadLetterRequest {
        organization_id: org.clone(),
        id,
    };
    let r = api
        .call(&headers, &org, false, message, |s, r| {
            s.interactions.retry_dead_letter(r)
        })
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(dto::Accepted {
            id: r.id,
            duplicate: r.duplicate,
            status: "pending".into(),
        }),
    ))
}

/// An analysis by id.
#[utoipa::path(
    get,
    path = "/api/v1/organizations/{orgId}/analyses/{analysisId}",
    tag = "interactions",
    params(
        ("orgId" = String, Path, description = "Organization id"),
        ("analysisId" = String, Path, description = "Analysis id")
    ),
    responses((status = 200, body = dto::Analysis), Errors),
    security(("bearer" = []))
)]
async fn get_analysis(
    State(api): State<HttpApi>,
    Path((org, analysis_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<axum::Json<dto::Analysis>> {
    let message = proto::GetAnalysisRequest {
        organization_id: org.clone(),
        analysis_id,
    };
    let a = api
        .call(&headers, &org, false, message, |s, r| {
            s.analysis.get_analysis(r)
        })
        .await?;
    Ok(axum::Json(a.into()))
}

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
async fn watch_patterns(
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

/// The organization's configured cameras (zones, tripwires, masks).
#[utoipa::path(
    get,
    path = "/api/v1/organizations/{orgId}/cameras",
    tag = "cameras",
    params(("orgId" = String, Path, description = "Organization id"), dto::PageQuery),
    responses((status = 200, body = dto::CameraPage), Errors),
    security(("bearer" = []))
)]
async fn list_cameras(
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
async fn get_camera(
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
async fn upsert_camera(
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
async fn delete_camera(
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
async fn health(State(api): State<HttpApi>) -> (StatusCode, axum::Json<dto::Health>) {
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
