//! Product catalogs, one per organization: tree `products`, `org \0 product id` -> [`Product`].

use crate::keys;
use crate::model::Product;
use crate::store::{decode, encode, Store};
use crate::Result;

/// One page of products.
#[derive(Debug, Clone, Default)]
pub struct ProductPage {
    /// Ordered by id.
    pub products: Vec<Product>,
    /// Cursor for the next page (the last id).
    pub next_page_token: Option<String>,
}

impl Store {
    /// Inserts or replaces products (all of one organization), atomically.
    pub fn upsert_products(&self, products: &[Product]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for p in products {
            batch.insert(keys::pair(&p.organization_id, &p.id), encode(p));
        }
        Ok(self.inner.products.apply_batch(batch)?)
    }

    /// Removes a product; `false` if the organization had none with that id.
    pub fn delete_product(&self, organization_id: &str, id: &str) -> Result<bool> {
        Ok(self
            .inner
            .products
            .remove(keys::pair(organization_id, id))?
            .is_some())
    }

    /// An organization's products, by id, one page at a time.
    pub fn list_products(
        &self,
        organization_id: &str,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<ProductPage> {
        let (products, next_page_token) = self.page_by_id(
            &self.inner.products,
            organization_id,
            page_size,
            page_token,
            |p: &Product| &p.id,
        )?;
        Ok(ProductPage {
            products,
            next_page_token,
        })
    }

    /// The whole catalog of an organization, up to `limit` products.
    pub fn catalog(&self, organization_id: &str, limit: usize) -> Result<Vec<Product>> {
        let mut out = Vec::new();
        for item in self
            .inner
            .products
            .scan_prefix(keys::prefix(organization_id))
        {
            let (k, v) = item?;
            out.push(decode(&k, &v)?);
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }
}
