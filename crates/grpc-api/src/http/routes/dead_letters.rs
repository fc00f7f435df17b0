//! Dead letter routes: list the events whose processing failed, and retry one.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use super::shared::{or_empty, Errors, Result};
use crate::fields::none_if_empty;
use crate::http::dto;
use crate::http::extract::{Path, Query};
use crate::http::HttpApi;
use crate::proto;
use crate::proto::interaction_service_server::InteractionService;

/// Events whose processing failed on every attempt, oldest first. Role admin.
#[utoipa::path(
    get,
    path = "/api/v1/organizations/{orgId}/dead-letters",
    tag = "interactions",
    params(("orgId" = String, Path, description = "Organization id"), dto::PageQuery),
    responses((status = 200, body = dto::DeadLetterPage), Errors),
    security(("bearer" = []))
)]
pub(super) async fn list_dead_letters(
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
pub(super) async fn retry_dead_letter(
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
