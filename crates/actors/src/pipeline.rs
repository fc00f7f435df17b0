//! [`Pipeline`]: the handle callers (the gRPC services, an embedding application) use to drive the actors.

use std::sync::Arc;
use std::time::Duration;

use crow_inference::llama::{LlamaSettings, TextModel, VisionModel};
use crow_inference::remote::{RemoteDescriber, RemoteText, ServerPool};
use crow_inference::text::TextGenerator;
use crow_inference::OpenCvSceneDescriber;
use crow_storage::{Records, SessionRecord, Store};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef};
use tokio::sync::watch;

use crate::analysis::AnalysisArgs;
use crate::analyzer::AnalyzerArgs;
use crate::cluster::{Bus, Role};
use crate::config::AnalysisConfig;
use crate::describer_pool::{DescriberFactory, DescriberPool};
use crate::ingest_session::{FrameAck, FrameInput, FrameReply, IngestSessionMsg};
use crate::patterns::PatternHub;
use crate::processor::ProcessorArgs;
use crate::product_meaning::ProductMatcher;
use crate::retention::{DiskState, RetentionArgs};
use crate::semantic::SemanticSearch;
use crate::supervisor::{ChildLinks, CrowSupervisor, SessionHandle, SupervisorArgs, SupervisorMsg};
use crate::{DescriberKind, LlamaConfig, PipelineConfig, PipelineError, Unready};

/// Room for a journal entry's head (session record with its scene, frame record) beside the frame.
const JOURNAL_HEAD_ROOM: usize = 64 * 1024;

/// How long a caller waits for a restarting session actor before giving up.
const RESTART_WAIT: Duration = Duration::from_secs(10);

/// Checks an identifier from outside: 1..=128 characters of `[A-Za-z0-9._-]` (see
/// [`crow_storage::validate::id`]).
pub fn validate_id(what: &str, id: &str) -> Result<(), PipelineError> {
    Ok(crow_storage::validate::id(what, id)?)
}

/// What [`Pipeline::shutdown`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Session actors that were running.
    pub sessions: usize,
    /// Of those, sessions whose descriptions did not finish before the deadline.
    pub sessions_cut_off: usize,
    /// Batches emitted from pending descriptions during the drain.
    pub batches_flushed: u64,
    /// Stored batches still without their interaction at the end (resumed on the next start).
    pub batches_unanalyzed: usize,
    /// Analyses still queued or running at the end (re-run on the next start).
    pub analyses_unfinished: usize,
}

/// Handle to a running pipeline. Cheap to clone; dropping the last clone does not stop it — call
/// [`Pipeline::shutdown`].
#[derive(Clone)]
pub struct Pipeline {
    pub(crate) inner: Arc<PipelineInner>,
}

pub(crate) struct PipelineInner {
    pub(crate) supervisor: ActorRef<SupervisorMsg>,
    /// The supervised children the record services send to.
    pub(crate) links: ChildLinks,
    pub(crate) store: Store,
    pub(crate) records: Records,
    pub(crate) config: Arc<PipelineConfig>,
    pub(crate) model: Option<Arc<dyn TextGenerator>>,
    pub(crate) patterns: PatternHub,
    pub(crate) analysis_finished: Arc<watch::Sender<u64>>,
    /// This node's analyses queued or running.
    pub(crate) analyses_unfinished: Arc<std::sync::atomic::AtomicUsize>,
    pub(crate) disk: Arc<DiskState>,
    /// NATS JetStream, on the ingest and analyze roles.
    pub(crate) bus: Option<Bus>,
    /// The analyze role's batch consumer and dead-letter mover.
    pub(crate) background: Vec<tokio::task::JoinHandle<()>>,
    /// Search by meaning, when its model is installed (all and api roles).
    pub(crate) search: Option<Arc<SemanticSearch>>,
    /// `Ask` calls admitted (answering or waiting: `analysis.slots + analysis.queue`).
    pub(crate) ask_admission: Arc<tokio::sync::Semaphore>,
    /// `Ask` calls answering at once (`analysis.slots`).
    pub(crate) ask_slots: Arc<tokio::sync::Semaphore>,
    /// The ingest role's heartbeat and orphan sweep ([`watch_orphans`]); stopped first at shutdown.
    pub(crate) orphan_watch: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    #[cfg(feature = "fault-injection")]
    pub(crate) processing_fault: crate::processor::FaultHook,
}

impl Drop for PipelineInner {
    fn drop(&mut self) {
        for task in &self.background {
            task.abort();
        }
        if let Some(task) = self.orphan_watch.get_mut().ok().and_then(|t| t.take()) {
            task.abort();
        }
    }
}

impl Pipeline {
    /// Starts the actors on `store` (the node's sled: sessions, frames, batches, keyframes) writing records
    /// to `records` (the same sled in a single process, PostgreSQL in a cluster), with the describer
    /// chosen in `config` (the embedded OpenCV describer, a llama.cpp vision model — loaded and checked
    /// here, so a bad model file fails start-up — or none). Sessions left open by a previous run resume
    /// their unfinished work.
    pub async fn start(
        store: Store,
        records: Records,
        mut config: PipelineConfig,
    ) -> Result<Pipeline, PipelineError> {
        let factory: Option<DescriberFactory> = match config.describer {
            DescriberKind::Opencv => {
                Some(Arc::new(|| Ok(Box::new(OpenCvSceneDescriber::new()?) as _)))
            }
            DescriberKind::Llama => {
                let vision = Self::load_vision(&config.llama).await?;
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
        Self::start_with_describer(store, records, config, factory).await
    }

    /// Loads the configured llama.cpp vision model once (checked: files exist, are GGUF, projector fits).
    async fn load_vision(config: &LlamaConfig) -> Result<Arc<VisionModel>, PipelineError> {
        let c = config.clone();
        let settings = LlamaSettings {
            threads: c.threads,
            n_ctx: c.n_ctx,
            max_tokens: c.max_tokens,
        };
        tokio::task::spawn_blocking(move || {
            VisionModel::load(&c.model, &c.mmproj, c.prompt, settings)
        })
        .await
        .map_err(|e| PipelineError::Internal(format!("model loader: {e}")))?
        .map_err(|e| PipelineError::InvalidArgument(e.to_string()))
    }

    /// Like [`Pipeline::start`], with a caller-supplied describer factory (one describer per slot).
    pub async fn start_with_describer(
        store: Store,
        records: Records,
        config: PipelineConfig,
        factory: Option<DescriberFactory>,
    ) -> Result<Pipeline, PipelineError> {
        if let Some((key, rule)) = config.problems().into_iter().next() {
            return Err(PipelineError::InvalidArgument(format!(
                "pipeline.{key} {rule}"
            )));
        }
        let pool = match (config.describer, factory) {
            (DescriberKind::Off, _) | (_, None) => None,
            (_, Some(factory)) => Some(
                DescriberPool::start(factory, config.describer_slots, config.describer_queue)
                    .map_err(|e| PipelineError::Internal(format!("starting describers: {e}")))?,
            ),
        };
        let model = Self::load_text_model(&config.analysis).await?;
        let detector = Self::load_detector(&config.perception).await?;
        let patterns = PatternHub::new(config.analysis.pattern_buffer);
        let analysis_finished = Arc::new(watch::channel(0u64).0);
        let analyses_unfinished = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // Fault injection (tests only): events whose summary holds this marker fail every processing
        // attempt, also in a `crow serve` process that a test starts.
        #[cfg(feature = "fault-injection")]
        let processing_fault: crate::processor::FaultHook = Arc::new(std::sync::Mutex::new(
            std::env::var("CROW_FAULT_INJECTION_EVENT_MARKER").ok(),
        ));
        let role = config.cluster.role;
        if role == Role::Infer {
            return Err(PipelineError::InvalidArgument(
                "the infer role runs no pipeline (crow serve --role infer serves the models)"
                    .into(),
            ));
        }
        if role != Role::All && !records.backend().is_shared() {
            return Err(PipelineError::InvalidArgument(format!(
                "the {} role needs records shared by the cluster: storage.backend = \"postgres\"",
                role.as_str()
            )));
        }
        let bus = match role {
            Role::Ingest | Role::Analyze => Some(Bus::connect(&config.cluster).await?),
            Role::All | Role::Api | Role::Infer => None,
        };
        if let (Role::Ingest, Some(bus)) = (role, &bus) {
            // Alive before the first session opens, so no other node takes this one's sessions for orphans.
            if let Some(nodes) = bus.nodes() {
                nodes.heartbeat(bus.node()).await?;
            }
            // A frame awaiting description is journaled with its bytes (see `journal`).
            let room = bus.max_payload().saturating_sub(JOURNAL_HEAD_ROOM);
            if config.limits.max_frame_bytes > room {
                tracing::warn!(
                    max_payload = bus.max_payload(),
                    max_frame_bytes = config.limits.max_frame_bytes,
                    "frames over {room} bytes cannot be journaled and will fail: raise max_payload in the NATS servers' configuration or lower pipeline.limits.max_frame_bytes"
                );
            }
        }
        // Embeddings are made where records are analysed (all, analyze) and searched where the API
        // answers (all, api); analysers also match descriptions to products by meaning.
        let search = match role {
            Role::All | Role::Api | Role::Analyze => {
                let index = matches!(role, Role::All | Role::Api);
                SemanticSearch::load(records.clone(), config.search.clone(), index).await?
            }
            Role::Ingest | Role::Infer => None,
        };
        let meaning = search.as_ref().filter(|_| role.analyzes()).map(|s| {
            Arc::new(ProductMatcher::new(
                Arc::clone(s),
                config.search.product_min_similarity,
            ))
        });
        let config = Arc::new(config);
        let disk = Arc::new(DiskState::default());
        let links = ChildLinks::vacant();
        let args = SupervisorArgs {
            links: links.clone(),
            store: store.clone(),
            pool,
            detector,
            config: Arc::clone(&config),
            analyzer: AnalyzerArgs {
                store: store.clone(),
                records: records.clone(),
                model: model.clone(),
                catalog_top_k: config.analysis.catalog_top_k,
                meaning,
                patterns: patterns.clone(),
                slots: config.analysis.batch_slots,
                max_backlog: config.analysis.max_batch_backlog,
                handoff: bus.clone().filter(|_| role == Role::Ingest),
            },
            processor: ProcessorArgs {
                records: records.clone(),
                config: Arc::new(config.interactions.clone()),
                active: role.analyzes(),
                poll: (role == Role::Analyze)
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
        let ask_admission = Arc::new(tokio::sync::Semaphore::new(
            config.analysis.slots + config.analysis.queue,
        ));
        let ask_slots = Arc::new(tokio::sync::Semaphore::new(config.analysis.slots));
        let mut background = Vec::new();
        if let Some(search) = &search {
            background.push(tokio::spawn(
                Arc::clone(search).run(matches!(role, Role::All | Role::Analyze)),
            ));
        }
        let search = search.filter(|_| matches!(role, Role::All | Role::Api));
        if let (Role::Analyze, Some(bus)) = (role, &bus) {
            let analyzer = Arc::new(args.analyzer.clone());
            background.push(tokio::spawn(crate::analyzer::consume(
                bus.clone(),
                analyzer,
            )));
            background.push(tokio::spawn(bus.clone().dead_letter_batches()));
        }
        let (supervisor, _) = Actor::spawn(None, CrowSupervisor, args)
            .await
            .map_err(|e| PipelineError::Internal(format!("starting supervisor: {e}")))?;
        let pipeline = Pipeline {
            inner: Arc::new(PipelineInner {
                supervisor,
                links,
                store,
                records,
                config,
                model,
                patterns,
                analysis_finished,
                analyses_unfinished,
                disk,
                bus: bus.clone(),
                background,
                search,
                ask_admission,
                ask_slots,
                orphan_watch: std::sync::Mutex::new(None),
                #[cfg(feature = "fault-injection")]
                processing_fault,
            }),
        };
        if let (Role::Ingest, Some(bus)) = (role, bus) {
            let watch = tokio::spawn(watch_orphans(Arc::downgrade(&pipeline.inner), bus));
            *pipeline
                .inner
                .orphan_watch
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(watch);
        }
        Ok(pipeline)
    }

    /// The person detector of `[pipeline.perception]`: the SSD, or HOG when chosen or when the SSD's
    /// model file is missing (said in the log), or none.
    async fn load_detector(
        config: &crate::PerceptionConfig,
    ) -> Result<Option<Arc<crow_inference::DetectorPool>>, PipelineError> {
        use crate::config::DetectorChoice;
        let (choice, model, min_score) = (config.detector, config.model.clone(), config.min_score);
        if choice == DetectorChoice::Off {
            return Ok(None);
        }
        let pool = tokio::task::spawn_blocking(move || match choice {
            DetectorChoice::Hog => crow_inference::DetectorPool::hog(min_score).map(|p| (p, None)),
            _ => crow_inference::DetectorPool::load(&model, min_score),
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
            None => tracing::info!(detector = pool.kind().name(), "person detector loaded"),
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

    /// The node's sled store: sessions, frame tracking, batches, keyframes (and, in a single process,
    /// the records too).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Where records, the outbox, catalogs, cameras and analyses live.
    pub fn records(&self) -> &Records {
        &self.inner.records
    }

    /// Search by meaning; `None` when it is off, its model is missing, or this node's role does not
    /// serve the API.
    pub fn search(&self) -> Option<&Arc<SemanticSearch>> {
        self.inner.search.as_ref()
    }

    /// This node's role in a cluster (`all` in a single process).
    pub fn role(&self) -> Role {
        self.inner.config.cluster.role
    }

    /// Whether everything this node depends on answers now: the record store and, on the ingest and
    /// analyze roles, NATS. `Err` says which does not.
    pub async fn ready(&self) -> Result<(), Unready> {
        let records = &self.inner.records;
        records
            .ready()
            .await
            .map_err(|error| Unready::RecordStore {
                backend: records.backend(),
                error,
            })?;
        if let Some(bus) = &self.inner.bus {
            if !bus.connected() {
                return Err(Unready::NatsDisconnected);
            }
        }
        Ok(())
    }

    /// Whether this is an ingest node of a cluster (sessions come from the cluster's journal).
    fn clustered_ingest(&self) -> bool {
        self.role() == Role::Ingest
    }

    /// Camera streams are refused on nodes that do not ingest.
    fn check_ingests(&self) -> Result<(), PipelineError> {
        let role = self.role();
        if role.ingests() {
            Ok(())
        } else {
            Err(PipelineError::Unavailable(format!(
                "this node's role is {}: send camera streams to an ingest node",
                role.as_str()
            )))
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &PipelineConfig {
        &self.inner.config
    }

    /// Returns the camera's open session, creating one if there is none.
    pub async fn create_session(
        &self,
        organization_id: &str,
        camera_id: &str,
    ) -> Result<SessionRecord, PipelineError> {
        validate_id("organization_id", organization_id)?;
        validate_id("camera_id", camera_id)?;
        self.check_ingests()?;
        Ok(self.open(organization_id, camera_id, None).await?.session)
    }

    /// A session with its current counters. Another organization's session is `SessionNotFound`.
    pub fn get_session(
        &self,
        organization_id: &str,
        session_id: &str,
    ) -> Result<SessionRecord, PipelineError> {
        validate_id("organization_id", organization_id)?;
        validate_id("session_id", session_id)?;
        match self.inner.store.get_session(session_id)? {
            Some(s) if s.organization_id == organization_id => Ok(s),
            _ => Err(PipelineError::SessionNotFound(session_id.to_owned())),
        }
    }

    /// The keyframe of a described frame of an organization's session: `(captured_at_ms, bytes)`.
    /// `NotFound` when the session is unknown or another organization's, the frame was never
    /// described, or retention has removed its keyframe.
    pub fn get_keyframe(
        &self,
        organization_id: &str,
        session_id: &str,
        frame_index: u64,
    ) -> Result<(i64, Vec<u8>), PipelineError> {
        let session = self.get_session(organization_id, session_id)?;
        let store = &self.inner.store;
        let bytes = store
            .keyframe(&session.id, frame_index)?
            .ok_or(PipelineError::NotFound("keyframe"))?;
        let captured_at_ms = store
            .get_frame(&session.id, frame_index)?
            .map_or(0, |f| f.captured_at_ms);
        Ok((captured_at_ms, bytes))
    }

    /// Closes a session: waits for its in-flight descriptions, flushes the last batch, marks it closed.
    /// Closing a closed session returns it unchanged.
    pub async fn close_session(
        &self,
        organization_id: &str,
        session_id: &str,
    ) -> Result<SessionRecord, PipelineError> {
        // In a cluster the session may live on another ingest node so far: opening it here replays it.
        let camera_id = match self.get_session(organization_id, session_id) {
            Ok(session) => session.camera_id,
            Err(PipelineError::SessionNotFound(_)) if self.clustered_ingest() => String::new(),
            Err(e) => return Err(e),
        };
        let handle = match self
            .open_retrying(organization_id, &camera_id, Some(session_id))
            .await
        {
            Ok(h) => h,
            Err(PipelineError::SessionClosed(_)) => {
                return self.get_session(organization_id, session_id)
            }
            Err(e) => return Err(e),
        };
        let closed = close_actor(&handle.actor).await;
        match closed {
            Err(PipelineError::Unavailable(_)) => self.get_session(organization_id, session_id),
            other => other,
        }
    }

    /// A router for one camera's frames (one per client stream).
    pub fn router(
        &self,
        organization_id: &str,
        camera_id: &str,
    ) -> Result<FrameRouter, PipelineError> {
        validate_id("organization_id", organization_id)?;
        validate_id("camera_id", camera_id)?;
        self.check_ingests()?;
        Ok(FrameRouter {
            pipeline: self.clone(),
            organization_id: organization_id.to_owned(),
            camera_id: camera_id.to_owned(),
            current: None,
        })
    }

    /// The data directory's free space as retention last measured it (see
    /// `pipeline.retention.min_free_disk_bytes`).
    pub fn disk(&self) -> &DiskState {
        &self.inner.disk
    }

    /// Makes every write done so far durable (group commit; see [`Store::sync`]).
    pub async fn sync(&self) -> Result<(), PipelineError> {
        self.inner.store.sync().await?;
        Ok(self.inner.records.sync().await?)
    }

    /// Stops the pipeline gracefully within `pipeline.shutdown_timeout_ms`: every running session
    /// finishes its in-flight descriptions and emits its pending descriptions as batches, the analyzer
    /// turns the stored batches into interactions and running analyses finish — each for as long as the
    /// deadline allows — then the actors stop and storage is flushed. Work the deadline cuts off stays in
    /// sled (undescribed frames, unanalyzed batches, unfinished analyses) and resumes on the next start;
    /// sessions stay open. Call it after the gRPC server has stopped taking frames.
    pub async fn shutdown(&self) -> ShutdownReport {
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(self.inner.config.shutdown_timeout_ms);
        let mut report = ShutdownReport::default();
        // No more sessions taken over from dead nodes.
        if let Some(watch) = self
            .inner
            .orphan_watch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            watch.abort();
        }
        let sessions = match self
            .inner
            .supervisor
            .call(SupervisorMsg::Sessions, None)
            .await
        {
            Ok(CallResult::Success(sessions)) => sessions,
            _ => Vec::new(),
        };
        report.sessions = sessions.len();
        let drains = sessions.into_iter().map(|(id, actor)| async move {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match actor.call(IngestSessionMsg::Drain, Some(left)).await {
                Ok(CallResult::Success(batches)) => Some(batches),
                _ => {
                    tracing::warn!(session_id = %id, "session not drained before the shutdown deadline; its work resumes on the next start");
                    None
                }
            }
        });
        for drained in futures::future::join_all(drains).await {
            match drained {
                Some(batches) => report.batches_flushed += batches,
                None => report.sessions_cut_off += 1,
            }
        }
        // The analyzer and the analysis pool work through their mailboxes; wait for what is stored to be
        // done (both are durable: whatever is left is picked up on the next start).
        loop {
            let batches = self.inner.store.unanalyzed_batches().map_or(0, |b| b.len());
            // This node's own: in a cluster the shared store also lists other nodes' analyses.
            let analyses = self
                .inner
                .analyses_unfinished
                .load(std::sync::atomic::Ordering::SeqCst);
            report.batches_unanalyzed = batches;
            report.analyses_unfinished = analyses;
            if (batches == 0 && analyses == 0) || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.inner
            .supervisor
            .stop_children_and_wait(None, Some(Duration::from_secs(5)))
            .await;
        self.inner
            .supervisor
            .stop_and_wait(None, Some(Duration::from_secs(5)))
            .await
            .ok();
        if let Err(e) = self.inner.store.sync().await {
            tracing::error!(error = %e, "final flush failed");
        }
        report
    }

    /// Fault injection for tests: makes the session's actor panic. Returns whether an actor was there.
    #[cfg(feature = "fault-injection")]
    pub async fn inject_session_panic(&self, session_id: &str) -> bool {
        let id = session_id.to_owned();
        matches!(
            self.inner
                .supervisor
                .call(
                    |reply| SupervisorMsg::InjectPanic {
                        session_id: id,
                        reply
                    },
                    None
                )
                .await,
            Ok(CallResult::Success(true))
        )
    }

    async fn open(
        &self,
        organization_id: &str,
        camera_id: &str,
        session_id: Option<&str>,
    ) -> Result<SessionHandle, PipelineError> {
        let (org, cam, sid) = (
            organization_id.to_owned(),
            camera_id.to_owned(),
            session_id.map(str::to_owned),
        );
        match self
            .inner
            .supervisor
            .call(
                |reply| SupervisorMsg::Open {
                    organization_id: org,
                    camera_id: cam,
                    session_id: sid,
                    reply,
                },
                None,
            )
            .await
        {
            Ok(CallResult::Success(result)) => result,
            _ => Err(PipelineError::Unavailable(
                "pipeline is shutting down".into(),
            )),
        }
    }

    /// [`Pipeline::open`], waiting out a session actor's restart backoff.
    async fn open_retrying(
        &self,
        organization_id: &str,
        camera_id: &str,
        session_id: Option<&str>,
    ) -> Result<SessionHandle, PipelineError> {
        let deadline = tokio::time::Instant::now() + RESTART_WAIT;
        loop {
            match self.open(organization_id, camera_id, session_id).await {
                Err(PipelineError::Unavailable(reason))
                    if tokio::time::Instant::now() < deadline =>
                {
                    tracing::debug!(reason, "waiting for session actor");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => return other,
            }
        }
    }
}

async fn close_actor(actor: &ActorRef<IngestSessionMsg>) -> Result<SessionRecord, PipelineError> {
    match actor.call(IngestSessionMsg::Close, None).await {
        Ok(CallResult::Success(result)) => result,
        _ => Err(PipelineError::Unavailable("session actor stopped".into())),
    }
}

/// Routes one camera's frames to the right session actor: follows hourly rollovers (closing the finished
/// session and opening the next) and waits out actor restarts, resending the frame (frames are idempotent by
/// index, so a resend never counts twice).
pub struct FrameRouter {
    pipeline: Pipeline,
    organization_id: String,
    camera_id: String,
    current: Option<SessionHandle>,
}

impl FrameRouter {
    /// Submits one frame. `session_id` pins the frame to a session (it must belong to the organization);
    /// `None` uses the camera's open session. Returns once the outcome is recorded (not yet synced: call
    /// [`Pipeline::sync`] before acknowledging to a client that needs durability).
    pub async fn submit(
        &mut self,
        session_id: Option<&str>,
        frame: FrameInput,
    ) -> Result<FrameAck, PipelineError> {
        let deadline = tokio::time::Instant::now() + RESTART_WAIT;
        let mut pinned = session_id.map(str::to_owned);
        loop {
            let handle = match &self.current {
                Some(h) if pinned.as_deref().is_none_or(|id| id == h.session.id) => h.clone(),
                _ => {
                    let h = self
                        .pipeline
                        .open_retrying(&self.organization_id, &self.camera_id, pinned.as_deref())
                        .await?;
                    self.current = Some(h.clone());
                    h
                }
            };
            let reply = handle
                .actor
                .call(|reply| IngestSessionMsg::Frame(frame.clone(), reply), None)
                .await;
            match reply {
                Ok(CallResult::Success(Ok(FrameReply::Recorded(ack)))) => return Ok(ack),
                Ok(CallResult::Success(Ok(FrameReply::RollOver))) => {
                    close_actor(&handle.actor).await.ok();
                    self.current = None;
                    // The next session is the camera's new open one, whatever the client pinned.
                    pinned = None;
                }
                Ok(CallResult::Success(Err(e))) => return Err(e),
                // The actor died with the frame in its mailbox: wait for its restart and resend.
                _ if tokio::time::Instant::now() < deadline => {
                    self.current = None;
                    pinned = Some(handle.session.id.clone());
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => {
                    return Err(PipelineError::Unavailable(
                        "session actor did not come back".into(),
                    ))
                }
            }
        }
    }
}

/// On an ingest node: says every third of `orphan_after_ms` that this node is alive, and takes over the
/// sessions of ingest nodes that stopped saying so — each camera entry naming a dead node is moved to
/// this node by compare-and-set (so one node takes it), and its session is closed here: replayed from
/// the journal, its acknowledged frames described, its descriptions batched and handed on. A camera
/// that comes back later starts a new session. Ends when the pipeline is dropped.
async fn watch_orphans(pipeline: std::sync::Weak<PipelineInner>, bus: Bus) {
    let (Some(nodes), Some(cameras)) = (bus.nodes().cloned(), bus.cameras().cloned()) else {
        return;
    };
    let after = Duration::from_millis(bus.settings().orphan_after_ms);
    let beat = after / 3;
    // Nodes that started with this one get a full period to say they are alive.
    let mut next_sweep = tokio::time::Instant::now() + after;
    loop {
        if let Err(e) = nodes.heartbeat(bus.node()).await {
            tracing::warn!(error = %e, "could not say this node is alive");
        }
        if tokio::time::Instant::now() >= next_sweep {
            next_sweep = tokio::time::Instant::now() + beat;
            let Some(inner) = pipeline.upgrade() else {
                return;
            };
            let pipeline = Pipeline { inner };
            if let Err(e) = sweep_orphans(&pipeline, &bus, &nodes, &cameras).await {
                tracing::warn!(error = %e, "orphan sweep failed; trying again");
            }
        }
        tokio::time::sleep(beat).await;
        if pipeline.strong_count() == 0 {
            return;
        }
    }
}

/// One pass of [`watch_orphans`].
async fn sweep_orphans(
    pipeline: &Pipeline,
    bus: &Bus,
    nodes: &crate::journal::LiveNodes,
    cameras: &crate::journal::CameraSessions,
) -> Result<(), PipelineError> {
    let alive = nodes.alive().await?;
    if !alive.contains(&crate::journal::node_key(bus.node())) {
        // This node's own heartbeat is not visible: NATS is struggling, and judging others now would
        // take sessions from live nodes.
        return Ok(());
    }
    for entry in cameras.entries().await? {
        if entry.node == bus.node() || alive.contains(&crate::journal::node_key(&entry.node)) {
            continue;
        }
        let Some(session_id) = entry.current.session_id.clone() else {
            continue;
        };
        let (org, camera) = (&entry.organization_id, &entry.camera_id);
        // One node takes it; a camera that came back to some node in the meantime changed the entry.
        if !cameras
            .replace(org, camera, &entry.current, &session_id, bus.node())
            .await?
        {
            continue;
        }
        match pipeline.close_session(org, &session_id).await {
            Ok(session) => {
                metrics::counter!(crate::metrics_names::SESSIONS_ADOPTED).increment(1);
                tracing::info!(
                    session_id,
                    org_id = %org,
                    camera_id = %camera,
                    dead_node = %entry.node,
                    batches = session.counters.batches,
                    "took over the session of a dead ingest node and closed it"
                );
            }
            Err(e) => {
                tracing::warn!(session_id, dead_node = %entry.node, error = %e, "could not close the session of a dead ingest node");
            }
        }
    }
    Ok(())
}
