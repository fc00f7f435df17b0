//! `AnalyzerActor`: turns a batch of frame analyses into one `cctv` interaction record.
//!
//! The record's id is derived from `(session, batch_index)` and stored with insert-if-absent in the same
//! transaction that clears the batch's "unanalyzed" mark, so analysing a batch twice (after a crash or a
//! restart) never yields a second record. On start the actor picks up every batch still unanalyzed.

use std::collections::BTreeMap;

use crow_storage::{now_ms, BatchRecord, Interaction, SourceType, Store};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::json;

use crate::metrics_names as m;

/// Messages of the analyzer.
pub(crate) enum AnalyzerMsg {
    /// Analyse one stored batch.
    Analyze(BatchRecord),
}

pub(crate) struct AnalyzerActor;

pub(crate) struct AnalyzerState {
    store: Store,
}

impl Actor for AnalyzerActor {
    type Msg = AnalyzerMsg;
    type State = AnalyzerState;
    type Arguments = Store;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        store: Store,
    ) -> Result<Self::State, ActorProcessingErr> {
        let backlog = store.unanalyzed_batches()?;
        if !backlog.is_empty() {
            tracing::info!(
                batches = backlog.len(),
                "analyzing batches left from before a restart"
            );
        }
        for batch in backlog {
            myself.cast(AnalyzerMsg::Analyze(batch))?;
        }
        Ok(AnalyzerState { store })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AnalyzerMsg::Analyze(batch) => {
                let interaction = interaction_from_batch(&batch);
                if state.store.insert_batch_interaction(
                    &interaction,
                    &batch.session_id,
                    batch.batch_index,
                )? {
                    metrics::counter!(m::INTERACTIONS_WRITTEN).increment(1);
                    tracing::debug!(session_id = %batch.session_id, batch_index = batch.batch_index, id = %interaction.id, "interaction written");
                }
            }
        }
        Ok(())
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
