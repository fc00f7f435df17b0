//! Starting a node's pipeline: what each cluster [`Role`] starts ([`RolePlan`]), the models loaded
//! once at start (describer, text model, person detector), and the wiring of the actors and
//! background tasks into a [`Pipeline`].

use std::sync::Arc;
use std::time::Duration;

use crow_inference::llama::{LlamaSettings, TextModel, VisionModel};
use crow_inference::remote::{RemoteDescriber, RemoteText, ServerPool};
use crow_inference::text::TextGenerator;
use crow_inference::{DetectionFilter, DetectorPool, OpenCvSceneDescriber};
use crow_storage::{Records, Store};
use ractor::{Actor, ActorRef};
use tokio::sync::watch;

use crate::analysis_pool::AnalysisArgs;
use crate::analyzer::AnalyzerArgs;
use crate::ask::AskService;
use crate::cluster::orphans::watch_orphans;
use crate::cluster::{Bus, Role};
use crate::config::{AnalysisConfig, DetectorChoice, PerceptionConfig};
use crate::describer_pool::{DescriberFactory, DescriberPool};
use crate::processor::ProcessorArgs;
use crate::product_meaning::ProductMatcher;
use crate::record_services::RecordServices;
use crate::retention::{DiskState, RetentionArgs};
use crate::semantic::SemanticSearch;
use crate::session_ingress::SessionIngress;
use crate::supervisor::{ChildLinks, CrowSupervisor, SupervisorArgs, SupervisorMsg};
use crate::{DescriberKind, LlamaConfig, PipelineConfig, PipelineError};

/// Room for a journal entry's head (session record with its scene, frame record) beside the frame.
const JOURNAL_HEAD_ROOM: usize = 64 * 1024;

/// What a node of one role starts. Every role but `infer` runs the actor tree; the plan switches its
/// parts on and off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RolePlan {
    /// Connects to NATS JetStream.
    pub bus: bool,
    /// Sessions are the cluster's: journaled on JetStream, batches handed to JetStream instead of
    /// analysed here, a heartbeat, and the take-over of dead ingest nodes' sessions.
    pub clustered_ingest: bool,
    /// Batches and outbox events become records here.
    pub analyzes: bool,
    /// Consumes the cluster's batches from JetStream (and moves those that keep failing aside).
    pub consumes_batches: bool,
    /// Polls the shared outbox (other nodes accept the events).
    pub polls_outbox: bool,
    /// Embeds stored records for search by meaning.
    pub embeds: bool,
    /// Keeps the vector index and answers searches and questions.
    pub searches: bool,
}

impl RolePlan {
    /// The plan of `role`; `None` for `infer`, which runs no pipeline.
    pub(crate) fn of(role: Role) -> Option<RolePlan> {
        let plan = |bus, clustered_ingest, analyzes, consumes_batches, embeds, searches| RolePlan {
            bus,
            clustered_ingest,
            analyzes,
            consumes_batches,
            polls_outbox: consumes_batches,
            embeds,
            searches,
        };
        //                           bus    cl.ingest analyzes consumes embeds searches
        match role {
            Role::All => Some(plan(false, false, true, false, true, true)),
            Role::Ingest => Some(plan(true, true, false, false, false, false)),
            Role::Analyze => Some(plan(true, false, true, true, true, false)),
            Role::Api => Some(plan(false, false, false, false, false, true)),
            Role::Infer => None,
        }
    }
}

/// What a started node runs, owned by its [`Pipeline`](crate::Pipeline) handle: the actor tree, the
/// jobs' handles, and the background tasks (stopped when the last handle goes).
pub(crate) struct RunningNode {
    pub(crate) supervisor: ActorRef<SupervisorMsg>,
    pub(crate) sessions: SessionIngress,
    pub(crate) services: RecordServices,
    pub(crate) ask: AskService,
    pub(crate) store: Store,
    pub(crate) records: Records,
    pub(crate) config: Arc<PipelineConfig>,
    /// This node's analyses queued or running.
    pub(crate) analyses_unfinished: Arc<std::sync::atomic::AtomicUsize>,
    pub(crate) disk: Arc<DiskState>,
    /// NATS JetStream, on the ingest and analyze roles.
    pub(crate) bus: Option<Bus>,
    /// The embedding worker, and the analyze role's batch consumer and dead-letter mover.
    pub(crate) background: Vec<tokio::task::JoinHandle<()>>,
    /// Search by meaning, when its model is installed (all and api roles).
    pub(crate) search: Option<Arc<SemanticSearch>>,
    /// The ingest role's heartbeat and orphan sweep ([`crate::cluster::orphans::watch_orphans`]); stopped
    /// first at shutdown.
    pub(crate) orphan_watch: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        for task in &self.background {
            task.abort();
        }
        if let Some(task) = self.orphan_watch.get_mut().ok().and_then(|t| t.take()) {
            task.abort();
        }
    }
}

/// [`Pipeline::start`](crate::Pipeline::start): the describer factory of `config.describer`, then [`start_with_describer`].
pub(crate) async fn start(
    store: Store,
    records: Records,
    mut config: PipelineConfig,
) -> Result<RunningNode, PipelineError> {
    let factory: Option<DescriberFactory> = match config.describer {
        DescriberKind::Opencv => Some(Arc::new(|| Ok(Box::new(OpenCvSceneDescriber::new()?) as _))),
        DescriberKind::Llama => {
            let vision = load_vision(&config.llama).await?;
            Some(Arc::new(move || Ok(Box::new(vision.describer()?) as _)))
        }
        DescriberKind::Remote => {
            // One pool for every slot; a bad URL fails start-up.
            let pool = ServerPool::new(config.remote.clone())
                .map_err(|e| PipelineError::InvalidArgument(e.to_string()))?;
            // Enough slots to keep every server at its `max_in_flight`.
            config.describer_slots = config.describer_slots.max(pool.capacity());
            tracing::info!(
                servers = ?config.remote.server_urls(),
                slots = config.describer_slots,
                "describing frames on inference servers"
            );
            Some(Arc::new(move || {
                Ok(Box::new(RemoteDescriber::new(pool.clone())) as _)
            }))
        }
        DescriberKind::Off => None,
    };
    start_with_describer(store, records, config, factory).await
}

/// [`Pipeline::start_with_describer`](crate::Pipeline::start_with_describer): checks the configuration, loads the models, and starts what the
/// node's [`RolePlan`] says.
pub(crate) async fn start_with_describer(
    store: Store,
    records: Records,
    config: PipelineConfig,
    factory: Option<DescriberFactory>,
) -> Result<RunningNode, PipelineError> {
    if let Some((key, rule)) = config.problems().into_iter().next() {
        return Err(PipelineError::InvalidArgument(format!(
            "pipeline.{key} {rule}"
        )));
    }
    let role = config.cluster.role;
    let plan = RolePlan::of(role).ok_or_else(|| {
        PipelineError::InvalidArgument(
            "the infer role runs no pipeline (crow serve --role infer serves the models)".into(),
        )
    })?;
    if role != Role::All && !records.backend().is_shared() {
        return Err(PipelineError::InvalidArgument(format!(
            "the {} role needs records shared by the cluster: storage.backend = \"postgres\"",
            role.as_str()
        )));
    }
    let pool = match (config.describer, factory) {
        (DescriberKind::Off, _) | (_, None) => None,
        (_, Some(factory)) => Some(
            DescriberPool::start(factory, config.describer_slots, config.describer_queue)
                .map_err(|e| PipelineError::Internal(format!("starting describers: {e}")))?,
        ),
    };
    let model = load_text_model(&config.analysis).await?;
    let detector = load_detector(&config.perception).await?;
    let bus = match plan.bus {
        true => {
            let node = match &config.cluster.node_id {
                Some(node) => node.clone(),
                None => store.node_id(role.as_str()).await?,
            };
            Some(Bus::connect(&config.cluster, node).await?)
        }
        false => None,
    };
    if let (true, Some(bus)) = (plan.clustered_ingest, &bus) {
        check_ingest_bus(bus, &config).await?;
    }
    let search = match plan.embeds || plan.searches {
        true => SemanticSearch::load(records.clone(), config.search.clone(), plan.searches).await?,
        false => None,
    };
    // Analysers also match descriptions to products by meaning.
    let meaning = search.as_ref().filter(|_| plan.analyzes).map(|s| {
        Arc::new(ProductMatcher::new(
            Arc::clone(s),
            config.search.product_min_similarity,
        ))
    });

    let patterns = crate::patterns::PatternHub::new(config.analysis.pattern_buffer);
    let analysis_finished = Arc::new(watch::channel(0u64).0);
    let analyses_unfinished = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // Fault injection (tests only): events whose summary holds this marker fail every processing
    // attempt, also in a `crow serve` process that a test starts.
    #[cfg(feature = "fault-injection")]
    let processing_fault: crate::processor::FaultHook = Arc::new(std::sync::Mutex::new(
        std::env::var("CROW_FAULT_INJECTION_EVENT_MARKER").ok(),
    ));
    let config = Arc::new(config);
    let disk = Arc::new(DiskState::default());
    let links = ChildLinks::vacant();
    let analyzer = AnalyzerArgs {
        store: store.clone(),
        records: records.clone(),
        model: model.clone(),
        catalog_top_k: config.analysis.catalog_top_k,
        meaning,
        patterns: patterns.clone(),
        slots: config.analysis.batch_slots,
        max_backlog: config.analysis.max_batch_backlog,
        handoff: bus.clone().filter(|_| plan.clustered_ingest),
    };
    let mut background = Vec::new();
    if let Some(search) = &search {
        background.push(tokio::spawn(Arc::clone(search).run(plan.embeds)));
    }
    if let (true, Some(bus)) = (plan.consumes_batches, &bus) {
        background.push(tokio::spawn(crate::batch_consumer::consume(
            bus.clone(),
            Arc::new(analyzer.clone()),
        )));
        background.push(tokio::spawn(bus.clone().dead_letter_batches()));
    }
    let args = SupervisorArgs {
        links: links.clone(),
        store: store.clone(),
        pool,
        detector,
        config: Arc::clone(&config),
        analyzer,
        processor: ProcessorArgs {
            records: records.clone(),
            config: Arc::new(config.interactions.clone()),
            active: plan.analyzes,
            poll: plan
                .polls_outbox
                .then(|| Duration::from_millis(config.cluster.outbox_poll_ms)),
            #[cfg(feature = "fault-injection")]
            fault: processing_fault.clone(),
        },
        analysis: AnalysisArgs {
            records: records.clone(),
            model: model.clone(),
            config: Arc::new(config.analysis.clone()),
            finished: Arc::clone(&analysis_finished),
            unfinished: Arc::clone(&analyses_unfinished),
        },
        retention: RetentionArgs {
            store: store.clone(),
            config: config.retention.clone(),
            disk: Arc::clone(&disk),
        },
    };
    let (supervisor, _) = Actor::spawn(None, CrowSupervisor, args)
        .await
        .map_err(|e| PipelineError::Internal(format!("starting supervisor: {e}")))?;
    let sessions = SessionIngress::new(
        supervisor.clone(),
        store.clone(),
        role,
        config.limits.frame(),
    );
    let orphan_watch = match (plan.clustered_ingest, &bus) {
        (true, Some(bus)) => Some(tokio::spawn(watch_orphans(sessions.clone(), bus.clone()))),
        _ => None,
    };
    let search = search.filter(|_| plan.searches);
    let ask = AskService::new(
        records.clone(),
        search.clone(),
        model.clone(),
        config.analysis.slots,
        config.analysis.queue,
    );
    let services = RecordServices {
        records: records.clone(),
        store: store.clone(),
        config: Arc::clone(&config),
        model,
        links,
        analysis_finished,
        patterns,
        #[cfg(feature = "fault-injection")]
        processing_fault,
    };
    Ok(RunningNode {
        supervisor,
        sessions,
        services,
        ask,
        store,
        records,
        config,
        analyses_unfinished,
        disk,
        bus,
        background,
        search,
        orphan_watch: std::sync::Mutex::new(orphan_watch),
    })
}

/// An ingest node's start-up checks on the bus: this node is alive before its first session opens (so
/// no other node takes its sessions for orphans), and frames fit the journal.
async fn check_ingest_bus(bus: &Bus, config: &PipelineConfig) -> Result<(), PipelineError> {
    if let Some(nodes) = bus.nodes() {
        nodes.heartbeat(bus.node()).await?;
    }
    // A frame awaiting description is journaled with its bytes (see `journal`): a frame the node takes
    // must fit the servers' largest message, or it would be acknowledged by no node at all.
    let room = bus.max_payload().saturating_sub(JOURNAL_HEAD_ROOM);
    if config.limits.max_frame_bytes > room {
        return Err(PipelineError::InvalidArgument(format!(
            "pipeline.limits.max_frame_bytes is {} but the NATS servers take messages of at most {} bytes \
             (max_payload), so a journal entry carries frames of at most {room} bytes: set \
             CROW_PIPELINE__LIMITS__MAX_FRAME_BYTES={room} (or less) on every ingest node, or raise \
             max_payload in the NATS servers' configuration",
            config.limits.max_frame_bytes,
            bus.max_payload()
        )));
    }
    Ok(())
}

/// Loads the configured llama.cpp vision model once (checked: files exist, are GGUF, projector fits).
async fn load_vision(config: &LlamaConfig) -> Result<Arc<VisionModel>, PipelineError> {
    let c = config.clone();
    let settings = LlamaSettings {
        threads: c.threads,
        n_ctx: c.n_ctx,
        max_tokens: c.max_tokens,
    };
    tokio::task::spawn_blocking(move || VisionModel::load(&c.model, &c.mmproj, c.prompt, settings))
        .await
        .map_err(|e| PipelineError::Internal(format!("model loader: {e}")))?
        .map_err(|e| PipelineError::InvalidArgument(e.to_string()))
}

/// The person detector of `[pipeline.perception]`: the SSD, or HOG when chosen or when the SSD's
/// model file is missing (said in the log), or none.
async fn load_detector(
    config: &PerceptionConfig,
) -> Result<Option<Arc<DetectorPool>>, PipelineError> {
    // The detector returns the weak detections too: the tracker's second pass uses them.
    let (choice, model, input) = (config.detector, config.model.clone(), config.detector_input);
    let filter = DetectionFilter {
        min_score: config.low_score.min(config.min_score),
        max_width_to_height: config.max_width_to_height,
    };
    if choice == DetectorChoice::Off {
        return Ok(None);
    }
    let pool = tokio::task::spawn_blocking(move || match choice {
        DetectorChoice::Hog => DetectorPool::hog(filter).map(|p| (p, None)),
        _ => DetectorPool::load(&model, input, filter),
    })
    .await
    .map_err(|e| PipelineError::Internal(format!("detector loader: {e}")))?
    .map_err(|e| PipelineError::Internal(format!("loading the person detector: {e}")))?;
    let (pool, fallback) = pool;
    match fallback {
        Some(why) => tracing::warn!(
            reason = %why,
            "person detector model unavailable: falling back to OpenCV's HOG detector, which is slower and misses small or partly hidden people (scripts/setup-models.sh installs the model)"
        ),
        None => {
            tracing::info!(detector = pool.kind().name(), input = ?input, "person detector loaded")
        }
    }
    Ok(Some(Arc::new(pool)))
}

/// The text tasks' model: inference servers when `analysis.remote` is set, else the local model if one
/// is configured and its file exists (checked: a file that is there but does not load fails
/// start-up).
async fn load_text_model(
    config: &AnalysisConfig,
) -> Result<Option<Arc<dyn TextGenerator>>, PipelineError> {
    if let Some(remote) = &config.remote {
        let pool = ServerPool::new(remote.clone())
            .map_err(|e| PipelineError::InvalidArgument(format!("analysis.remote: {e}")))?;
        tracing::info!(servers = ?remote.server_urls(), model = %remote.model, "text tasks on inference servers");
        return Ok(Some(Arc::new(RemoteText::new(pool))));
    }
    let Some(path) = config.model.clone() else {
        return Ok(None);
    };
    if !path.exists() {
        tracing::warn!(
            model = %path.display(),
            "text model not found: products are matched lexically and Analyze is unavailable (scripts/setup-models.sh installs the default)"
        );
        return Ok(None);
    }
    let settings = LlamaSettings {
        threads: config.threads,
        n_ctx: config.n_ctx,
        max_tokens: 64,
    };
    let model = tokio::task::spawn_blocking(move || TextModel::load(&path, settings))
        .await
        .map_err(|e| PipelineError::Internal(format!("model loader: {e}")))?
        .map_err(|e| PipelineError::InvalidArgument(e.to_string()))?;
    tracing::info!(model = %model.path().display(), "text model loaded");
    Ok(Some(model))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_but_infer_has_a_plan_matching_its_role() {
        for role in [Role::All, Role::Ingest, Role::Analyze, Role::Api] {
            let plan = RolePlan::of(role).unwrap();
            assert_eq!(plan.analyzes, role.analyzes(), "{role:?}");
            // Only cluster roles that move batches or sessions need NATS.
            assert_eq!(plan.bus, matches!(role, Role::Ingest | Role::Analyze));
        }
        assert_eq!(RolePlan::of(Role::Infer), None);
    }
}
