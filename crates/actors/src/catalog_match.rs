//! Product matching from evidence. A product is recorded for a batch only when crow measured or verified
//! something that shows it:
//!
//! - **dwell**: a track stayed at least the zone's `min_dwell_ms` in a zone mapped to the product;
//! - **named**: a frame description contains every word of the product's name;
//! - **quote**: the text model proposed the product with a quote, and crow found the quote, word for word,
//!   in the description of a frame the model cited, and the quote names the product (its name's words, or
//!   a span matched by meaning);
//! - **meaning**: a span of a description ("a pair of trainers") is, by the sentence-embedding model, at
//!   least the calibrated similarity to one of the product's texts (name, aliases, description), and
//!   closer to it than to any other product; the span and the text it matched are kept.
//!
//! Each piece of evidence has a confidence computed from what was measured (detector scores, dwell time,
//! the describer's confidence), never from a model's own number; a product's confidence combines its
//! evidence as independent signals, `1 - prod(1 - c)`. The lexical prefilter that picks the candidates the
//! model sees is here too.

use std::collections::BTreeSet;

use crow_inference::llama::{CatalogProduct, ProductProposal};
use crow_storage::text::words;
use crow_storage::{FrameAnalysis, Product, TrackEvent, TrackEventKind};
use serde::{Deserialize, Serialize};

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
    catalog: &[&'a Product],
    observations: &[(u64, String)],
    k: usize,
) -> Vec<&'a Product> {
    if catalog.len() <= k {
        return catalog.to_vec();
    }
    let text: BTreeSet<String> = observations.iter().flat_map(|(_, t)| words(t)).collect();
    let mut scored: Vec<(usize, &Product)> =
        catalog.iter().map(|p| (score(p, &text), *p)).collect();
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

/// One piece of evidence for a product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Evidence {
    /// A track dwelt in a zone mapped to the product.
    Dwell {
        /// The track.
        track_id: u64,
        /// The zone.
        zone: String,
        /// Time in the zone, ms.
        dwell_ms: i64,
        /// The track's mean detector score.
        detector_score: f32,
        /// Described frames of the visit.
        frames: Vec<u64>,
        /// This evidence's confidence.
        confidence: f32,
    },
    /// Descriptions contain every word of the product's name.
    Named {
        /// The frames whose descriptions do.
        frames: Vec<u64>,
        /// This evidence's confidence.
        confidence: f32,
    },
    /// A span of the descriptions means one of the product's texts.
    Meaning {
        /// The span, as words of the descriptions.
        span: String,
        /// The product's text it matched (its name, an alias or its description).
        matched: String,
        /// Cosine similarity of the two, measured by the embedding model.
        similarity: f32,
        /// The frames whose descriptions hold the span.
        frames: Vec<u64>,
        /// This evidence's confidence.
        confidence: f32,
    },
    /// A model proposal whose quote crow found in the cited descriptions.
    Quote {
        /// The quote.
        quote: String,
        /// The cited frames whose descriptions contain it.
        frames: Vec<u64>,
        /// This evidence's confidence.
        confidence: f32,
    },
}

impl Evidence {
    /// `dwell`, `named`, `meaning` or `quote`.
    pub fn kind(&self) -> &'static str {
        match self {
            Evidence::Dwell { .. } => "dwell",
            Evidence::Named { .. } => "named",
            Evidence::Meaning { .. } => "meaning",
            Evidence::Quote { .. } => "quote",
        }
    }

    fn confidence(&self) -> f32 {
        match self {
            Evidence::Dwell { confidence, .. }
            | Evidence::Named { confidence, .. }
            | Evidence::Meaning { confidence, .. }
            | Evidence::Quote { confidence, .. } => *confidence,
        }
    }

    fn frames(&self) -> &[u64] {
        match self {
            Evidence::Dwell { frames, .. }
            | Evidence::Named { frames, .. }
            | Evidence::Meaning { frames, .. }
            | Evidence::Quote { frames, .. } => frames,
        }
    }
}

/// A product recorded for a batch, with everything that shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductFinding {
    /// A catalog id.
    pub product_id: String,
    /// `1 - prod(1 - c)` over the evidence's confidences, 0..1.
    pub confidence: f32,
    /// Every frame the evidence cites, in order.
    pub evidence_frames: Vec<u64>,
    /// What shows it.
    pub evidence: Vec<Evidence>,
}

/// A model proposal that crow's check refused, kept in the record for the analyst (and counted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefusedProposal {
    /// The proposed catalog id.
    pub product_id: String,
    /// Its quote.
    pub quote: String,
    /// Why it was refused.
    pub reason: String,
}

/// Collects evidence per product and turns it into findings.
#[derive(Default)]
pub(crate) struct Findings {
    by_product: Vec<(String, Vec<Evidence>)>,
}

impl Findings {
    /// Whether the product has evidence of this kind already.
    fn has(&self, product_id: &str, kind: &str) -> bool {
        self.by_product
            .iter()
            .any(|(id, list)| id == product_id && list.iter().any(|e| e.kind() == kind))
    }

    fn add(&mut self, product_id: &str, evidence: Evidence) {
        match self.by_product.iter_mut().find(|(id, _)| id == product_id) {
            Some((_, list)) => list.push(evidence),
            None => self
                .by_product
                .push((product_id.to_owned(), vec![evidence])),
        }
    }

    /// The findings, by product id.
    pub(crate) fn into_findings(mut self) -> Vec<ProductFinding> {
        self.by_product.sort_by(|a, b| a.0.cmp(&b.0));
        self.by_product
            .into_iter()
            .map(|(product_id, evidence)| {
                let miss: f32 = evidence
                    .iter()
                    .map(|e| 1.0 - e.confidence().clamp(0.0, 1.0))
                    .product();
                let mut frames: Vec<u64> =
                    evidence.iter().flat_map(|e| e.frames().to_vec()).collect();
                frames.sort_unstable();
                frames.dedup();
                ProductFinding {
                    product_id,
                    confidence: round3(1.0 - miss),
                    evidence_frames: frames,
                    evidence,
                }
            })
            .collect()
    }
}

fn round3(v: f32) -> f32 {
    (v * 1000.0).round() / 1000.0
}

/// Dwell evidence: every `zone_dwell` event of the batch whose zone maps to catalog products. Confidence:
/// the track's mean detector score x `min(1, 0.5 + dwell_s / 20)` (a 3 s dwell counts 0.65 of the score,
/// 10 s or more all of it). Mapped ids missing from the catalog are ignored.
pub(crate) fn dwell_evidence(findings: &mut Findings, catalog: &[Product], events: &[TrackEvent]) {
    for e in events
        .iter()
        .filter(|e| e.kind == TrackEventKind::ZoneDwell)
    {
        let dwell_ms = e.dwell_ms.unwrap_or(0);
        let confidence = round3(e.score * (0.5 + dwell_ms as f32 / 20_000.0).min(1.0));
        for id in &e.product_ids {
            if !catalog.iter().any(|p| &p.id == id) {
                continue;
            }
            findings.add(
                id,
                Evidence::Dwell {
                    track_id: e.track_id,
                    zone: e.place.clone().unwrap_or_default(),
                    dwell_ms,
                    detector_score: e.score,
                    frames: e.evidence_frames.clone(),
                    confidence,
                },
            );
        }
    }
}

/// Named evidence: the frames whose description contains every word of the product's name.
/// Confidence: the mean describer confidence of those frames x `(0.5 + 0.5 x share of the batch's frames)`.
pub(crate) fn named_evidence(
    findings: &mut Findings,
    catalog: &[&Product],
    frames: &[FrameAnalysis],
) {
    let described: Vec<(&FrameAnalysis, BTreeSet<String>)> = frames
        .iter()
        .map(|f| (f, words(&f.text).collect()))
        .collect();
    for p in catalog {
        let (_, name) = product_words(p);
        if name.is_empty() {
            continue;
        }
        let naming: Vec<&FrameAnalysis> = described
            .iter()
            .filter(|(_, w)| name.iter().all(|n| w.contains(n)))
            .map(|(f, _)| *f)
            .collect();
        if naming.is_empty() {
            continue;
        }
        let mean = naming.iter().map(|f| f.confidence).sum::<f32>() / naming.len() as f32;
        let share = naming.len() as f32 / frames.len().max(1) as f32;
        findings.add(
            &p.id,
            Evidence::Named {
                frames: naming.iter().map(|f| f.frame_index).collect(),
                confidence: round3(mean * (0.5 + 0.5 * share)),
            },
        );
    }
}

/// Whether `needle` occurs as consecutive words of `haystack`.
fn contains_words(haystack: &[String], needle: &[String]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Words too common to name a product.
const STOPWORDS: [&str; 16] = [
    "a", "an", "and", "at", "by", "for", "from", "in", "of", "on", "or", "the", "to", "with",
    "its", "is",
];

/// Whether `quote` names the product: it holds at least two thirds (rounded up) of the product name's
/// words, not counting stopwords: every word of a one- or two-word name, 2 of 3, 3 of 4. "leather
/// handbag" names a "leather handbag", "handbag" alone does not; "people" does not name "walking shoes
/// for people on the move".
fn names_product(quote: &[String], name: &BTreeSet<String>) -> bool {
    let significant: Vec<&String> = name
        .iter()
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .collect();
    let found = significant.iter().filter(|w| quote.contains(w)).count();
    !significant.is_empty() && found * 3 >= significant.len() * 2
}

/// Checks the model's proposals: the quote must occur word for word in the description of a frame the
/// proposal cites, and must name the product (see `names_product`) or hold a span matched to it by
/// meaning (`meaning`, from [`match_spans`]). Accepted ones
/// become quote evidence with confidence `0.6 x` the mean describer confidence of the frames that hold
/// it (`0.8 x` when the quote holds the whole name); the others are returned with the reason.
pub(crate) fn verify_proposals(
    findings: &mut Findings,
    catalog: &[&Product],
    frames: &[FrameAnalysis],
    proposals: &[ProductProposal],
    meaning: &[SpanMatch],
) -> Vec<RefusedProposal> {
    let mut refused = Vec::new();
    for proposal in proposals {
        let refuse = |reason: &str| RefusedProposal {
            product_id: proposal.product_id.clone(),
            quote: proposal.quote.clone(),
            reason: reason.to_owned(),
        };
        let Some(product) = catalog.iter().find(|p| p.id == proposal.product_id) else {
            refused.push(refuse("not a candidate of the catalog"));
            continue;
        };
        let quote: Vec<String> = words(&proposal.quote).collect();
        let (_, name) = product_words(product);
        let means_product = meaning.iter().any(|m| {
            m.product_id == product.id
                && contains_words(&quote, &words(&m.span).collect::<Vec<_>>())
        });
        if !names_product(&quote, &name) && !means_product {
            refused.push(refuse("the quote does not name the product"));
            continue;
        }
        let holding: Vec<&FrameAnalysis> = frames
            .iter()
            .filter(|f| proposal.frames.contains(&f.frame_index))
            .filter(|f| contains_words(&words(&f.text).collect::<Vec<_>>(), &quote))
            .collect();
        if holding.is_empty() {
            refused.push(refuse("the quote is not in the cited descriptions"));
            continue;
        }
        let mean = holding.iter().map(|f| f.confidence).sum::<f32>() / holding.len() as f32;
        let whole_name = name.iter().all(|n| quote.contains(n));
        findings.add(
            &product.id,
            Evidence::Quote {
                quote: proposal.quote.clone(),
                frames: holding.iter().map(|f| f.frame_index).collect(),
                confidence: round3(mean * if whole_name { 0.8 } else { 0.6 }),
            },
        );
    }
    refused
}

/// Words that end a span that could name a product: function words, verbs of what people do, and words
/// for people (crow counts people with its detector; a description's "people" names no product).
const SPAN_BREAKS: [&str; 96] = [
    "a",
    "an",
    "and",
    "are",
    "as",
    "at",
    "be",
    "been",
    "but",
    "by",
    "for",
    "from",
    "has",
    "have",
    "her",
    "his",
    "in",
    "into",
    "is",
    "it",
    "its",
    "near",
    "next",
    "of",
    "off",
    "on",
    "onto",
    "or",
    "out",
    "over",
    "she",
    "he",
    "that",
    "the",
    "their",
    "them",
    "then",
    "they",
    "this",
    "to",
    "up",
    "while",
    "with",
    "without",
    "carries",
    "checks",
    "compares",
    "holds",
    "looks",
    "lifts",
    "opens",
    "picks",
    "puts",
    "reads",
    "stands",
    "takes",
    "tries",
    "walks",
    "wears",
    "smells",
    "sprays",
    "tests",
    "plays",
    "pays",
    "waits",
    "examines",
    "inspects",
    "browses",
    "pushes",
    "pulls",
    "points",
    "talks",
    "runs",
    "sits",
    "uses",
    "adult",
    "boy",
    "child",
    "customer",
    "customers",
    "girl",
    "man",
    "men",
    "people",
    "person",
    "shopper",
    "shoppers",
    "someone",
    "teenager",
    "woman",
    "women",
    "detected",
    "motion",
    "region",
    "regions",
    "no",
];

/// Longest span kept whole; longer runs give only their windows of up to three words.
const MAX_SPAN_WORDS: usize = 5;

/// The spans of a description that could name a product, as lower-case words joined by spaces: each
/// run of words between break words (function words, actions, people), whole when at most five
/// words, and every window of one to three words inside it. "A man holds a pair of red running shoes" gives "pair", "red running shoes",
/// "red running", "running shoes", "red", "running", "shoes". Numbers alone are not spans.
pub fn description_spans(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |span: &[String]| {
        if span.iter().all(|w| w.chars().all(|c| c.is_ascii_digit())) {
            return;
        }
        let joined = span.join(" ");
        if !out.contains(&joined) {
            out.push(joined);
        }
    };
    let words: Vec<String> = words(text).collect();
    for run in words.split(|w| SPAN_BREAKS.contains(&w.as_str())) {
        if run.is_empty() {
            continue;
        }
        if run.len() <= MAX_SPAN_WORDS {
            push(run);
        }
        for len in (1..=run.len().min(3)).rev() {
            for window in run.windows(len) {
                push(window);
            }
        }
    }
    out
}

/// A description span that means a catalog product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanMatch {
    /// The catalog id.
    pub product_id: String,
    /// The span (lower-case words of a description).
    pub span: String,
    /// The product's text it matched.
    pub matched: String,
    /// Their cosine similarity.
    pub similarity: f32,
}

/// How much closer to its best product a span must be than to another for both to count ("leather
/// handbag" may be as close to a handbag as to a leather wallet; then both are kept).
const SPAN_TIE: f32 = 0.02;

/// Whether `span` is one word that is only part of `text` ("bag" of "shoulder bag", "bottle" of "scent
/// bottle"): a word a product's text shares, not a mention of the product. Plurals count as the word.
fn partial_mention(span: &str, text: &str) -> bool {
    let singular = |w: &str| w.strip_suffix('s').unwrap_or(w).to_owned();
    let span: Vec<String> = words(span).map(|w| singular(&w)).collect();
    let text: Vec<String> = words(text).map(|w| singular(&w)).collect();
    span.len() == 1 && text.len() > 1 && text.contains(&span[0])
}

/// Texts with their vectors (unit length).
pub type EmbeddedTexts = Vec<(String, Vec<f32>)>;

/// Matches spans to products by their vectors (unit length): a span supports the product it is most
/// similar to (and any within 0.02 of it) when that similarity is at least `floor`; each
/// product keeps its most similar span. A one-word span that is only part of a product's text (see
/// `partial_mention`) does not match that text. `products` holds each product's texts with their
/// vectors. By product id.
pub fn match_spans(
    spans: &[(String, Vec<f32>)],
    products: &[(String, EmbeddedTexts)],
    floor: f32,
) -> Vec<SpanMatch> {
    let mut best: Vec<Option<SpanMatch>> = vec![None; products.len()];
    for (span, sv) in spans {
        let scored: Vec<(usize, f32, &str)> = products
            .iter()
            .enumerate()
            .filter_map(|(n, (_, texts))| {
                texts
                    .iter()
                    .filter(|(t, _)| !partial_mention(span, t))
                    .map(|(t, tv)| (n, cosine(sv, tv), t.as_str()))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
            })
            .collect();
        let Some(top) = scored.iter().map(|s| s.1).max_by(f32::total_cmp) else {
            continue;
        };
        for (n, similarity, matched) in scored {
            if similarity < floor || similarity < top - SPAN_TIE {
                continue;
            }
            if best[n].as_ref().is_none_or(|b| similarity > b.similarity) {
                best[n] = Some(SpanMatch {
                    product_id: products[n].0.clone(),
                    span: span.clone(),
                    matched: matched.to_owned(),
                    similarity: round3(similarity),
                });
            }
        }
    }
    let mut out: Vec<SpanMatch> = best.into_iter().flatten().collect();
    out.sort_by(|a, b| a.product_id.cmp(&b.product_id));
    out
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Meaning evidence: each matched span, with the frames whose descriptions hold it. A product whose
/// name was found word for word has that (stronger) evidence of the same fact and gets none.
/// Confidence: `0.7 x` similarity `x` the mean describer confidence of those frames.
pub(crate) fn meaning_evidence(
    findings: &mut Findings,
    matches: &[SpanMatch],
    frames: &[FrameAnalysis],
) {
    for m in matches {
        if findings.has(&m.product_id, "named") {
            continue;
        }
        let span: Vec<String> = words(&m.span).collect();
        let holding: Vec<&FrameAnalysis> = frames
            .iter()
            .filter(|f| contains_words(&words(&f.text).collect::<Vec<_>>(), &span))
            .collect();
        if holding.is_empty() {
            continue;
        }
        let mean = holding.iter().map(|f| f.confidence).sum::<f32>() / holding.len() as f32;
        findings.add(
            &m.product_id,
            Evidence::Meaning {
                span: m.span.clone(),
                matched: m.matched.clone(),
                similarity: m.similarity,
                frames: holding.iter().map(|f| f.frame_index).collect(),
                confidence: round3(0.7 * m.similarity * mean),
            },
        );
    }
}

/// The products some single description could name (it holds at least half of the name's words, the
/// rule a quote must pass), best first, at most `k`: the only proposals the check could accept, so the
/// text model is not asked about any other.
pub(crate) fn named_candidates<'a>(
    catalog: &'a [Product],
    frames: &[FrameAnalysis],
    k: usize,
) -> Vec<&'a Product> {
    let described: Vec<Vec<String>> = frames.iter().map(|f| words(&f.text).collect()).collect();
    let possible: Vec<&Product> = catalog
        .iter()
        .filter(|p| {
            let (_, name) = product_words(p);
            described.iter().any(|d| names_product(d, &name))
        })
        .collect();
    let observations: Vec<(u64, String)> = frames
        .iter()
        .map(|f| (f.frame_index, f.text.clone()))
        .collect();
    candidates(&possible, &observations, k)
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
            aliases: vec![],
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
        let top = candidates(&catalog.iter().collect::<Vec<_>>(), &obs, 3);
        assert_eq!(top.len(), 3);
        assert_eq!(top[0].id, "shoe");
        let mut f = Findings::default();
        named_evidence(
            &mut f,
            &top,
            &[frame(4, "A customer tries on red running shoes")],
        );
        let m = f.into_findings();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].evidence_frames, vec![4]);
    }

    fn frame(i: u64, text: &str) -> FrameAnalysis {
        FrameAnalysis {
            frame_index: i,
            captured_at_ms: 0,
            describer: "test".into(),
            text: text.into(),
            confidence: 0.9,
            tags: vec![],
            details: serde_json::Value::Null,
        }
    }

    fn proposal(id: &str, frames: &[u64], quote: &str) -> ProductProposal {
        ProductProposal {
            product_id: id.into(),
            frames: frames.to_vec(),
            quote: quote.into(),
        }
    }

    #[test]
    fn the_check_not_the_model_decides() {
        let catalog = [
            product("bag", "leather handbag"),
            product("cap", "baseball cap"),
            product("walk", "walking shoes for people on the move"),
        ];
        let refs: Vec<&Product> = catalog.iter().collect();
        let frames = [
            frame(1, "2 people detected (centre); motion in 1 region"),
            frame(2, "A woman holds a leather handbag near the till"),
        ];
        let mut f = Findings::default();
        let refused = verify_proposals(
            &mut f,
            &refs,
            &frames,
            &[
                // Named nowhere: the description of frame 1 says nothing about caps.
                proposal("cap", &[1], "the bag is a baseball cap"),
                // A real quote, but not one that names a bag.
                proposal("bag", &[1], "people detected"),
                // One word of four does not name "walking shoes for people on the move".
                proposal("walk", &[1], "2 people detected"),
                // Right words, wrong frame.
                proposal("bag", &[1], "leather handbag"),
                // Verified.
                proposal("bag", &[2], "holds a leather handbag"),
            ],
            &[],
        );
        assert_eq!(refused.len(), 4, "{refused:?}");
        let found = f.into_findings();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].product_id, "bag");
        assert_eq!(found[0].evidence_frames, vec![2]);
        assert!((found[0].confidence - 0.72).abs() < 1e-3, "{found:?}");
    }

    #[test]
    fn spans_are_word_runs_between_function_words_people_and_actions() {
        assert_eq!(
            description_spans("A man holds a pair of red running shoes"),
            [
                "pair",
                "red running shoes",
                "red running",
                "running shoes",
                "red",
                "running",
                "shoes"
            ]
        );
        // The scene describer's counts name nothing: no people, no numbers alone.
        assert_eq!(
            description_spans("2 people detected (centre); motion in 1 region"),
            ["centre"]
        );
    }

    #[test]
    fn a_span_supports_its_closest_product_above_the_floor_and_never_a_partial_word() {
        let unit = |v: [f32; 3]| {
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter().map(|x| x / n).collect::<Vec<f32>>()
        };
        let products = vec![
            (
                "bag".to_owned(),
                vec![("shoulder bag".to_owned(), unit([1.0, 0.0, 0.0]))],
            ),
            (
                "shoes".to_owned(),
                vec![
                    ("running shoes".to_owned(), unit([0.0, 1.0, 0.0])),
                    ("trainers".to_owned(), unit([0.0, 0.9, 0.3])),
                ],
            ),
        ];
        let spans = vec![
            // Close to the trainers alias.
            ("sneakers".to_owned(), unit([0.0, 0.85, 0.35])),
            // As close to the bag as "sneakers" to the shoes, but one word of "shoulder bag".
            ("bags".to_owned(), unit([1.0, 0.0, 0.05])),
            // Far from both.
            ("till".to_owned(), unit([0.1, 0.1, 1.0])),
        ];
        let found = match_spans(&spans, &products, 0.7);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].product_id, "shoes");
        assert_eq!(found[0].span, "sneakers");
        assert_eq!(found[0].matched, "trainers");
        assert!(found[0].similarity > 0.99);
        assert!(match_spans(&spans, &products, 0.999).is_empty());

        // Evidence only where a frame's description holds the span.
        let mut f = Findings::default();
        meaning_evidence(
            &mut f,
            &found,
            &[
                frame(1, "A man waits at the till"),
                frame(2, "Two sneakers on the bench"),
            ],
        );
        let found = f.into_findings();
        assert_eq!(found[0].evidence_frames, vec![2]);
        assert_eq!(found[0].evidence[0].kind(), "meaning");
    }

    #[test]
    fn dwell_in_a_mapped_zone_is_evidence_and_unknown_ids_are_not() {
        let catalog = [product("sku-1", "sneakers")];
        let event = TrackEvent {
            kind: TrackEventKind::ZoneDwell,
            track_id: 3,
            frame_index: 40,
            at_ms: 0,
            place: Some("shelf".into()),
            dwell_ms: Some(10_000),
            product_ids: vec!["sku-1".into(), "sku-gone".into()],
            score: 0.8,
            evidence_frames: vec![30, 40],
        };
        let enter = TrackEvent {
            kind: TrackEventKind::ZoneEnter,
            ..event.clone()
        };
        let mut f = Findings::default();
        dwell_evidence(&mut f, &catalog, &[enter, event]);
        let found = f.into_findings();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].product_id, "sku-1");
        assert_eq!(found[0].evidence_frames, vec![30, 40]);
        assert!((found[0].confidence - 0.8).abs() < 1e-3);
    }
}
