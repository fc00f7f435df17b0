//! `AnalyzerActor`: turns a batch of frame analyses and track events into one `cctv` interaction record,
//! with the organization's catalog products that crow has evidence for.
//!
//! Batches run on a bounded pool: at most `analysis.batch_slots` at once (the actor's mailbox and the
//! slots' queue hold the rest, durably marked unanalyzed in sled), so one slow model call never holds up
//! every camera. Matching follows `catalog_match`: dwell in zones mapped to products, names found in
//! descriptions, and model proposals that crow verifies against the descriptions. The text model is asked
//! only when a description shares a word with the catalog (it cannot verify otherwise) and only while the
//! backlog is at most `analysis.max_batch_backlog`; beyond that it is skipped, counted and said in the
//! record. `data.matching` says what ran and which evidence produced each product.
//!
//! The record's id is derived from `(session, batch_index)` and stored with insert-if-absent in the same
//! transaction that clears the batch's "unanalyzed" mark, so analysing a batch twice (after a crash or a
//! restart) never yields a second record. On start the actor picks up every batch still unanalyzed. Each
//! record written is published to the [`PatternHub`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crow_inference::text::TextGenerator;
use crow_storage::{BatchRecord, Records, StorageError, Store};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::batch_matching::match_products;
use crate::batch_record::{batch_interaction_id, frame_range, interaction_from_batch};
use crate::cluster::{Bus, BusError};
use crate::metrics_names as m;
use crate::patterns::{PatternEvent, PatternHub};
use crate::product_meaning::ProductMatcher;

/// Messages of the analyzer.
pub(crate) enum AnalyzerMsg {
    /// Analyse one stored batch.
    Analyze(BatchRecord),
}

pub(crate) struct AnalyzerActor;

/// What the analyzer works with.
#[derive(Clone)]
pub(crate) struct AnalyzerArgs {
    /// The node's own sled: batches and their "awaiting analysis" marks.
    pub store: Store,
    /// Where records are written (the same sled, or PostgreSQL).
    pub records: Records,
    pub model: Option<Arc<dyn TextGenerator>>,
    pub catalog_top_k: usize,
    /// Matches descriptions to products by meaning (when search by meaning is on).
    pub meaning: Option<Arc<ProductMatcher>>,
    pub patterns: PatternHub,
    /// Batches analysed at once.
    pub slots: usize,
    /// Beyond this backlog the model is skipped.
    pub max_backlog: usize,
    /// On an ingest node of a cluster: batches are handed to JetStream here instead of analysed.
    pub handoff: Option<Bus>,
}

pub(crate) struct AnalyzerState {
    args: Arc<AnalyzerArgs>,
    slots: Arc<Semaphore>,
    /// Batches received and not finished (waiting for a slot or running).
    backlog: Arc<AtomicUsize>,
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
        let backlog = args.store.run(|s| s.unanalyzed_batches()).await?;
        if !backlog.is_empty() {
            tracing::info!(
                batches = backlog.len(),
                "analyzing batches left from before a restart"
            );
        }
        for batch in backlog {
            myself.cast(AnalyzerMsg::Analyze(batch))?;
        }
        Ok(AnalyzerState {
            slots: Arc::new(Semaphore::new(args.slots.max(1))),
            args: Arc::new(args),
            backlog: Arc::default(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AnalyzerMsg::Analyze(batch) => {
                let queued = state.backlog.fetch_add(1, Ordering::SeqCst) + 1;
                metrics::gauge!(m::ANALYZER_BACKLOG).set(queued as f64);
                let (args, slots, backlog) = (
                    Arc::clone(&state.args),
                    Arc::clone(&state.slots),
                    Arc::clone(&state.backlog),
                );
                tokio::spawn(async move {
                    if let Ok(_slot) = slots.acquire_owned().await {
                        // Batches waiting behind this one, not counting it.
                        let waiting = backlog.load(Ordering::SeqCst).saturating_sub(1);
                        let skip_model = waiting > args.max_backlog;
                        let done = match &args.handoff {
                            Some(bus) => hand_off(&args.store, bus, &batch).await,
                            None => analyze(&args, &batch, skip_model, true).await,
                        };
                        match done {
                            Ok(()) => {}
                            Err(e) if is_unavailable(&e) => {
                                // The record store is away (PostgreSQL restarting): try again soon.
                                tracing::warn!(session_id = %batch.session_id, batch_index = batch.batch_index, error = %e, "record store unavailable; batch analysis retried shortly");
                                myself.send_after(STORE_RETRY, move || AnalyzerMsg::Analyze(batch));
                            }
                            Err(e) => {
                                // The batch stays marked unanalyzed; the next start retries it.
                                tracing::error!(session_id = %batch.session_id, batch_index = batch.batch_index, error = %e, "batch analysis failed");
                            }
                        }
                    }
                    let left = backlog.fetch_sub(1, Ordering::SeqCst) - 1;
                    metrics::gauge!(m::ANALYZER_BACKLOG).set(left as f64);
                });
            }
        }
        Ok(())
    }
}

/// Clears a batch's "awaiting analysis" mark in the node's sled.
async fn mark_analyzed(store: &Store, batch: &BatchRecord) -> Result<(), StorageError> {
    let (session_id, index) = (batch.session_id.clone(), batch.batch_index);
    store
        .run(move |s| s.mark_batch_analyzed(&session_id, index))
        .await
}

/// How long a batch waits before another try while the record store is unavailable.
pub(crate) const STORE_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

pub(crate) fn is_unavailable(e: &ActorProcessingErr) -> bool {
    matches!(
        e.downcast_ref::<StorageError>(),
        Some(StorageError::Unavailable(_))
    ) || e.downcast_ref::<BusError>().is_some()
}

/// An ingest node's part: the batch goes to JetStream, and once the stream has stored it, its
/// "unanalyzed" mark is cleared (a crash in between re-publishes it, which the stream deduplicates).
async fn hand_off(store: &Store, bus: &Bus, batch: &BatchRecord) -> Result<(), ActorProcessingErr> {
    bus.publish_batch(batch).await?;
    mark_analyzed(store, batch).await?;
    metrics::counter!(m::BATCHES_PUBLISHED).increment(1);
    // The session actor checks the same after writing the close; whichever comes second purges.
    if crate::journal::finished(store, &batch.session_id).await? {
        crate::journal::SessionJournal::forget(bus.jetstream(), &batch.session_id).await;
    }
    Ok(())
}

/// Analyses one batch and writes its record (once); with `local`, the batch is in this node's sled and
/// its "unanalyzed" mark is cleared after.
pub(crate) async fn analyze(
    args: &AnalyzerArgs,
    batch: &BatchRecord,
    skip_model: bool,
    local: bool,
) -> Result<(), ActorProcessingErr> {
    let (store, records) = (&args.store, &args.records);
    let id = batch_interaction_id(&batch.session_id, batch.batch_index);
    if records.get_interaction(&id).await?.is_some() {
        // Analysed before a restart (or a redelivery); only the unanalyzed mark is left to clear.
        if local {
            mark_analyzed(store, batch).await?;
        }
        return Ok(());
    }
    let started = std::time::Instant::now();
    let matching = match_products(
        &args.records,
        args.model.as_ref(),
        args.meaning.as_deref(),
        args.catalog_top_k,
        batch,
        skip_model,
    )
    .await?;
    metrics::histogram!(m::BATCH_ANALYSIS_SECONDS).record(started.elapsed().as_secs_f64());
    for r in &matching.refused {
        metrics::counter!(m::PROPOSALS_REFUSED, "reason" => r.reason.clone()).increment(1);
    }
    let mut interaction = interaction_from_batch(batch, &matching.names);
    interaction.product_ids = matching
        .findings
        .iter()
        .map(|p| p.product_id.clone())
        .collect();
    if let Some(data) = interaction.data.as_object_mut() {
        data.insert(
            "products".into(),
            serde_json::to_value(&matching.findings).unwrap_or_default(),
        );
        data.insert(
            "matching".into(),
            json!({
                "rule": "a product is recorded only from evidence: dwell in a zone mapped to it, its name in a description, a description span that means it (similarity measured by the embedding model), or a model quote found in a cited description",
                "model": matching.model,
                "candidates": matching.candidates,
                "refused": matching.refused,
            }),
        );
    }
    if !interaction.product_ids.is_empty() {
        interaction.tags.push("product".into());
    }
    // The record first, then the mark: a crash between the two re-analyses the batch on restart, finds its
    // deterministic id stored and only clears the mark.
    let inserted = records.insert_interaction(&interaction).await?;
    if local {
        mark_analyzed(store, batch).await?;
    }
    if inserted {
        metrics::counter!(m::INTERACTIONS_WRITTEN).increment(1);
        tracing::debug!(session_id = %batch.session_id, batch_index = batch.batch_index, id = %interaction.id, "interaction written");
        args.patterns.publish(PatternEvent {
            organization_id: batch.organization_id.clone(),
            session_id: batch.session_id.clone(),
            camera_id: batch.camera_id.clone(),
            batch_index: batch.batch_index,
            frame_range: frame_range(batch),
            interaction_id: interaction.id.clone(),
            summary: interaction.summary.clone(),
            tags: interaction.tags.clone(),
            products: matching.findings,
            timestamp_ms: interaction.timestamp_ms,
        });
    }
    Ok(())
}
