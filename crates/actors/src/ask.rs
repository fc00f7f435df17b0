//! `Ask`: a question about an organization's records. A question about a quantity ("how many people
//! came in through the door yesterday between 3 and 4 pm?") is read into a plan and answered from the
//! store metrics with the records whose events make the number ([`crate::quantity`]); one about
//! something crow does not measure gets "I cannot measure that". Any other question is answered by the
//! text model from the records that search by meaning retrieves, every statement citing its records.
//!
//! The model's answer is a proposal. Its JSON is constrained to cite only the retrieved records (by
//! their labels `R1`, `R2`, ...), and crow then checks each citation: the statement must be close in
//! meaning to one of the cited record's texts (the same sentence embeddings, at least
//! [`CITATION_MIN_SIMILARITY`]). Citations that fail are dropped, and a statement left without one is
//! refused. With no retrieved record, or no statement left, the answer says that no record was found:
//! it never falls back to the model's own knowledge.

use std::collections::HashSet;
use std::sync::Arc;

use crow_inference::grammar::JsonShape;
use crow_inference::text::parse_answer;
use crow_storage::embeddings::embedding_texts;
use crow_storage::{InteractionFilter, Records, SourceType};
use serde::Deserialize;

use crow_inference::text::TextGenerator;
use tokio::sync::Semaphore;

use crate::error::validate_id;
use crate::quantity::{self, Reading};
use crate::semantic::SemanticSearch;
use crate::{PipelineError, SemanticHit, SemanticQuery};

/// Most records shown to the model for one question.
pub const ASK_MAX_RECORDS: usize = 8;
/// Most statements an answer may have.
pub const ASK_MAX_STATEMENTS: usize = 4;
/// A citation holds when the statement is at least this similar (cosine) to one of the cited record's
/// texts: a restatement or a close paraphrase, not merely the same subject.
pub const CITATION_MIN_SIMILARITY: f32 = 0.5;
/// Most records one statement may cite.
const MAX_CITATIONS: usize = 3;
/// Longest statement, characters.
const MAX_STATEMENT_CHARS: usize = 240;
/// Most characters of one record shown to the model.
const MAX_RECORD_CHARS: usize = 600;

/// One statement of an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// What the model says.
    pub text: String,
    /// The records it cites.
    pub interaction_ids: Vec<String>,
    /// Cosine similarity of the statement to the closest text of its cited records.
    pub support: f32,
}

/// The answer to a question.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Whether any statement survived the checks.
    pub found: bool,
    /// The statements joined, each followed by its citation markers (`[1]`, `[2]`).
    pub answer: String,
    /// The statements kept.
    pub statements: Vec<Statement>,
    /// The records retrieved for the question, best first (those cited are among them).
    pub records: Vec<SemanticHit>,
    /// Ids of the cited records, in the order of their markers.
    pub cited: Vec<String>,
    /// Statements refused.
    pub refused: usize,
    /// The text model.
    pub model: String,
}

#[derive(Deserialize)]
struct ModelAnswer {
    statements: Vec<ModelStatement>,
}

#[derive(Deserialize)]
struct ModelStatement {
    text: String,
    records: Vec<String>,
}

fn answer_shape(labels: &[String]) -> JsonShape {
    JsonShape::Object(vec![(
        "statements".into(),
        JsonShape::Array {
            item: Box::new(JsonShape::Object(vec![
                (
                    "text".into(),
                    JsonShape::String {
                        max_chars: MAX_STATEMENT_CHARS,
                    },
                ),
                (
                    "records".into(),
                    JsonShape::Subset {
                        items: labels
                            .iter()
                            .map(|l| JsonShape::OneOf(vec![l.clone()]))
                            .collect(),
                        max: MAX_CITATIONS,
                    },
                ),
            ])),
            min: 0,
            max: ASK_MAX_STATEMENTS,
        },
    )])
}

fn prompt(question: &str, records: &[SemanticHit]) -> String {
    let mut lines = vec![
        "You answer questions about what happened in a retail store, using ONLY the records below \
         (CCTV observations and web/social events). Write short factual statements in your own words \
         and cite, by label, the records that show each one. If the records do not answer the \
         question, return an empty list of statements."
            .to_owned(),
        "Records:".to_owned(),
    ];
    for (n, hit) in records.iter().enumerate() {
        let text: String = embedding_texts(&hit.interaction).join(" ");
        let text: String = text.chars().take(MAX_RECORD_CHARS).collect();
        lines.push(format!("R{}: {text}", n + 1));
    }
    lines.push(format!("Question: {question}"));
    lines.join("\n")
}

/// Answers questions about an organization's records. Cheap to clone.
#[derive(Clone)]
pub struct AskService {
    /// The records and store metrics quantity questions are answered from.
    records: Records,
    /// Search by meaning, when it is on and this node serves the API.
    search: Option<Arc<SemanticSearch>>,
    model: Option<Arc<dyn TextGenerator>>,
    /// Questions admitted (answering or waiting: `analysis.slots + analysis.queue`).
    admission: Arc<Semaphore>,
    /// Questions answering at once (`analysis.slots`).
    slots: Arc<Semaphore>,
}

impl AskService {
    /// Questions answered `slots` at once, with `queue` more waiting.
    pub(crate) fn new(
        records: Records,
        search: Option<Arc<SemanticSearch>>,
        model: Option<Arc<dyn TextGenerator>>,
        slots: usize,
        queue: usize,
    ) -> Self {
        Self {
            records,
            search,
            model,
            admission: Arc::new(Semaphore::new(slots + queue)),
            slots: Arc::new(Semaphore::new(slots)),
        }
    }

    /// Answers `question` from the organization's records in `filter`'s source and time range (its
    /// words are not used). See the module documentation for what is checked.
    pub async fn ask(
        &self,
        organization_id: &str,
        question: &str,
        filter: &InteractionFilter,
    ) -> Result<Answer, PipelineError> {
        validate_id("organization_id", organization_id)?;
        if question.trim().is_empty() {
            return Err(PipelineError::InvalidArgument(
                "question has no text".into(),
            ));
        }
        crow_storage::validate_filter(filter)?;
        if let Some(answer) = self
            .answer_quantity(organization_id, question, filter)
            .await?
        {
            return Ok(answer);
        }
        let search = self.search.clone().ok_or_else(|| {
            PipelineError::FailedPrecondition(
                "search by meaning is off on this server (pipeline.search, or its model is not installed)".into(),
            )
        })?;
        let model = self.model.clone().ok_or_else(|| {
            PipelineError::FailedPrecondition(
                "no text model is loaded: set analysis.model to a GGUF file (scripts/setup-models.sh installs the default)".into(),
            )
        })?;
        let _admitted = Arc::clone(&self.admission)
            .try_acquire_owned()
            .map_err(|_| {
                PipelineError::ResourceExhausted(
                    "too many questions: pipeline.analysis.slots are answering and pipeline.analysis.queue wait".into(),
                )
            })?;
        let retrieval = InteractionFilter {
            query: None,
            ..filter.clone()
        };
        let records: Vec<SemanticHit> = search
            .search(SemanticQuery {
                organization_id,
                question,
                filter: &retrieval,
                page_size: ASK_MAX_RECORDS,
                page_token: None,
                min_similarity: Some(search.config().ask_min_similarity),
            })
            .await?
            .hits;
        let name = model.name();
        let none = |records: Vec<SemanticHit>, refused: usize, why: &str| Answer {
            found: false,
            answer: why.to_owned(),
            statements: Vec::new(),
            records,
            cited: Vec::new(),
            refused,
            model: name.clone(),
        };
        if records.is_empty() {
            return Ok(none(
                records,
                0,
                "No records match this question in the time range asked.",
            ));
        }
        let labels: Vec<String> = (1..=records.len()).map(|n| format!("R{n}")).collect();
        let shape = answer_shape(&labels);
        let user = prompt(question, &records);
        let _slot = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|_| PipelineError::Unavailable("the pipeline is stopping".into()))?;
        let answer: ModelAnswer = {
            let (model, wanted) = (Arc::clone(&model), shape.clone());
            let (text, _) =
                tokio::task::spawn_blocking(move || model.generate_json(&user, &wanted))
                    .await
                    .map_err(|e| PipelineError::Internal(format!("answering task: {e}")))?
                    .map_err(|e| {
                        PipelineError::Unavailable(format!("the text model failed: {e}"))
                    })?;
            parse_answer(&text, &shape)
                .map_err(|e| PipelineError::Unavailable(format!("the text model failed: {e}")))?
        };
        drop(_slot);

        // Check each statement against the records it cites.
        let mut statements = Vec::new();
        let mut refused = 0;
        let mut seen_texts = HashSet::new();
        let texts: Vec<String> = answer
            .statements
            .iter()
            .map(|s| without_label(&s.text))
            .collect();
        let vectors = if texts.is_empty() {
            Vec::new()
        } else {
            search.embed(texts.clone()).await?
        };
        let floor = CITATION_MIN_SIMILARITY;
        for ((s, text), vector) in answer.statements.iter().zip(&texts).zip(&vectors) {
            let cited: Vec<usize> = s
                .records
                .iter()
                .filter_map(|l| labels.iter().position(|x| x == l))
                .collect();
            if text.is_empty() || cited.is_empty() || !seen_texts.insert(text.clone()) {
                tracing::debug!(statement = %text, records = ?s.records, "statement refused: no citation or a repeat");
                refused += 1;
                continue;
            }
            // Each citation must hold: the statement is close in meaning to a text of that record.
            let mut kept = Vec::new();
            let mut support = f32::MIN;
            for n in cited {
                let best = search
                    .embed(embedding_texts(&records[n].interaction))
                    .await?
                    .iter()
                    .map(|v| v.iter().zip(vector).map(|(a, b)| a * b).sum::<f32>())
                    .fold(f32::MIN, f32::max);
                if best >= floor {
                    kept.push(records[n].interaction.id.clone());
                    support = support.max(best);
                }
            }
            if kept.is_empty() {
                tracing::debug!(statement = %text, "statement refused: not close to the records it cites");
                refused += 1;
                continue;
            }
            statements.push(Statement {
                text: text.clone(),
                interaction_ids: kept,
                support,
            });
        }
        if statements.is_empty() {
            return Ok(none(
                records,
                refused,
                "No records support an answer to this question.",
            ));
        }
        let mut cited: Vec<String> = Vec::new();
        let mut parts = Vec::new();
        for s in &statements {
            let mut marks = String::new();
            for id in &s.interaction_ids {
                let n = match cited.iter().position(|c| c == id) {
                    Some(n) => n,
                    None => {
                        cited.push(id.clone());
                        cited.len() - 1
                    }
                };
                marks.push_str(&format!("[{}]", n + 1));
            }
            let text = s.text.trim_end_matches('.');
            parts.push(format!("{text} {marks}."));
        }
        Ok(Answer {
            found: true,
            answer: parts.join(" "),
            statements,
            records,
            cited,
            refused,
            model: name,
        })
    }
}

/// What answers a quantity question: crow's store metrics, no model.
pub const QUANTITY_ANSWERER: &str = "crow store metrics (no model)";
/// Most records a quantity answer cites.
const QUANTITY_MAX_CITED: usize = 10;
/// Most records a quantity answer scans for the ones to cite.
const QUANTITY_SCAN: usize = 2_000;

impl AskService {
    /// Answers a question about a quantity from the store metrics ([`quantity`]); `None` when the
    /// question is not about one.
    async fn answer_quantity(
        &self,
        organization_id: &str,
        question: &str,
        filter: &InteractionFilter,
    ) -> Result<Option<Answer>, PipelineError> {
        let (cameras, _) = self
            .records
            .list_cameras(organization_id, 500, None)
            .await?;
        let catalog = self.records.catalog(organization_id, 10_000).await?;
        let mut plan = match quantity::read(question, &cameras, &catalog, crow_storage::now_ms()) {
            Reading::Other => return Ok(None),
            Reading::Unmeasurable(what) => {
                return Ok(Some(Answer {
                    found: false,
                    answer: format!(
                        "I cannot measure that ({what}). crow measures {}.",
                        quantity::MEASURABLE
                    ),
                    statements: Vec::new(),
                    records: Vec::new(),
                    cited: Vec::new(),
                    refused: 0,
                    model: QUANTITY_ANSWERER.to_owned(),
                }))
            }
            Reading::Quantity(plan) => plan,
        };
        // A question that names no time takes the request's range, if it has one.
        if plan.from_ms == 0 {
            if let Some(from) = filter.from_ms {
                plan.from_ms = from;
                plan.period = "in the range asked".to_owned();
            }
            if let Some(to) = filter.to_ms {
                plan.to_ms = to;
                plan.period = "in the range asked".to_owned();
            }
        }
        let query = quantity::query(&plan)?;
        let report = self.records.metrics_report(organization_id, &query).await?;
        let (_, sentence) = quantity::answer(&plan, &report.rows);
        // The records whose events make the number, newest first.
        let window = InteractionFilter {
            source: Some(SourceType::Cctv),
            query: None,
            from_ms: Some(plan.from_ms - 3_600_000),
            to_ms: Some(plan.to_ms + 3_600_000),
        };
        let mut cited = Vec::new();
        let (mut token, mut scanned) = (None::<String>, 0usize);
        'pages: loop {
            let page = self
                .records
                .list_interactions(organization_id, &window, 500, token.as_deref())
                .await?;
            for i in page.interactions {
                scanned += 1;
                let counts = crow_storage::metrics::MeasuredFacts::of(&i).is_some_and(|f| {
                    f.events
                        .iter()
                        .any(|e| quantity::counts_event(&plan, &f.camera_id, e))
                });
                if counts {
                    cited.push(SemanticHit {
                        matched: i.summary.clone(),
                        interaction: i,
                        score: 1.0,
                        similarity: 1.0,
                    });
                }
                if cited.len() == QUANTITY_MAX_CITED || scanned >= QUANTITY_SCAN {
                    break 'pages;
                }
            }
            match page.next_page_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        let ids: Vec<String> = cited.iter().map(|h| h.interaction.id.clone()).collect();
        let marks: String = (1..=ids.len()).map(|n| format!("[{n}]")).collect();
        let found = !ids.is_empty();
        let answer = if found {
            format!("{} {marks}.", sentence.trim_end_matches('.'))
        } else {
            format!("{sentence} No camera record of that range holds such an event.")
        };
        Ok(Some(Answer {
            found,
            answer,
            statements: vec![Statement {
                text: sentence,
                interaction_ids: ids.clone(),
                support: 1.0,
            }],
            records: cited,
            cited: ids,
            refused: 0,
            model: QUANTITY_ANSWERER.to_owned(),
        }))
    }
}

/// A statement without a leading record label the model copied from the prompt (`R2: ...`).
fn without_label(text: &str) -> String {
    let text = text.trim();
    let rest = text.strip_prefix('R').unwrap_or(text);
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    match rest[digits..].strip_prefix(':') {
        Some(after) if digits > 0 => after.trim().to_owned(),
        _ => text.to_owned(),
    }
}

/// The frames of a CCTV record (its evidence keyframes).
pub fn record_frames(interaction: &crow_storage::Interaction) -> Vec<u64> {
    if interaction.source_type != SourceType::Cctv {
        return Vec::new();
    }
    interaction
        .data
        .get("frames")
        .and_then(|f| f.as_array())
        .map(|frames| {
            frames
                .iter()
                .filter_map(|f| f.get("frame_index").and_then(|i| i.as_u64()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copied_record_labels_are_not_part_of_a_statement() {
        assert_eq!(without_label("R2: A customer waits."), "A customer waits.");
        assert_eq!(without_label("R12:x"), "x");
        assert_eq!(without_label("Red shoes sold out"), "Red shoes sold out");
        assert_eq!(without_label("R: x"), "R: x");
    }
}
