//! [`CatalogRecords`]: product catalogs, one per organization.

use async_trait::async_trait;

use crate::model::Product;
use crate::{ProductPage, Result, Store};

/// Product catalogs, one per organization. Implemented by sled ([`Store`], each call on a blocking thread) and PostgreSQL
/// ([`PgStore`](crate::PgStore)); part of every [`RecordStore`](super::RecordStore).
#[async_trait]
pub trait CatalogRecords: Send + Sync + 'static {
    /// Inserts or replaces products (all of one organization), together.
    async fn upsert_products(&self, products: &[Product]) -> Result<()>;

    /// Removes a product; `false` if the organization had none with that id.
    async fn delete_product(&self, organization_id: &str, id: &str) -> Result<bool>;

    /// The organization's products by id, one page at a time (the cursor is the last id).
    async fn list_products(
        &self,
        organization_id: &str,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<ProductPage>;

    /// The organization's catalog by id, at most `limit` products.
    async fn catalog(&self, organization_id: &str, limit: usize) -> Result<Vec<Product>>;
}

#[async_trait]
impl CatalogRecords for Store {
    async fn upsert_products(&self, products: &[Product]) -> Result<()> {
        let products = products.to_vec();
        self.run(move |store| Store::upsert_products(store, &products))
            .await
    }

    async fn delete_product(&self, organization_id: &str, id: &str) -> Result<bool> {
        let organization_id = organization_id.to_owned();
        let id = id.to_owned();
        self.run(move |store| Store::delete_product(store, &organization_id, &id))
            .await
    }

    async fn list_products(
        &self,
        organization_id: &str,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<ProductPage> {
        let organization_id = organization_id.to_owned();
        let page_token = page_token.map(str::to_owned);
        self.run(move |store| {
            Store::list_products(store, &organization_id, page_size, page_token.as_deref())
        })
        .await
    }

    async fn catalog(&self, organization_id: &str, limit: usize) -> Result<Vec<Product>> {
        let organization_id = organization_id.to_owned();
        self.run(move |store| Store::catalog(store, &organization_id, limit))
            .await
    }
}
