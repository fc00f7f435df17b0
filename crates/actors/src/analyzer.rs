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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crow_inference::text::TextGenerator;
use crow_storage::{
    now_ms, BatchRecord, Interaction, Records, SourceType, StorageError, Store, TrackEventKind,
};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::catalog_match::{
    dwell_evidence, for_model, meaning_evidence, named_candidates, named_evidence,
    verify_proposals, Findings, ProductFinding, RefusedProposal,
};
use crate::cluster::{Bus, BusError};
use crate::metrics_names as m;
use crate::patterns::{PatternEvent, PatternHub};
use crate::product_meaning::ProductMatcher;

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

/// Products found in a batch and how.
struct Matching {
    findings: Vec<ProductFinding>,
    refused: Vec<RefusedProposal>,
    /// What the text model did: "proposed", "not needed: ...", "skipped: backlog", "failed", ...
    model: String,
    candidates: usize,
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

/// How long a batch waits before another try while the record store is unavailable.
const STORE_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

fn is_unavailable(e: &ActorProcessingErr) -> bool {
    matches!(
        e.downcast_ref::<StorageError>(),
        Some(StorageError::Unavailable(_))
    ) || e.downcast_ref::<BusError>().is_some()
}

/// An ingest node's part: the batch goes to JetStream, and once the stream has stored it, its
/// "unanalyzed" mark is cleared (a crash in between re-publishes it, which the stream deduplicates).
async fn hand_off(store: &Store, bus: &Bus, batch: &BatchRecord) -> Result<(), ActorProcessingErr> {
    bus.publish_batch(batch).await?;
    store.mark_batch_analyzed(&batch.session_id, batch.batch_index)?;
    metrics::counter!(m::BATCHES_PUBLISHED).increment(1);
    // The session actor checks the same after writing the close; whichever comes second purges.
    if crate::journal::finished(store, &batch.session_id)? {
        crate::journal::SessionJournal::forget(bus.jetstream(), &batch.session_id).await;
    }
    Ok(())
}

/// An analyze node's part: batches from the analyzers' durable consumer, `args.slots` at once, each
/// acknowledged once its record is stored. A batch whose analysis failed is handed back for redelivery
/// (to this node or another) after a pause; JetStream moves it on after `max_deliver` deliveries.
pub(crate) async fn consume(bus: Bus, args: Arc<AnalyzerArgs>) {
    use async_nats::jetstream::AckKind;
    use futures::StreamExt as _;

    let slots = Arc::new(Semaphore::new(args.slots.max(1)));
    loop {
        let messages = match bus.analyzers().await {
            Ok(consumer) => consumer
                .stream()
                // Take no more than can run at once, so that other analyze nodes get the rest.
                .max_messages_per_batch(args.slots.max(1))
                .messages()
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let mut messages = match messages {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "cannot consume batches from JetStream; retrying");
                tokio::time::sleep(STORE_RETRY).await;
                continue;
            }
        };
        while let Some(message) = messages.next().await {
            let message = match message {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "batch consumer interrupted; reconnecting");
                    break;
                }
            };
            let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let args = Arc::clone(&args);
            tokio::spawn(async move {
                let _permit = permit;
                let batch: BatchRecord = match serde_json::from_slice(&message.payload) {
                    Ok(b) => b,
                    Err(e) => {
                        // Never analysable: no redelivery (it stays in the stream for inspection).
                        tracing::error!(error = %e, subject = %message.subject, "undecodable batch message");
                        let _ = message.ack_with(AckKind::Term).await;
                        return;
                    }
                };
                let outcome = analyze(&args, &batch, false, false).await;
                let (label, ack) = match &outcome {
                    Ok(()) => ("ok", message.double_ack().await.map_err(|e| e.to_string())),
                    Err(e) => {
                        let retryable = is_unavailable(e);
                        if retryable {
                            tracing::warn!(session_id = %batch.session_id, batch_index = batch.batch_index, error = %e, "record store unavailable; batch redelivered shortly");
                        } else {
                            tracing::error!(session_id = %batch.session_id, batch_index = batch.batch_index, error = %e, "batch analysis failed; redelivered");
                        }
                        let nak = message
                            .ack_with(AckKind::Nak(Some(STORE_RETRY)))
                            .await
                            .map_err(|e| e.to_string());
                        (if retryable { "retry" } else { "failed" }, nak)
                    }
                };
                metrics::counter!(m::BATCHES_CONSUMED, "outcome" => label).increment(1);
                if let Err(e) = ack {
                    // Not acknowledged: JetStream delivers it again after ack_wait; its record is
                    // stored once all the same.
                    tracing::warn!(session_id = %batch.session_id, batch_index = batch.batch_index, error = %e, "batch acknowledgement lost");
                }
            });
        }
    }
}

/// Analyses one batch and writes its record (once); with `local`, the batch is in this node's sled and
/// its "unanalyzed" mark is cleared after.
async fn analyze(
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
            store.mark_batch_analyzed(&batch.session_id, batch.batch_index)?;
        }
        return Ok(());
    }
    let started = std::time::Instant::now();
    let matching = match_products(args, batch, skip_model).await?;
    metrics::histogram!(m::BATCH_ANALYSIS_SECONDS).record(started.elapsed().as_secs_f64());
    for r in &matching.refused {
        metrics::counter!(m::PROPOSALS_REFUSED, "reason" => r.reason.clone()).increment(1);
    }
    let mut interaction = interaction_from_batch(batch);
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
        store.mark_batch_analyzed(&batch.session_id, batch.batch_index)?;
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

async fn match_products(
    args: &AnalyzerArgs,
    batch: &BatchRecord,
    skip_model: bool,
) -> Result<Matching, ActorProcessingErr> {
    let catalog = args
        .records
        .catalog(&batch.organization_id, CATALOG_LIMIT)
        .await?;
    let mut findings = Findings::default();
    if catalog.is_empty() {
        return Ok(Matching {
            findings: Vec::new(),
            refused: Vec::new(),
            model: "not needed: the organization has no catalog".into(),
            candidates: 0,
        });
    }
    dwell_evidence(&mut findings, &catalog, &batch.events);
    let mut picked = named_candidates(&catalog, &batch.frames, args.catalog_top_k.max(1));
    named_evidence(&mut findings, &picked, &batch.frames);
    let meant = match &args.meaning {
        Some(matcher) => {
            let texts: Vec<&str> = batch.frames.iter().map(|f| f.text.as_str()).collect();
            match matcher.match_descriptions(&catalog, &texts).await {
                Ok(meant) => meant,
                Err(e) => {
                    tracing::warn!(session_id = %batch.session_id, batch_index = batch.batch_index, error = %e, "product matching by meaning failed; matched by words only");
                    Vec::new()
                }
            }
        }
        None => Vec::new(),
    };
    meaning_evidence(&mut findings, &meant, &batch.frames);
    // The model also sees the products a span means (a quote holding that span names them).
    for m in &meant {
        if picked.len() < args.catalog_top_k.max(1) && !picked.iter().any(|p| p.id == m.product_id)
        {
            if let Some(p) = catalog.iter().find(|p| p.id == m.product_id) {
                picked.push(p);
            }
        }
    }
    let mut refused = Vec::new();
    let model = match &args.model {
        _ if picked.is_empty() => "not needed: no description names a catalog product".to_owned(),
        None => "unavailable: no text model loaded".to_owned(),
        Some(_) if skip_model => {
            metrics::counter!(m::ANALYZER_MODEL_SKIPPED).increment(1);
            "skipped: backlog".to_owned()
        }
        Some(model) => {
            let model = Arc::clone(model);
            let for_llm: Vec<_> = picked.iter().map(|p| for_model(p)).collect();
            let observations: Vec<(u64, String)> = batch
                .frames
                .iter()
                .map(|f| (f.frame_index, f.text.clone()))
                .collect();
            match tokio::task::spawn_blocking(move || model.match_products(&observations, &for_llm))
                .await?
            {
                Ok((answer, _)) => {
                    refused = verify_proposals(
                        &mut findings,
                        &picked,
                        &batch.frames,
                        &answer.proposals,
                        &meant,
                    );
                    format!(
                        "proposed {} product(s), {} refused by the check",
                        answer.proposals.len(),
                        refused.len()
                    )
                }
                Err(e) => {
                    tracing::warn!(session_id = %batch.session_id, batch_index = batch.batch_index, error = %e, "product matching by model failed; evidence from measurements only");
                    "failed: matched from measurements only".to_owned()
                }
            }
        }
    };
    Ok(Matching {
        findings: findings.into_findings(),
        refused,
        model,
        candidates: picked.len(),
    })
}

/// The frames a batch covers.
fn frame_range(batch: &BatchRecord) -> (u64, u64) {
    batch.frame_range.unwrap_or((
        batch.frames.first().map_or(0, |f| f.frame_index),
        batch.frames.last().map_or(0, |f| f.frame_index),
    ))
}

/// Deterministic id of the interaction derived from a batch.
pub(crate) fn batch_interaction_id(session_id: &str, batch_index: u64) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("crow:cctv:{session_id}:{batch_index}").as_bytes(),
    )
    .to_string()
}

/// Retail facts of a batch, from its track events and occupancy: what the record's summary and
/// `data.retail` say.
fn retail_facts(batch: &BatchRecord) -> (serde_json::Value, Vec<String>, Option<String>) {
    let events = &batch.events;
    let tracks: BTreeSet<u64> = events.iter().map(|e| e.track_id).collect();
    let started = events
        .iter()
        .filter(|e| e.kind == TrackEventKind::TrackStarted)
        .count();
    let max_occupancy = batch.occupancy.iter().map(|o| o.people).max().unwrap_or(0);
    #[derive(Default)]
    struct Zone {
        visits: usize,
        dwells: usize,
        exits: usize,
        dwell_ms: Vec<i64>,
    }
    let mut zones: BTreeMap<&str, Zone> = BTreeMap::new();
    let mut lines: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for e in events {
        let place = e.place.as_deref().unwrap_or("");
        match e.kind {
            TrackEventKind::ZoneEnter => zones.entry(place).or_default().visits += 1,
            TrackEventKind::ZoneDwell => zones.entry(place).or_default().dwells += 1,
            TrackEventKind::ZoneExit => {
                let z = zones.entry(place).or_default();
                z.exits += 1;
                z.dwell_ms.extend(e.dwell_ms);
            }
            TrackEventKind::LineIn => lines.entry(place).or_default().0 += 1,
            TrackEventKind::LineOut => lines.entry(place).or_default().1 += 1,
            TrackEventKind::TrackStarted | TrackEventKind::TrackEnded => {}
        }
    }
    let mut tags = Vec::new();
    let mut parts = Vec::new();
    if !tracks.is_empty() {
        tags.push("tracked".to_owned());
        parts.push(format!(
            "{} tracked {} ({} new), up to {} in view",
            tracks.len(),
            if tracks.len() == 1 {
                "person"
            } else {
                "people"
            },
            started,
            max_occupancy
        ));
    }
    for (zone, z) in &zones {
        let mean = (!z.dwell_ms.is_empty())
            .then(|| z.dwell_ms.iter().sum::<i64>() as f64 / z.dwell_ms.len() as f64 / 1000.0);
        parts.push(format!(
            "zone {zone}: {} entered, {} dwelt{}",
            z.visits,
            z.dwells,
            mean.map(|m| format!(", mean visit {m:.1} s"))
                .unwrap_or_default()
        ));
    }
    if !zones.is_empty() {
        tags.push("zone-visit".to_owned());
    }
    if zones.values().any(|z| z.dwells > 0) {
        tags.push("dwell".to_owned());
    }
    for (line, (i, o)) in &lines {
        parts.push(format!("line {line}: {i} in, {o} out"));
    }
    if !lines.is_empty() {
        tags.push("footfall".to_owned());
    }
    let facts = json!({
        "people_tracked": tracks.len(),
        "new_tracks": started,
        "max_occupancy": max_occupancy,
        "zones": zones.iter().map(|(id, z)| (id.to_string(), json!({
            "entered": z.visits, "dwelt": z.dwells, "exited": z.exits, "visit_dwell_ms": z.dwell_ms,
        }))).collect::<serde_json::Map<_, _>>(),
        "lines": lines.iter().map(|(id, (i, o))| (id.to_string(), json!({"in": i, "out": o})))
            .collect::<serde_json::Map<_, _>>(),
    });
    let sentence = (!parts.is_empty()).then(|| parts.join("; "));
    (facts, tags, sentence)
}

/// Builds the record: a summary of what was measured (tracks, zones, crossings) and what the frames
/// showed, the union of their tags (most frequent first), their mean confidence, and the frames, events
/// and occupancy themselves in `data`.
pub(crate) fn interaction_from_batch(batch: &BatchRecord) -> Interaction {
    let frames = &batch.frames;
    let (first_index, last_index) = frame_range(batch);
    let times: Vec<i64> = frames
        .iter()
        .map(|f| f.captured_at_ms)
        .chain(batch.events.iter().map(|e| e.at_ms))
        .chain(batch.occupancy.iter().map(|o| o.at_ms))
        .collect();
    let (from_ms, to_ms) = (
        times.iter().copied().min().unwrap_or(0),
        times.iter().copied().max().unwrap_or(0),
    );

    let max_people = frames
        .iter()
        .map(|f| {
            f.details
                .get("people")
                .and_then(|p| p.as_array())
                .map_or(0, Vec::len)
        })
        .chain(batch.occupancy.iter().map(|o| o.people as usize))
        .max()
        .unwrap_or(0);
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
    let (retail, retail_tags, retail_sentence) = retail_facts(batch);

    let mut summary = format!(
        "Camera {} frames {first_index}-{last_index} ({:.1} s, {} described): ",
        batch.camera_id,
        (to_ms - from_ms) as f64 / 1000.0,
        frames.len()
    );
    match retail_sentence {
        Some(s) => summary.push_str(&s),
        None => summary.push_str(&match max_people {
            0 => "no people detected".to_owned(),
            1 => "up to 1 person visible".to_owned(),
            k => format!("up to {k} people visible"),
        }),
    }
    if !frames.is_empty() {
        summary.push_str(&format!(
            "; motion in {with_motion} of {} frames",
            frames.len()
        ));
    }
    if let Some(dir) = movement {
        summary.push_str(&format!(", mostly moving {dir}"));
    }
    summary.push('.');
    for f in frames {
        summary.push_str(&format!(" [#{}] {}", f.frame_index, f.text));
    }

    let confidence = if frames.is_empty() {
        // Only track events: the tracks' mean detector score.
        let scores: Vec<f32> = batch.events.iter().map(|e| e.score).collect();
        scores.iter().sum::<f32>() / scores.len().max(1) as f32
    } else {
        frames.iter().map(|f| f.confidence).sum::<f32>() / frames.len() as f32
    };
    let mut all_tags: Vec<String> = retail_tags;
    all_tags.extend(tags.into_iter().map(|(t, _)| t.to_owned()));
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
            "retail": retail,
            "events": batch.events,
            "occupancy": batch.occupancy,
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
        tags: all_tags,
        product_ids: Vec::new(),
        timestamp_ms: from_ms,
        created_at_ms: now_ms(),
    }
}
