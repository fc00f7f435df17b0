//! `InteractionService`: create (through the outbox), get, list with filters, summary, store metrics,
//! dead letters.

use crow_actors::{validate_id, CreateInteraction, Pipeline, SemanticQuery};
use crow_storage::{InteractionFilter, InteractionState};
use tonic::{Request, Response, Status};

use crate::auth::{self, Action};
use crate::convert;
use crate::fields::{none_if_empty, page_size};
use crate::proto::interaction_service_server::InteractionService;
use crate::proto::{
    CreateInteractionRequest, CreateInteractionResponse, GetInteractionRequest,
    GetInteractionResponse, GetMetricsRequest, GetSummaryRequest, ListDeadLettersRequest,
    ListDeadLettersResponse, ListInteractionsRequest, ListInteractionsResponse, MetricsReport,
    RetryDeadLetterRequest, Summary,
};
use crate::store_metrics;

/// Longest accepted page token, in bytes.
const MAX_PAGE_TOKEN_LEN: usize = 1024;

/// The `crow.v1.InteractionService` implementation.
#[derive(Clone)]
pub struct InteractionApi {
    pipeline: Pipeline,
}

impl InteractionApi {
    /// Serves the interactions of `pipeline`.
    pub fn new(pipeline: Pipeline) -> InteractionApi {
        InteractionApi { pipeline }
    }

    /// The pipeline served.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }
}

#[tonic::async_trait]
impl InteractionService for InteractionApi {
    async fn create_interaction(
        &self,
        request: Request<CreateInteractionRequest>,
    ) -> Result<Response<CreateInteractionResponse>, Status> {
        let caller = auth::caller(&request)?;
        let r = request.into_inner();
        caller.authorize(Action::Ingest, &r.organization_id)?;
        let source_type = convert::source_filter(r.source_type, "source_type")?;
        let enqueued = self
            .pipeline
            .record_services()
            .create_interaction(CreateInteraction {
                organization_id: r.organization_id,
                source_type,
                data_json: r.data_json,
                session_id: none_if_empty(r.session_id),
                summary: none_if_empty(r.summary),
                timestamp_ms: convert::optional_ms(r.timestamp_ms),
                product_ids: r.product_ids,
                idempotency_key: none_if_empty(r.idempotency_key),
            })
            .await
            .map_err(convert::status)?;
        Ok(Response::new(CreateInteractionResponse {
            id: enqueued.id,
            duplicate: enqueued.duplicate,
        }))
    }

    async fn get_interaction(
        &self,
        request: Request<GetInteractionRequest>,
    ) -> Result<Response<GetInteractionResponse>, Status> {
        let caller = auth::caller(&request)?;
        let r = request.into_inner();
        caller.authorize(Action::Read, &r.organization_id)?;
        let state = self
            .pipeline
            .record_services()
            .interaction_state(&r.organization_id, &r.id)
            .await
            .map_err(convert::status)?;
        use crate::proto::InteractionState as S;
        Ok(Response::new(match state {
            InteractionState::Stored(i) => GetInteractionResponse {
                state: S::Stored as i32,
                interaction: Some(convert::interaction(&i)),
                attempts: 0,
                last_error: String::new(),
            },
            InteractionState::Pending(e) => GetInteractionResponse {
                state: S::Pending as i32,
                interaction: None,
                attempts: e.attempts,
                last_error: e.last_error.unwrap_or_default(),
            },
            InteractionState::DeadLetter(d) => GetInteractionResponse {
                state: S::DeadLetter as i32,
                interaction: None,
                attempts: d.attempts,
                last_error: d.last_error,
            },
        }))
    }

    async fn list_interactions(
        &self,
        request: Request<ListInteractionsRequest>,
    ) -> Result<Response<ListInteractionsResponse>, Status> {
        let caller = auth::caller(&request)?;
        let r = request.into_inner();
        caller.authorize(Action::Read, &r.organization_id)?;
        validate_id("organization_id", &r.organization_id).map_err(convert::status)?;
        let page_size = page_size(r.page_size, &self.pipeline.config().limits)?;
        if r.page_token.len() > MAX_PAGE_TOKEN_LEN {
            return Err(Status::invalid_argument("invalid page_token"));
        }
        let max_query = self.pipeline.config().limits.max_query_bytes;
        if r.q.len() > max_query {
            return Err(Status::invalid_argument(format!(
                "q is longer than pipeline.limits.max_query_bytes ({max_query})"
            )));
        }
        let filter = InteractionFilter {
            source: convert::source_filter(r.source_type, "source_type")?,
            query: none_if_empty(r.q),
            from_ms: convert::optional_ms(r.from_ms),
            to_ms: convert::optional_ms(r.to_ms),
        };
        if r.meaning.len() > max_query {
            return Err(Status::invalid_argument(format!(
                "meaning is longer than pipeline.limits.max_query_bytes ({max_query})"
            )));
        }
        let token = none_if_empty(r.page_token);
        if let Some(meaning) = none_if_empty(r.meaning) {
            if meaning.trim().is_empty() {
                return Err(Status::invalid_argument("meaning has no text"));
            }
            // The word filter is checked the same way as without `meaning`.
            crow_storage::validate_filter(&filter).map_err(convert::storage_status)?;
            let search = self.pipeline.search().ok_or_else(|| {
                Status::failed_precondition(
                    "search by meaning is off on this server (pipeline.search, or its model is not installed)",
                )
            })?;
            let page = search
                .search(SemanticQuery {
                    organization_id: &r.organization_id,
                    question: &meaning,
                    filter: &filter,
                    page_size,
                    page_token: token.as_deref(),
                    min_similarity: None,
                })
                .await
                .map_err(convert::status)?;
            return Ok(Response::new(ListInteractionsResponse {
                interactions: page
                    .hits
                    .iter()
                    .map(|h| convert::interaction(&h.interaction))
                    .collect(),
                matches: page.hits.iter().map(convert::meaning_match).collect(),
                next_page_token: page.next_page_token.unwrap_or_default(),
            }));
        }
        let page = self
            .pipeline
            .records()
            .list_interactions(&r.organization_id, &filter, page_size, token.as_deref())
            .await
            .map_err(convert::storage_status)?;
        Ok(Response::new(ListInteractionsResponse {
            interactions: page.interactions.iter().map(convert::interaction).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
            matches: Vec::new(),
        }))
    }

    async fn get_summary(
        &self,
        request: Request<GetSummaryRequest>,
    ) -> Result<Response<Summary>, Status> {
        let caller = auth::caller(&request)?;
        let r = request.into_inner();
        caller.authorize(Action::Read, &r.organization_id)?;
        validate_id("organization_id", &r.organization_id).map_err(convert::status)?;
        let summary = self
            .pipeline
            .records()
            .summary(&r.organization_id)
            .await
            .map_err(convert::storage_status)?;
        Ok(Response::new(convert::summary(&summary)))
    }

    async fn get_metrics(
        &self,
        request: Request<GetMetricsRequest>,
    ) -> Result<Response<MetricsReport>, Status> {
        let caller = auth::caller(&request)?;
        let r = request.into_inner();
        caller.authorize(Action::Read, &r.organization_id)?;
        let query = store_metrics::query(&r)?;
        let report = self
            .pipeline
            .records()
            .metrics_report(&r.organization_id, &query)
            .await
            .map_err(convert::storage_status)?;
        Ok(Response::new(store_metrics::report(&report)))
    }

    async fn list_dead_letters(
        &self,
        request: Request<ListDeadLettersRequest>,
    ) -> Result<Response<ListDeadLettersResponse>, Status> {
        let caller = auth::caller(&request)?;
        let r = request.into_inner();
        caller.authorize(Action::Administer, &r.organization_id)?;
        let page_size = page_size(r.page_size, &self.pipeline.config().limits)?;
        let page = self
            .pipeline
            .record_services()
            .list_dead_letters(
                &r.organization_id,
                page_size,
                none_if_empty(r.page_token).as_deref(),
            )
            .await
            .map_err(convert::status)?;
        Ok(Response::new(ListDeadLettersResponse {
            dead_letters: page.dead_letters.iter().map(convert::dead_letter).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn retry_dead_letter(
        &self,
        request: Request<RetryDeadLetterRequest>,
    ) -> Result<Response<CreateInteractionResponse>, Status> {
        let caller = auth::caller(&request)?;
        let r = request.into_inner();
        caller.authorize(Action::Administer, &r.organization_id)?;
        let enqueued = self
            .pipeline
            .record_services()
            .retry_dead_letter(&r.organization_id, &r.id)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(CreateInteractionResponse {
            id: enqueued.id,
            duplicate: false,
        }))
    }
}
