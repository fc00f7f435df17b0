//! Product matching by meaning: catalog products' texts (name, aliases, description) and the spans of
//! frame descriptions, embedded by the search model and matched by [`match_spans`] above
//! `pipeline.search.product_min_similarity` (calibrated by `crow bench search`). A match is evidence
//! only with its span found in a frame's description (`catalog_match::meaning_evidence`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crow_storage::Product;

use crate::catalog_match::{description_spans, match_spans, EmbeddedTexts, SpanMatch};
use crate::semantic::SemanticSearch;
use crate::PipelineError;

/// Most distinct spans embedded per call (descriptions beyond contribute nothing).
pub const MAX_SPANS: usize = 256;

/// A product's texts with their vectors, as of its last upsert.
struct ProductVectors {
    updated_at_ms: i64,
    texts: EmbeddedTexts,
}

/// Matches descriptions to an organization's catalog by meaning. Product vectors are made once per
/// product version and kept in memory, per organization, for the products of its current catalog.
pub struct ProductMatcher {
    search: Arc<SemanticSearch>,
    min_similarity: f32,
    cache: Mutex<HashMap<String, HashMap<String, Arc<ProductVectors>>>>,
}

impl std::fmt::Debug for ProductMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProductMatcher")
            .field("min_similarity", &self.min_similarity)
            .finish()
    }
}

/// The texts a product is matched by: its name, each alias and its description (non-empty, distinct).
pub fn product_texts(p: &Product) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in std::iter::once(&p.name)
        .chain(&p.aliases)
        .chain(std::iter::once(&p.description))
    {
        let t = t.trim();
        if !t.is_empty() && !out.iter().any(|o| o.eq_ignore_ascii_case(t)) {
            out.push(t.to_owned());
        }
    }
    out
}

impl ProductMatcher {
    /// A matcher embedding with `search`'s model; spans below `min_similarity` match nothing.
    pub fn new(search: Arc<SemanticSearch>, min_similarity: f32) -> ProductMatcher {
        ProductMatcher {
            search,
            min_similarity,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The similarity floor in use.
    pub fn min_similarity(&self) -> f32 {
        self.min_similarity
    }

    /// The spans of `descriptions` that mean products of `catalog` (one organization's), each
    /// product with its most similar span, by product id.
    pub async fn match_descriptions(
        &self,
        catalog: &[Product],
        descriptions: &[&str],
    ) -> Result<Vec<SpanMatch>, PipelineError> {
        let mut spans: Vec<String> = Vec::new();
        for d in descriptions {
            for s in description_spans(d) {
                if spans.len() < MAX_SPANS && !spans.contains(&s) {
                    spans.push(s);
                }
            }
        }
        let Some(org) = catalog.first().map(|p| p.organization_id.clone()) else {
            return Ok(Vec::new());
        };
        if spans.is_empty() {
            return Ok(Vec::new());
        }
        let products = self.product_vectors(&org, catalog).await?;
        let span_vectors = self.search.embed(spans.clone()).await?;
        let spans: Vec<(String, Vec<f32>)> = spans.into_iter().zip(span_vectors).collect();
        let products: Vec<(String, EmbeddedTexts)> = catalog
            .iter()
            .zip(products)
            .map(|(p, v)| (p.id.clone(), v.texts.clone()))
            .collect();
        Ok(match_spans(&spans, &products, self.min_similarity))
    }

    /// The vectors of each product of `catalog`, in its order: cached ones of the same version, the
    /// others embedded now. The organization's cache then holds exactly this catalog.
    async fn product_vectors(
        &self,
        org: &str,
        catalog: &[Product],
    ) -> Result<Vec<Arc<ProductVectors>>, PipelineError> {
        let cached: Vec<Option<Arc<ProductVectors>>> = {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            let known = cache.get(org);
            catalog
                .iter()
                .map(|p| {
                    known
                        .and_then(|k| k.get(&p.id))
                        .filter(|v| v.updated_at_ms == p.updated_at_ms)
                        .cloned()
                })
                .collect()
        };
        let missing: Vec<(usize, Vec<String>)> = cached
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_none())
            .map(|(n, _)| (n, product_texts(&catalog[n])))
            .collect();
        let flat: Vec<String> = missing.iter().flat_map(|(_, t)| t.clone()).collect();
        let mut vectors = if flat.is_empty() {
            Vec::new()
        } else {
            self.search.embed(flat).await?
        }
        .into_iter();
        let mut out = cached;
        for (n, texts) in missing {
            let texts: Vec<(String, Vec<f32>)> = texts.into_iter().zip(vectors.by_ref()).collect();
            out[n] = Some(Arc::new(ProductVectors {
                updated_at_ms: catalog[n].updated_at_ms,
                texts,
            }));
        }
        let out: Vec<Arc<ProductVectors>> = out.into_iter().flatten().collect();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(
            org.to_owned(),
            catalog
                .iter()
                .zip(&out)
                .map(|(p, v)| (p.id.clone(), Arc::clone(v)))
                .collect(),
        );
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_product_is_matched_by_its_name_aliases_and_description() {
        let p = Product {
            id: "shoe".into(),
            organization_id: "org".into(),
            name: "Red running shoes".into(),
            category: "shoes".into(),
            description: "Lightweight road running shoe".into(),
            tags: vec!["sport".into()],
            aliases: vec!["trainers".into(), " red running SHOES ".into(), " ".into()],
            updated_at_ms: 0,
        };
        assert_eq!(
            product_texts(&p),
            [
                "Red running shoes",
                "trainers",
                "Lightweight road running shoe"
            ]
        );
    }
}
