//! `crow products`: the catalog the analyzers match against (upsert from a file, list, delete).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use crow::proto::catalog_service_client::CatalogServiceClient;
use crow::proto::{self, ListProductsRequest, UpsertProductsRequest};
use serde_json::json;

use crate::ServerArg;

use super::common::*;

#[derive(Subcommand)]
pub(crate) enum ProductsCommand {
    /// Insert or replace products from a JSON file: an array of {"id", "name", "category",
    /// "description", "tags"} (or an object with a "products" array).
    Upsert {
        /// The JSON file.
        file: PathBuf,
        /// Organization id.
        #[arg(long)]
        org: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// List products by id.
    List {
        /// Organization id.
        #[arg(long)]
        org: String,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Remove a product.
    Delete {
        /// Product id.
        id: String,
        /// Organization id.
        #[arg(long)]
        org: String,
        #[command(flatten)]
        server: ServerArg,
    },
}

/// A product as catalog files write it (`crow products upsert`, the benchmarks' labelled sets).
#[derive(serde::Deserialize)]
pub(crate) struct ProductFile {
    pub(crate) id: String,
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) category: String,
    #[serde(default)]
    pub(crate) description: String,
    #[serde(default)]
    pub(crate) tags: Vec<String>,
    #[serde(default)]
    pub(crate) aliases: Vec<String>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum ProductsFile {
    List(Vec<ProductFile>),
    Wrapped { products: Vec<ProductFile> },
}

pub(crate) async fn products(cmd: ProductsCommand) -> Result<()> {
    match cmd {
        ProductsCommand::Upsert { file, org, server } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let parsed: ProductsFile = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{}: expected a JSON array of products (id, name, category, description, tags, aliases)",
                    file.display()
                )
            })?;
            let list = match parsed {
                ProductsFile::List(l) | ProductsFile::Wrapped { products: l } => l,
            };
            let mut client = CatalogServiceClient::new(channel(&server).await?);
            let mut total = 0;
            for chunk in list.chunks(crow::actors::MAX_UPSERT_PRODUCTS) {
                let r = client
                    .upsert_products(UpsertProductsRequest {
                        organization_id: org.clone(),
                        products: chunk
                            .iter()
                            .map(|p| proto::Product {
                                id: p.id.clone(),
                                organization_id: org.clone(),
                                name: p.name.clone(),
                                category: p.category.clone(),
                                description: p.description.clone(),
                                tags: p.tags.clone(),
                                aliases: p.aliases.clone(),
                                updated_at_ms: 0,
                            })
                            .collect(),
                    })
                    .await?
                    .into_inner();
                total += r.upserted;
            }
            println!("{total} products upserted for organization {org}");
            Ok(())
        }
        ProductsCommand::List { org, json, server } => {
            let mut client = CatalogServiceClient::new(channel(&server).await?);
            let mut token = String::new();
            let mut n = 0;
            loop {
                let page = client
                    .list_products(ListProductsRequest {
                        organization_id: org.clone(),
                        page_size: 500,
                        page_token: token,
                    })
                    .await?
                    .into_inner();
                for p in &page.products {
                    n += 1;
                    if json {
                        println!(
                            "{}",
                            json!({"id": p.id, "name": p.name, "category": p.category,
                                   "description": p.description, "tags": p.tags,
                                   "updated_at_ms": p.updated_at_ms})
                        );
                    } else {
                        println!(
                            "{:<20} {}  ({})  [{}]",
                            p.id,
                            p.name,
                            p.category,
                            p.tags.join(", ")
                        );
                    }
                }
                token = page.next_page_token;
                if token.is_empty() {
                    break;
                }
            }
            if n == 0 && !json {
                println!("no products for organization {org}");
            }
            Ok(())
        }
        ProductsCommand::Delete { id, org, server } => {
            let mut client = CatalogServiceClient::new(channel(&server).await?);
            let r = client
                .delete_product(proto::DeleteProductRequest {
                    organization_id: org,
                    product_id: id.clone(),
                })
                .await?
                .into_inner();
            println!(
                "{id}: {}",
                if r.deleted {
                    "deleted"
                } else {
                    "no such product"
                }
            );
            Ok(())
        }
    }
}
