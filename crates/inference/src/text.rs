//! Text tasks crow gives a language model — proposing catalog products for a batch of descriptions, and
//! phrasing an analysis's measured facts — independent of where the model runs: [`TextGenerator`] is implemented by the
//! local llama.cpp model (`llama::TextModel`, JSON by GBNF grammar) and by OpenAI-compatible servers
//! (`remote::RemoteText`, JSON by `response_format` json_schema). Either way the answer is a proposal:
//! it is checked against the task's [`JsonShape`] and then against the catalog and the frames shown
//! before anyone reads it.

use crate::grammar::JsonShape;
use crate::InferenceError;

/// Token counts and timings of one generation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationStats {
    /// Tokens of the prompt (text and image).
    pub prompt_tokens: usize,
    /// Tokens of the image chunk(s).
    pub image_tokens: usize,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// Time to evaluate the prompt (image encode + decode), ms.
    pub prompt_ms: f64,
    /// Time to generate, ms.
    pub generate_ms: f64,
}

/// A product of an organization's catalog, as the matcher sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CatalogProduct {
    /// Catalog id.
    pub id: String,
    /// Name and short description.
    pub name: String,
}

/// A product the model proposes for a batch: the frames it says show it and the words of their
/// descriptions it relies on. A proposal is not a fact: crow checks it against the descriptions
/// before anything is stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProductProposal {
    /// A catalog id (the grammar allows only the candidates shown).
    pub product_id: String,
    /// Frames whose descriptions the model cites (only frames it was shown, distinct, in order).
    pub frames: Vec<u64>,
    /// The span of a cited description that names the product, as the model copied it.
    pub quote: String,
}

/// The matcher's answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProductMatch {
    /// Proposals, each product at most once.
    pub proposals: Vec<ProductProposal>,
    /// Ids the model produced that are not in the catalog (always 0 with the grammar; counted anyway).
    pub unknown_ids_dropped: usize,
}

impl ProductMatch {
    /// The proposed catalog ids, in answer order.
    pub fn product_ids(&self) -> Vec<String> {
        self.proposals
            .iter()
            .map(|m| m.product_id.clone())
            .collect()
    }
}

/// Most products one answer may name.
pub const MAX_MATCHES: usize = 4;
/// Most frames one proposal may cite.
pub const MAX_CITED_FRAMES: usize = 4;
/// Longest quote, characters.
pub const MAX_QUOTE_CHARS: usize = 60;

/// The shape of a product-matching answer, compact JSON:
/// `{"matches":[{"product_id":id,"frames":[frame indexes],"quote":"..."}]}` with distinct catalog ids in
/// catalog order, 1 to [`MAX_CITED_FRAMES`] distinct frame indexes in increasing order from the
/// observations only, and a quote of at most [`MAX_QUOTE_CHARS`] characters. No field is free-form
/// enough to run on: the longest answer is bounded by the grammar itself.
pub fn product_match_shape(catalog: &[CatalogProduct], frames: &[u64]) -> JsonShape {
    let mut frames = frames.to_vec();
    frames.sort_unstable();
    frames.dedup();
    let cited = || JsonShape::Subset {
        items: frames
            .iter()
            .map(|f| JsonShape::OneOfInt(vec![*f]))
            .collect(),
        max: MAX_CITED_FRAMES,
    };
    let items = if frames.is_empty() {
        Vec::new()
    } else {
        catalog
            .iter()
            .map(|p| {
                JsonShape::object([
                    ("product_id", JsonShape::OneOf(vec![p.id.clone()])),
                    ("frames", cited()),
                    (
                        "quote",
                        JsonShape::String {
                            max_chars: MAX_QUOTE_CHARS,
                        },
                    ),
                ])
            })
            .collect()
    };
    JsonShape::object([(
        "matches",
        JsonShape::Subset {
            items,
            max: MAX_MATCHES,
        },
    )])
}

/// Most statements a phrased analysis has.
pub const MAX_STATEMENTS: usize = 4;
/// Most facts one statement may cite.
pub const MAX_FACTS_PER_STATEMENT: usize = 4;

/// The shape of a phrased analysis for `facts` numbered facts: up to [`MAX_STATEMENTS`] statements, each
/// a sentence of at most 200 characters and the numbers (1-based, increasing) of the facts it states.
pub fn phrasing_shape(facts: usize) -> JsonShape {
    let cited = JsonShape::Subset {
        items: (1..=facts as u64)
            .map(|i| JsonShape::OneOfInt(vec![i]))
            .collect(),
        max: MAX_FACTS_PER_STATEMENT,
    };
    JsonShape::object([(
        "statements",
        JsonShape::Array {
            item: Box::new(JsonShape::object([
                ("text", JsonShape::String { max_chars: 200 }),
                ("facts", cited),
            ])),
            min: 1,
            max: MAX_STATEMENTS,
        },
    )])
}

/// One statement of a phrased analysis: a sentence and the facts it states (1-based numbers). A
/// proposal: crow checks that its numbers are those facts' before it is kept.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PhrasedStatement {
    /// The sentence.
    pub text: String,
    /// The numbers of the facts it states.
    pub facts: Vec<u64>,
}

/// A model's phrasing of an analysis's facts.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Phrasing {
    /// The statements.
    pub statements: Vec<PhrasedStatement>,
}

/// A language model that answers a prompt with JSON of a given shape.
pub trait TextGenerator: Send + Sync {
    /// What answers come from (the model file, or the servers' model name), for logs.
    fn name(&self) -> String;

    /// Answers the user turn `user` with JSON of `shape` (constrained by the model's own means) and
    /// returns the raw text; callers check it ([`parse_answer`]).
    fn generate_json(
        &self,
        user: &str,
        shape: &JsonShape,
    ) -> Result<(String, GenerationStats), InferenceError>;

    /// Asks which catalog products the observations `(frame index, description)` name, with the frames
    /// and the words that show it. The answer is checked against the shape, then unknown ids are
    /// dropped and counted, frames limited to those shown, each product kept once. The result is a
    /// set of proposals for the caller to verify, never a finding.
    fn match_products(
        &self,
        observations: &[(u64, String)],
        catalog: &[CatalogProduct],
    ) -> Result<(ProductMatch, GenerationStats), InferenceError> {
        let catalog_lines: Vec<String> = catalog
            .iter()
            .map(|p| format!("- {}: {}", p.id, p.name))
            .collect();
        let frame_lines: Vec<String> = observations
            .iter()
            .map(|(i, d)| format!("- frame {i}: {d}"))
            .collect();
        let user = format!(
            "You match store camera observations to products.\nCatalog:\n{}\nObservations:\n{}\nAnswer with JSON: only the catalog products an observation explicitly names (an empty list if none), each with the frames that name it and a quote copied word for word from one of those observations.",
            catalog_lines.join("\n"),
            frame_lines.join("\n")
        );
        let frames: Vec<u64> = observations.iter().map(|(i, _)| *i).collect();
        let shape = product_match_shape(catalog, &frames);
        let (text, stats) = self.generate_json(&user, &shape)?;
        #[derive(serde::Deserialize)]
        struct Raw {
            matches: Vec<ProductProposal>,
        }
        let raw: Raw = parse_answer(&text, &shape)?;
        let mut proposals: Vec<ProductProposal> = Vec::new();
        let mut unknown = 0;
        for mut m in raw.matches {
            if !catalog.iter().any(|p| p.id == m.product_id) {
                unknown += 1;
                continue;
            }
            if proposals.iter().any(|x| x.product_id == m.product_id) {
                continue;
            }
            m.frames.retain(|f| frames.contains(f));
            m.frames.sort_unstable();
            m.frames.dedup();
            if m.frames.is_empty() {
                continue;
            }
            proposals.push(m);
        }
        Ok((
            ProductMatch {
                proposals,
                unknown_ids_dropped: unknown,
            },
            stats,
        ))
    }

    /// Phrases measured facts (one sentence each, numbered from 1 in order) for a store manager: a
    /// proposal that crow checks (every number a cited fact's) before it is kept.
    fn phrase_analysis(
        &self,
        facts: &[String],
    ) -> Result<(Phrasing, GenerationStats), InferenceError> {
        let user = format!(
            "You write a short report for a store manager from facts measured in the store.\nFacts:\n{}\nAnswer with JSON: up to {MAX_STATEMENTS} statements in plain words. Each statement restates one or more facts with exactly their numbers and lists the numbers of the facts it restates. Add nothing the facts do not say.",
            facts
                .iter()
                .enumerate()
                .map(|(i, f)| format!("[{}] {f}", i + 1))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let shape = phrasing_shape(facts.len());
        let (text, stats) = self.generate_json(&user, &shape)?;
        Ok((parse_answer(&text, &shape)?, stats))
    }
}

/// Reads a model's answer: JSON (surrounding whitespace allowed), of `shape` with every bound, then as
/// `T`. Anything else is [`InferenceError::BadAnswer`], quoting the start of the answer.
pub fn parse_answer<T: serde::de::DeserializeOwned>(
    text: &str,
    shape: &JsonShape,
) -> Result<T, InferenceError> {
    let excerpt = || text.chars().take(200).collect::<String>();
    let value: serde_json::Value = serde_json::from_str(text.trim())
        .map_err(|e| InferenceError::BadAnswer(format!("{e}: {:?}", excerpt())))?;
    shape
        .check(&value)
        .map_err(|e| InferenceError::BadAnswer(format!("{e}: {:?}", excerpt())))?;
    serde_json::from_value(value)
        .map_err(|e| InferenceError::BadAnswer(format!("{e}: {:?}", excerpt())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Vec<CatalogProduct> {
        ["red-mug", "blue-kettle"]
            .iter()
            .map(|id| CatalogProduct {
                id: (*id).into(),
                name: id.replace('-', " "),
            })
            .collect()
    }

    /// A generator that returns a fixed answer: how a server that ignored `response_format` looks to
    /// crow (the fault a real server cannot be made to produce on demand).
    struct MockServerIgnoringTheSchema(&'static str);

    impl TextGenerator for MockServerIgnoringTheSchema {
        fn name(&self) -> String {
            "mock".into()
        }
        fn generate_json(
            &self,
            _user: &str,
            _shape: &JsonShape,
        ) -> Result<(String, GenerationStats), InferenceError> {
            Ok((self.0.to_owned(), GenerationStats::default()))
        }
    }

    #[test]
    fn an_answer_outside_the_shape_is_refused_whole() {
        let observations = vec![(4, "a person lifts a red mug".to_owned())];
        for answer in [
            "Sure! The red mug.",
            r#"{"matches":[{"product_id":"red-mug","frames":[4],"quote":"red mug","confidence":0.99}]}"#,
            r#"{"matches":[{"product_id":"green-vase","frames":[4],"quote":"red mug"}]}"#,
            r#"{"matches":[{"product_id":"red-mug","frames":[7],"quote":"red mug"}]}"#,
        ] {
            let err = MockServerIgnoringTheSchema(answer)
                .match_products(&observations, &catalog())
                .unwrap_err();
            assert!(
                matches!(err, InferenceError::BadAnswer(_)),
                "{answer}: {err}"
            );
        }
        let (m, _) = MockServerIgnoringTheSchema(
            r#" {"matches":[{"quote":"red mug","frames":[4],"product_id":"red-mug"}]} "#,
        )
        .match_products(&observations, &catalog())
        .unwrap();
        assert_eq!(m.product_ids(), vec!["red-mug"]);
    }
}
