//! Catalog routes: list, upsert and delete an organization's products.

use axum::extract::State;
use axum::http::HeaderMap;

use super::shared::{or_empty, Errors, Result};
use crate::fields::none_if_empty;
use crate::http::dto;
use crate::http::extract::{Json, Path, Query};
use crate::http::HttpApi;
use crate::proto;
use crate::proto::catalog_service_server::CatalogService;

/// The organization's catalog, by product id.
#[utoipa::path(
    get,
    path = "/api/v1/organizations/{orgId}/products",
    tag = "catalog",
    params(("orgId" = String, Path, description = "Organization id"), dto::PageQuery),
    responses((status = 200, body = dto::ProductPage), Errors),
    security(("bearer" = []))
)]
pub(super) async fn list_products(
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
pub(super) async fn upsert_products(
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
pub(super) async fn delete_product(
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
