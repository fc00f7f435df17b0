//! `InteractionService`: reads straight from storage (no actor owns this state).

use crow_actors::validate_id;
use crow_storage::Store;
use tonic::{Request, Response, Status};

use crate::convert;
use crate::proto::interaction_service_server::InteractionService;
use crate::proto::{GetSummaryRequest, ListInteractionsRequest, ListInteractionsResponse, Summary};

/// Page size used when the request says 0.
const DEFAULT_PAGE_SIZE: u32 = 50;
/// Longest accepted page token, in bytes.
const MAX_PAGE_TOKEN_LEN: usize = 1024;

/// The `crow.v1.InteractionService` implementation.
#[derive(Clone)]
pub struct InteractionApi {
    store: Store,
}

impl InteractionApi {
    /// Serves the interactions in `store`.
    pub fn new(store: Store) -> InteractionApi {
        InteractionApi { store }
    }
}

#[tonic::async_trait]
impl InteractionService for InteractionApi {
    async fn list_interactions(
        &self,
        request: Request<ListInteractionsRequest>,
    ) -> Result<Response<ListInteractionsResponse>, Status> {
        let r = request.into_inner();
        validate_id("organization_id", &r.organization_id).map_err(convert::status)?;
        let page_size = match r.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n as usize > crow_storage::MAX_PAGE_SIZE => {
                return Err(Status::invalid_argument(format!(
                    "page_size must be at most {}",
                    crow_storage::MAX_PAGE_SIZE
                )))
            }
            n => n,
        };
        if r.page_token.len() > MAX_PAGE_TOKEN_LEN {
            return Err(Status::invalid_argument("invalid page_token"));
        }
        let token = (!r.page_token.is_empty()).then_some(r.page_token);
        let store = self.store.clone();
        let org = r.organization_id;
        let page = tokio::task::spawn_blocking(move || {
            store.list_interactions(&org, page_size as usize, token.as_deref())
        })
        .await
        .map_err(|_| Status::internal("internal error"))?
        .map_err(convert::storage_status)?;
        Ok(Response::new(ListInteractionsResponse {
            interactions: page.interactions.iter().map(convert::interaction).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn get_summary(
        &self,
        request: Request<GetSummaryRequest>,
    ) -> Result<Response<Summary>, Status> {
        let r = request.into_inner();
        validate_id("organization_id", &r.organization_id).map_err(convert::status)?;
        let summary = self
            .store
            .summary(&r.organization_id)
            .map_err(convert::storage_status)?;
        Ok(Response::new(convert::summary(&summary)))
    }
}
