//! Interaction routes: list (words or meaning), summary counts, create (into the outbox) and get.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use super::shared::{instant_ms, optional_ms, or_empty, Errors, Result};
use crate::fields::none_if_empty;
use crate::http::dto::{self, source_proto};
use crate::http::extract::{Json, Path, Query};
use crate::http::{ApiError, HttpApi};
use crate::proto;
use crate::proto::interaction_service_server::InteractionService;

/// Lists an organization's interactions, newest first, one page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/interactions/organization/{orgId}",
    tag = "interactions",
    params(("orgId" = String, Path, description = "Organization id"), dto::ListQuery),
    responses((status = 200, body = dto::InteractionPage), Errors),
    security(("bearer" = []))
)]
pub(super) async fn list_interactions(
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
pub(super) async fn summary(
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
pub(super) async fn create_interaction(
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
pub(super) async fn get_interaction(
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
