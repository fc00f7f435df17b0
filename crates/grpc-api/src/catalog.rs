//! `CatalogService`: product catalogs per organization.

use crow_actors::{Pipeline, ProductInput};
use tonic::{Request, Response, Status};

use crate::auth::{self, Action};
use crate::convert;
use crate::fields::{none_if_empty, page_size};
use crate::proto::catalog_service_server::CatalogService;
use crate::proto::{
    DeleteProductRequest, DeleteProductResponse, ListProductsRequest, ListProductsResponse,
    UpsertProductsRequest, UpsertProductsResponse,
};

/// The `crow.v1.CatalogService` implementation.
#[derive(Clone)]
pub struct CatalogApi {
    pipeline: Pipeline,
}

impl CatalogApi {
    /// Serves the catalogs of `pipeline`.
    pub fn new(pipeline: Pipeline) -> CatalogApi {
        CatalogApi { pipeline }
    }
}

#[tonic::async_trait]
impl CatalogService for CatalogApi {
    async fn upsert_products(
        &self,
        request: Request<UpsertProductsRequest>,
    ) -> Result<Response<UpsertProductsResponse>, Status> {
        let caller = auth::caller(&request)?;
        let r = request.into_inner();
        caller.authorize(Action::Administer, &r.organization_id)?;
        if r.products
            .iter()
            .any(|p| !p.organization_id.is_empty() && p.organization_id != r.organization_id)
        {
            return Err(Status::invalid_argument(
                "products[].organization_id must be empty or the request's organization_id",
            ));
        }
        let products = r
            .products
            .into_iter()
            .map(|p| ProductInput {
                id: p.id,
                name: p.name,
                category: p.category,
                description: p.description,
                tags: p.tags,
                aliases: p.aliases,
            })
            .collect();
        let n = self
            .pipeline
            .record_services()
            .upsert_products(&r.organization_id, products)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(UpsertProductsResponse { upserted: n as u32 }))
    }

    async fn list_products(
        &self,
        request: Request<ListProductsRequest>,
    ) -> Result<Response<ListProductsResponse>, Status> {
        let caller = auth::caller(&request)?;
        let r = request.into_inner();
        caller.authorize(Action::Read, &r.organization_id)?;
        let page_size = page_size(r.page_size, &self.pipeline.config().limits)?;
        let page = self
            .pipeline
            .record_services()
            .list_products(
                &r.organization_id,
                page_size,
                none_if_empty(r.page_token).as_deref(),
            )
            .await
            .map_err(convert::status)?;
        Ok(Response::new(ListProductsResponse {
            products: page.products.iter().map(convert::product).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn delete_product(
        &self,
        request: Request<DeleteProductRequest>,
    ) -> Result<Response<DeleteProductResponse>, Status> {
        let caller = auth::caller(&request)?;
        let r = request.into_inner();
        caller.authorize(Action::Administer, &r.organization_id)?;
        let deleted = self
            .pipeline
            .record_services()
            .delete_product(&r.organization_id, &r.product_id)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(DeleteProductResponse { deleted }))
    }
}
