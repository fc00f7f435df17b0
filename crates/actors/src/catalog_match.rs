//! Lexical product matching: the cheap prefilter that picks the catalog candidates the text model sees,
//! and the matcher used when no text model is loaded.

use std::collections::BTreeSet;

use crow_inference::llama::{CatalogProduct, MatchedProduct};
use crow_storage::text::words;
use crow_storage::Product;

/// The words a product is known by (name, category, tags), and its name's words.
fn product_words(p: &Product) -> (BTreeSet<String>, BTreeSet<String>) {
    let name: BTreeSet<String> = words(&p.name).collect();
    let mut all = name.clone();
    all.extend(words(&p.category));
    for t in &p.tags {
        all.extend(words(t));
    }
    (all, name)
}

/// Scores a product against a text's words: 2 per name word found, 1 per other word found.
fn score(p: &Product, text: &BTreeSet<String>) -> usize {
    let (all, name) = product_words(p);
    all.iter()
        .filter(|w| text.contains(*w))
        .map(|w| if name.contains(w) { 2 } else { 1 })
        .sum()
}

/// The `k` products that share the most words with the observations (all of them when the catalog has at
/// most `k`), best first, ties by id.
pub(crate) fn candidates<'a>(
    catalog: &'a [Product],
    observations: &[(u64, String)],
    k: usize,
) -> Vec<&'a Product> {
    if catalog.len() <= k {
        return catalog.iter().collect();
    }
    let text: BTreeSet<String> = observations.iter().flat_map(|(_, t)| words(t)).collect();
    let mut scored: Vec<(usize, &Product)> = catalog.iter().map(|p| (score(p, &text), p)).collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.id.cmp(&b.1.id)));
    scored.into_iter().take(k).map(|(_, p)| p).collect()
}

/// How the model sees a product: its name, category and a little description.
pub(crate) fn for_model(p: &Product) -> CatalogProduct {
    let mut name = p.name.clone();
    if !p.category.is_empty() {
        name.push_str(&format!(" ({})", p.category));
    }
    if !p.description.is_empty() {
        let d: String = p.description.chars().take(80).collect();
        name.push_str(&format!(" - {d}"));
    }
    CatalogProduct {
        id: p.id.clone(),
        name,
    }
}

/// Matching without a model: a product matches the frames whose description contains every word of its
/// name; confidence is the share of frames that do.
pub(crate) fn lexical_matches(
    catalog: &[&Product],
    observations: &[(u64, String)],
) -> Vec<MatchedProduct> {
    let frames: Vec<(u64, BTreeSet<String>)> = observations
        .iter()
        .map(|(i, t)| (*i, words(t).collect()))
        .collect();
    let mut out = Vec::new();
    for p in catalog {
        let (_, name) = product_words(p);
        if name.is_empty() {
            continue;
        }
        let evidence: Vec<u64> = frames
            .iter()
            .filter(|(_, w)| name.iter().all(|n| w.contains(n)))
            .map(|(i, _)| *i)
            .collect();
        if !evidence.is_empty() {
            out.push(MatchedProduct {
                product_id: p.id.clone(),
                confidence: evidence.len() as f32 / frames.len().max(1) as f32,
                evidence_frames: evidence,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(id: &str, name: &str) -> Product {
        Product {
            id: id.into(),
            organization_id: "org".into(),
            name: name.into(),
            category: String::new(),
            description: String::new(),
            tags: vec![],
            updated_at_ms: 0,
        }
    }

    #[test]
    fn prefilter_prefers_products_named_in_the_observations() {
        let catalog: Vec<Product> = (0..50)
            .map(|i| product(&format!("p{i:02}"), &format!("item {i}")))
            .chain([product("shoe", "red running shoes")])
            .collect();
        let obs = vec![(4, "A customer tries on red running shoes".to_owned())];
        let top = candidates(&catalog, &obs, 3);
        assert_eq!(top.len(), 3);
        assert_eq!(top[0].id, "shoe");
        let m = lexical_matches(&top, &obs);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].evidence_frames, vec![4]);
    }
}
