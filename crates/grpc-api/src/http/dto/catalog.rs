//! Catalog shapes: a product, the upsert body and answer, a page of products, and a delete's answer.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::time::format_optional_ms;
use crate::proto;

/// A catalog product, as stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    /// 1..=128 characters of `[A-Za-z0-9._-]`, unique within the organization.
    pub id: String,
    /// 1..=200 characters.
    pub name: String,
    pub category: String,
    pub description: String,
    pub tags: Vec<String>,
    /// Other names it goes by.
    pub aliases: Vec<String>,
    /// Last upsert.
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
}

/// A catalog product to insert or replace.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProductInput {
    /// 1..=128 characters of `[A-Za-z0-9._-]`, unique within the organization.
    pub id: String,
    /// 1..=200 characters.
    pub name: String,
    /// At most 100 characters.
    #[serde(default)]
    pub category: String,
    /// At most 2000 characters.
    #[serde(default)]
    pub description: String,
    /// At most 16 tags of at most 40 characters.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Other names it goes by ("trainers" for "running shoes"): at most 16 of 1..=80 characters,
    /// matched by meaning like the name.
    #[serde(default)]
    pub aliases: Vec<String>,
}

impl From<proto::Product> for Product {
    fn from(p: proto::Product) -> Product {
        Product {
            id: p.id,
            name: p.name,
            category: p.category,
            description: p.description,
            tags: p.tags,
            aliases: p.aliases,
            updated_at: format_optional_ms(p.updated_at_ms),
        }
    }
}

impl ProductInput {
    /// The protocol message for `organization_id`.
    pub fn proto(self, organization_id: &str) -> proto::Product {
        proto::Product {
            id: self.id,
            organization_id: organization_id.to_owned(),
            name: self.name,
            category: self.category,
            description: self.description,
            tags: self.tags,
            aliases: self.aliases,
            updated_at_ms: 0,
        }
    }
}

/// Body of `PUT /api/v1/organizations/{orgId}/products`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpsertProducts {
    /// 1..=500 products, inserted or replaced atomically.
    pub products: Vec<ProductInput>,
}

/// Answer of a product upsert.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Upserted {
    pub upserted: u32,
}

/// A page of products, by id.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductPage {
    pub products: Vec<Product>,
    pub next_page_token: Option<String>,
}

/// Answer of a delete.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Deleted {
    /// False when there was nothing to delete.
    pub deleted: bool,
}
