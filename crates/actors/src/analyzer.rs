//! `AnalyzerActor`: turns a batch of frame analyses into one `cctv` interaction record, with the
//! organization's catalog products the frames show.
//!
//! Matching: a lexical prefilter picks at most `catalog_top_k` candidates; the text model (JSON by grammar,
//! catalog ids and the batch's frame indexes only) picks the products with a confidence and the frames that
//! support each. Without a model, or if it fails, products whose whole name occurs in a description match
//! lexically. The method used is recorded in the interaction's data. Batches queue in this actor's
//! mailbox (durably marked unanalyzed in sled) while the model runs, so ingest never waits for it.
//!
//! The record's id is derived from `(session, batch_index)` and stored with insert-if-absent in the same
//! transaction that clears the batch's "unanalyzed" mark, so analysing a batch twice (after a crash or a
//! restart) never yields a second record. On start the actor picks up every batch still unanalyzed. Each
//! record written is published to the [`PatternHub`].

use std::collections::BTreeMap;
use std::sync::Arc;

use crow_inference::llama::{MatchedProduct, TextModel};
use crow_storage::{now_ms, BatchRecord, Interaction, SourceType, Store};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::json;

use crate::catalog_match::{candidates, for_model, lexical_matches};
use crate::metrics_names as m;
use crate::patterns::{PatternEvent, PatternHub};

/// Largest catalog the analyzer reads per batch.
const CATALOG_LIMIT: usize = 10_000;

/// Messages of the analyzer.
pub(crate) enum AnalyzerMsg {
    /// Analyse one stored batch.
    Analyze(BatchRecord),
}

pub(crate) struct AnalyzerActor;

/// What the analyzer works with.
#[derive(Clone)]
pub(crate) struct AnalyzerArgs {
    pub store: Store,
    pub model: Option<Arc<TextModel>>,
    pub catalog_top_k: usize,
    pub patterns: PatternHub,
}

pub(crate) struct AnalyzerState {
    args: AnalyzerArgs,
}

/// Products found in a batch and how.
struct Matching {
    matches: Vec<MatchedProduct>,
    method: &'static str,
    candidates: usize,
    reason: String,
}

impl Actor for AnalyzerActor {
    type Msg = AnalyzerMsg;
    type State = AnalyzerState;
    type Arguments = AnalyzerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: AnalyzerArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let backlog = args.store.unanalyzed_batches()?;
        if !backlog.is_empty() {
            tracing::info!(
                batches = backlog.len(),
                "analyzing batches left from before a restart"
            );
        }
        for batch in backlog {
            myself.cast(AnalyzerMsg::Analyze(batch))?;
        }
        Ok(AnalyzerState { args })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AnalyzerMsg::Analyze(batch) => {
                let store = &state.args.store;
                let id = batch_interaction_id(&batch.session_id, batch.batch_index);
                if store.get_interaction(&id)?.is_some() {
                    // Analysed before a restart; only the unanalyzed mark is left to clear.
                    let existing = interaction_from_batch(&batch);
                    store.insert_batch_interaction(
                        &existing,
                        &batch.session_id,
                        batch.batch_index,
                    )?;
                    return Ok(());
                }
                let started = std::time::Instant::now();
                let matching = state.match_products(&batch).await?;
                metrics::histogram!(m::BATCH_ANALYSIS_SECONDS)
                    .record(started.elapsed().as_secs_f64());
                let mut interaction = interaction_from_batch(&batch);
                interaction.product_ids = matching
                    .matches
                    .iter()
                    .map(|p| p.product_id.clone())
                    .collect();
                if let Some(data) = interaction.data.as_object_mut() {
                    data.insert(
                        "products".into(),
                        serde_json::to_value(&matching.matches).unwrap_or_default(),
                    );
                    data.insert(
                        "matching".into(),
                        json!({
                            "method": matching.method,
                            "candidates": matching.candidates,
                            "reason": matching.reason,
                        }),
                    );
                }
                if !interaction.product_ids.is_empty() {
                    interaction.tags.push("product".into());
                }
                if store.insert_batch_interaction(
                    &interaction,
                    &batch.session_id,
                    batch.batch_index,
                )? {
                    metrics::counter!(m::INTERACTIONS_WRITTEN).increment(1);
                    tracing::debug!(session_id = %batch.session_id, batch_index = batch.batch_index, id = %interaction.id, "interaction written");
                    let frames = &batch.frames;
                    state.args.patterns.publish(PatternEvent {
                        organization_id: batch.organization_id.clone(),
                        session_id: batch.session_id.clone(),
                        camera_id: batch.camera_id.clone(),
                        batch_index: batch.batch_index,
                        frame_range: (
                            frames.first().map_or(0, |f| f.frame_index),
                            frames.last().map_or(0, |f| f.frame_index),
                        ),
                        interaction_id: interaction.id.clone(),
                        summary: interaction.summary.clone(),
                        tags: interaction.tags.clone(),
                        products: matching.matches,
                        timestamp_ms: interaction.timestamp_ms,
                    });
                }
            }
        }
        Ok(())
    }
}

impl AnalyzerState {
    async fn match_products(&self, batch: &BatchRecord) -> Result<Matching, ActorProcessingErr> {
        let catalog = self
            .args
            .store
            .catalog(&batch.organization_id, CATALOG_LIMIT)?;
        let observations: Vec<(u64, String)> = batch
            .frames
            .iter()
            .map(|f| (f.frame_index, f.text.clone()))
            .collect();
        if catalog.is_empty() || observations.is_empty() {
            return Ok(Matching {
                matches: Vec::new(),
                method: "none",
                candidates: 0,
                reason: "the organization has no catalog".into(),
            });
        }
        let picked: Vec<_> = candidates(&catalog, &observations, self.args.catalog_top_k.max(1));
        if let Some(model) = &self.args.model {
            let model = Arc::clone(model);
            let for_llm: Vec<_> = picked.iter().map(|p| for_model(p)).collect();
            let obs = observations.clone();
            let answer =
                tokio::task::spawn_blocking(move || model.match_products(&obs, &for_llm)).await?;
            match answer {
                Ok((m, _)) => {
                    return Ok(Matching {
                        matches: m.matches,
                        method: "model",
                        candidates: picked.len(),
                        reason: m.reason,
                    })
                }
                Err(e) => {
                    tracing::warn!(session_id = %batch.session_id, batch_index = batch.batch_index, error = %e, "product matching by model failed; matching lexically");
                }
            }
        }
        Ok(Matching {
            matches: lexical_matches(&picked, &observations),
            method: "lexical",
            candidates: picked.len(),
            reason: "catalog names found in the descriptions".into(),
        })
    }
}

/// Deterministic id of the interaction derived from a batch.
pub(crate) fn batch_interaction_id(session_id: &str, batch_index: u64) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("crow:cctv:{session_id}:{batch_index}").as_bytes(),
    )
    .to_string()
}

/// Builds the record: a summary of what the frames showed, the union of their tags (most frequent first),
/// their mean confidence, and the frames themselves in `data`.
pub(crate) fn interaction_from_batch(batch: &BatchRecord) -> Interaction {
    let frames = &batch.frames;
    let n = frames.len().max(1);
    let first = frames.first();
    let last = frames.last();
    let (first_index, last_index) = (
        first.map_or(0, |f| f.frame_index),
        last.map_or(0, |f| f.frame_index),
    );
    let (from_ms, to_ms) = (
        first.map_or(0, |f| f.captured_at_ms),
        last.map_or(0, |f| f.captured_at_ms),
    );

    let people: Vec<usize> = frames
        .iter()
        .map(|f| {
            f.details
                .get("people")
                .and_then(|p| p.as_array())
                .map_or(0, Vec::len)
        })
        .collect();
    let max_people = people.iter().copied().max().unwrap_or(0);
    let with_motion = frames
        .iter()
        .filter(|f| f.tags.iter().any(|t| t == "motion"))
        .count();

    let mut tag_counts: BTreeMap<&str, usize> = BTreeMap::new();
    for tag in frames.iter().flat_map(|f| &f.tags) {
        *tag_counts.entry(tag.as_str()).or_default() += 1;
    }
    let mut tags: Vec<(&str, usize)> = tag_counts.into_iter().collect();
    tags.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let movement = tags
        .iter()
        .find(|(t, _)| t.starts_with("moving-"))
        .map(|(t, _)| &t["moving-".len()..]);

    let mut summary = format!(
        "Camera {} frames {first_index}-{last_index} ({:.1} s, {} described): ",
        batch.camera_id,
        (to_ms - from_ms) as f64 / 1000.0,
        frames.len()
    );
    summary.push_str(&match max_people {
        0 => "no people detected".to_owned(),
        1 => "up to 1 person visible".to_owned(),
        k => format!("up to {k} people visible"),
    });
    summary.push_str(&format!(
        "; motion in {with_motion} of {} frames",
        frames.len()
    ));
    if let Some(dir) = movement {
        summary.push_str(&format!(", mostly moving {dir}"));
    }
    summary.push('.');
    for f in frames {
        summary.push_str(&format!(" [#{}] {}", f.frame_index, f.text));
    }

    let confidence = frames.iter().map(|f| f.confidence).sum::<f32>() / n as f32;
    Interaction {
        id: batch_interaction_id(&batch.session_id, batch.batch_index),
        organization_id: batch.organization_id.clone(),
        source_type: SourceType::Cctv,
        session_id: Some(batch.session_id.clone()),
        data: json!({
            "camera_id": batch.camera_id,
            "batch_index": batch.batch_index,
            "frame_range": [first_index, last_index],
            "captured_from_ms": from_ms,
            "captured_to_ms": to_ms,
            "max_people": max_people,
            "frames": frames.iter().map(|f| json!({
                "frame_index": f.frame_index,
                "captured_at_ms": f.captured_at_ms,
                "describer": f.describer,
                "text": f.text,
                "confidence": f.confidence,
                "tags": f.tags,
                "details": f.details,
            })).collect::<Vec<_>>(),
        }),
        summary,
        confidence: confidence.clamp(0.0, 1.0),
        tags: tags.into_iter().map(|(t, _)| t.to_owned()).collect(),
        product_ids: Vec::new(),
        timestamp_ms: from_ms,
        created_at_ms: now_ms(),
    }
}
