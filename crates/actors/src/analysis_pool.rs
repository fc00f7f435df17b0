//! `AnalysisPool`: runs `Analyze` requests on the text model, at most `slots` at once, the rest waiting in
//! a bounded queue. Every request is an [`AnalysisRecord`] in the record store from the moment it is accepted, so a
//! client can fire and fetch later, and analyses interrupted by a stop are run again on the next start.
//! With records in PostgreSQL several nodes share one table of analyses: each runs only those it claims
//! ([`crow_storage::AnalysisRecords::claim_analyses`]) and keeps its claims alive while it works, so no
//! analysis runs twice, and a dead node's analyses are taken by another once its claims expire.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

use crow_inference::text::TextGenerator;
use crow_storage::{
    now_ms, AnalysisRecord, AnalysisResult, AnalysisStats, AnalysisStatus, InteractionFilter,
    Records, SourceType, MAX_PAGE_SIZE,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::watch;

use crate::config::AnalysisConfig;
use crate::metrics_names as m;
use crate::PipelineError;

/// Longest record line shown to the model, characters.
const LINE_CHARS: usize = 120;
/// Tags and products listed in the figures.
const TOP_N: usize = 5;

pub(crate) enum AnalysisMsg {
    /// Run (or queue) an analysis whose record is stored with status `Queued`.
    Submit {
        record: Box<AnalysisRecord>,
        reply: RpcReplyPort<Result<(), PipelineError>>,
    },
    /// A slot finished this analysis.
    Done(String),
    /// Keep this pool's claims alive and take analyses whose claims expired (a dead node's).
    Claim,
}

#[derive(Clone)]
pub(crate) struct AnalysisArgs {
    pub records: Records,
    pub model: Option<Arc<dyn TextGenerator>>,
    pub config: Arc<AnalysisConfig>,
    /// Bumped whenever an analysis finishes, so waiters re-read their record.
    pub finished: Arc<watch::Sender<u64>>,
    /// This pool's analyses queued or running (shutdown waits for them; in a cluster the shared
    /// store also holds other nodes' analyses).
    pub unfinished: Arc<std::sync::atomic::AtomicUsize>,
}

pub(crate) struct AnalysisState {
    args: AnalysisArgs,
    running: usize,
    queue: VecDeque<AnalysisRecord>,
    /// Ids queued or running here (an analysis is taken once, whether submitted or claimed).
    known: HashSet<String>,
}

pub(crate) struct AnalysisPool;

impl Actor for AnalysisPool {
    type Msg = AnalysisMsg;
    type State = AnalysisState;
    type Arguments = AnalysisArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: AnalysisArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let queue: VecDeque<AnalysisRecord> = args.records.claim_analyses(now_ms()).await?.into();
        let mut state = AnalysisState {
            known: queue.iter().map(|r| r.id.clone()).collect(),
            queue,
            args,
            running: 0,
        };
        let renewal = state.args.records.analysis_claim_renewal();
        myself.send_interval(renewal, || AnalysisMsg::Claim);
        state.export();
        if !state.queue.is_empty() {
            tracing::info!(
                analyses = state.queue.len(),
                "resuming analyses from before a restart"
            );
        }
        state.start_ready(&myself).await?;
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AnalysisMsg::Submit { record, reply } => {
                if state.known.contains(&record.id) {
                    // Claimed from the store between its insert and this message: queued already.
                    let _ = reply.send(Ok(()));
                    return Ok(());
                }
                let c = &state.args.config;
                if state.running >= c.slots && state.queue.len() >= c.queue {
                    metrics::counter!(m::ANALYSES_REFUSED).increment(1);
                    state.args.records.delete_analysis(&record.id).await?;
                    let _ = reply.send(Err(PipelineError::ResourceExhausted(format!(
                        "{} analyses are running and {} waiting (analysis.slots, analysis.queue); try again later",
                        state.running,
                        state.queue.len()
                    ))));
                    return Ok(());
                }
                state.known.insert(record.id.clone());
                state.queue.push_back(*record);
                state.export();
                state.start_ready(&myself).await?;
                let _ = reply.send(Ok(()));
            }
            AnalysisMsg::Done(id) => {
                state.running -= 1;
                state.known.remove(&id);
                state.export();
                state.start_ready(&myself).await?;
            }
            AnalysisMsg::Claim => {
                // A store that does not answer now is asked again at the next tick.
                let records = &state.args.records;
                if let Err(e) = records.renew_analysis_claims(now_ms()).await {
                    tracing::warn!(error = %e, "could not renew analysis claims");
                    return Ok(());
                }
                match records.claim_analyses(now_ms()).await {
                    Ok(claimed) => {
                        let mut taken = 0;
                        for record in claimed {
                            if state.known.insert(record.id.clone()) {
                                state.queue.push_back(record);
                                taken += 1;
                            }
                        }
                        if taken > 0 {
                            tracing::info!(
                                analyses = taken,
                                "took over analyses whose node stopped renewing its claims"
                            );
                            state.export();
                            state.start_ready(&myself).await?;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "could not claim analyses"),
                }
            }
        }
        Ok(())
    }
}

impl AnalysisState {
    /// Publishes the queue's and the slots' occupancy (gauges, and the count shutdown waits on).
    fn export(&self) {
        metrics::gauge!(m::ANALYSES_RUNNING).set(self.running as f64);
        metrics::gauge!(m::ANALYSES_QUEUED).set(self.queue.len() as f64);
        self.args.unfinished.store(
            self.running + self.queue.len(),
            std::sync::atomic::Ordering::SeqCst,
        );
    }

    async fn start_ready(
        &mut self,
        myself: &ActorRef<AnalysisMsg>,
    ) -> Result<(), ActorProcessingErr> {
        while self.running < self.args.config.slots.max(1) {
            let Some(mut record) = self.queue.pop_front() else {
                break;
            };
            record.status = AnalysisStatus::Running;
            record.started_at_ms = Some(now_ms());
            self.args.records.put_analysis(&record).await?;
            self.running += 1;
            self.export();
            let (records, model, config, finished, me) = (
                self.args.records.clone(),
                self.args.model.clone(),
                Arc::clone(&self.args.config),
                Arc::clone(&self.args.finished),
                myself.clone(),
            );
            tokio::spawn(async move {
                let id = record.id.clone();
                match run(&records, model, &config, record).await {
                    Ok(status) => metrics::counter!(m::ANALYSES, "status" => status).increment(1),
                    Err(e) => {
                        tracing::error!(analysis_id = id, error = %e, "storing an analysis failed")
                    }
                }
                finished.send_modify(|n| *n += 1);
                let _ = me.cast(AnalysisMsg::Done(id));
            });
        }
        Ok(())
    }
}

/// Runs one analysis to completion and stores the outcome; returns "done" or "failed".
async fn run(
    records: &Records,
    model: Option<Arc<dyn TextGenerator>>,
    config: &AnalysisConfig,
    mut record: AnalysisRecord,
) -> Result<&'static str, crow_storage::StorageError> {
    let outcome = analyse(records, model, config, &mut record).await;
    record.finished_at_ms = Some(now_ms());
    let status = match outcome {
        Ok(result) => {
            record.status = AnalysisStatus::Done;
            record.result = Some(result);
            "done"
        }
        Err(error) => {
            tracing::warn!(analysis_id = %record.id, error, "analysis failed");
            record.status = AnalysisStatus::Failed;
            record.error = Some(error);
            "failed"
        }
    };
    records.put_analysis(&record).await?;
    Ok(status)
}

fn top(counts: BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(TOP_N);
    v
}

/// Exact figures over the window, then the model's reading of the newest records.
async fn analyse(
    records: &Records,
    model: Option<Arc<dyn TextGenerator>>,
    config: &AnalysisConfig,
    record: &mut AnalysisRecord,
) -> Result<AnalysisResult, String> {
    let model = model.ok_or("no text model is loaded (analysis.model)")?;
    let mut stats = AnalysisStats::default();
    let mut tags = BTreeMap::<String, u64>::new();
    let mut products = BTreeMap::<String, u64>::new();
    let mut lines = Vec::new();
    let mut scanned = 0usize;
    // The window, newest first, a page at a time (a plain time range: a range scan in every store).
    let window = InteractionFilter {
        from_ms: record.from_ms,
        to_ms: record.to_ms,
        ..Default::default()
    };
    let mut token: Option<String> = None;
    'pages: loop {
        let page = records
            .list_interactions(
                &record.organization_id,
                &window,
                MAX_PAGE_SIZE,
                token.as_deref(),
            )
            .await
            .map_err(|e| failed("reading the records", e))?;
        for i in page.interactions {
            if scanned == config.scan_limit {
                stats.truncated = true;
                break 'pages;
            }
            scanned += 1;
            if record.source.is_some_and(|s| s != i.source_type) {
                continue;
            }
            stats.records += 1;
            match i.source_type {
                SourceType::Web => stats.web += 1,
                SourceType::Cctv => stats.cctv += 1,
                SourceType::Social => stats.social += 1,
            }
            for t in &i.tags {
                *tags.entry(t.clone()).or_default() += 1;
            }
            for p in &i.product_ids {
                *products.entry(p.clone()).or_default() += 1;
            }
            if lines.len() < config.max_records {
                let summary: String = i.summary.chars().take(LINE_CHARS).collect();
                lines.push(format!("{}: {summary}", i.source_type.as_str()));
            }
        }
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    stats.top_tags = top(tags);
    stats.top_products = top(products);
    record.records_used = lines.len() as u64;
    record.stats = stats.clone();
    if stats.records == 0 {
        return Err("the window holds no interactions".to_owned());
    }
    let fmt = |v: &[(String, u64)]| {
        v.iter()
            .map(|(k, n)| format!("{k} x{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // The exact figures lead, so the model does not have to count.
    let mut input = vec![format!(
        "totals: {} records (web {}, cctv {}, social {}); top tags: {}; top products: {}",
        stats.records,
        stats.web,
        stats.cctv,
        stats.social,
        fmt(&stats.top_tags),
        fmt(&stats.top_products)
    )];
    input.extend(lines);
    let (analysis, _) = tokio::task::spawn_blocking(move || model.analyze(&input))
        .await
        .map_err(|e| failed("the model task", e))?
        .map_err(|e| failed("the model", e))?;
    Ok(AnalysisResult {
        summary: analysis.summary,
        insights: analysis.insights,
        anomalies: analysis.anomalies,
        recommendations: analysis.recommendations,
    })
}

/// The stored (client-visible) error of an analysis that failed inside crow: what failed and a
/// correlation id; the details are in the log under that id.
fn failed(what: &str, error: impl std::fmt::Display) -> String {
    let id = crate::log_internal("analysis", error);
    format!("{what} failed (correlation id {id})")
}
