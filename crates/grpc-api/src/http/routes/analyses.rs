//! Analysis routes: analyze an organization's interactions, ask a question of them, get an analysis.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::shared::{instant_ms, Errors, Result};
use crate::http::dto::{self, source_proto};
use crate::http::extract::{Json, Path};
use crate::http::HttpApi;
use crate::proto;
use crate::proto::analysis_service_server::AnalysisService;

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
pub(super) async fn analyze(
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
pub(super) async fn ask(
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
pub(super) async fn get_analysis(
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
