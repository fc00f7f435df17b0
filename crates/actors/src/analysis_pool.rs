//! `AnalysisPool`: runs `Analyze` requests on the text model, at most `slots` at once, the rest waiting in
//! a bounded queue. Every request is an [`AnalysisRecord`] in the record store from the moment it is accepted, so a
//! client can fire and fetch later, and analyses interrupted by a stop are run again on the next start.
//! With records in PostgreSQL several nodes share one table of analyses: each runs only those it claims
//! ([`crow_storage::AnalysisRecords::claim_analyses`]) and keeps its claims alive while it works, so no
//! analysis runs twice, and a dead node's analyses are taken by another once its claims expire.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use crow_inference::text::TextGenerator;
use crow_storage::{
    now_ms, AnalysisPhrasing, AnalysisRecord, AnalysisResult, AnalysisStatus, FactKind, Records,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::watch;

use crate::analysis_facts::{self, failed};
use crate::config::AnalysisConfig;
use crate::metrics_names as m;
use crate::PipelineError;

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

/// Computes the analysis ([`analysis_facts::compute`]), then has the text model word its main facts
/// when one is loaded; a wording that fails [`analysis_facts::check_phrasing`] is refused whole and
/// crow's templates word the facts instead.
async fn analyse(
    records: &Records,
    model: Option<Arc<dyn TextGenerator>>,
    config: &AnalysisConfig,
    record: &mut AnalysisRecord,
) -> Result<AnalysisResult, String> {
    let computed = analysis_facts::compute(records, record, config, now_ms()).await?;
    record.stats = computed.stats.clone();
    let facts = computed.facts;
    let cited: HashSet<&String> = facts.iter().flat_map(|f| &f.interaction_ids).collect();
    record.records_used = cited.len() as u64;
    let texts = |kinds: &[FactKind]| {
        facts
            .iter()
            .filter(|f| kinds.contains(&f.kind))
            .map(|f| f.text.clone())
            .collect::<Vec<_>>()
    };
    let mut result = AnalysisResult {
        insights: texts(&[FactKind::Metric, FactKind::Theme]),
        anomalies: texts(&[FactKind::Anomaly]),
        recommendations: texts(&[FactKind::Recommendation]),
        ..Default::default()
    };
    let worded = match model {
        None => Err("no text model is loaded (analysis.model)".to_owned()),
        Some(model) => {
            let lines: Vec<String> = facts.iter().map(|f| f.text.clone()).collect();
            match tokio::task::spawn_blocking(move || model.phrase_analysis(&lines)).await {
                Ok(Ok((phrasing, _))) => analysis_facts::check_phrasing(&phrasing, &facts),
                Ok(Err(e)) => Err(format!("the model's answer is unusable: {e}")),
                Err(e) => Err(failed("the model task", e)),
            }
        }
    };
    match worded {
        Ok(statements) => {
            result.phrasing = AnalysisPhrasing::Model;
            result.statements = statements;
        }
        Err(why) => {
            metrics::counter!(m::ANALYSIS_PHRASING_REFUSED).increment(1);
            tracing::debug!(analysis_id = %record.id, why, "the analysis is worded by templates");
            result.phrasing = AnalysisPhrasing::Template;
            result.phrasing_refused = Some(why);
            result.statements = analysis_facts::template_statements(&facts);
        }
    }
    result.summary = result
        .statements
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    result.facts = facts;
    Ok(result)
}
