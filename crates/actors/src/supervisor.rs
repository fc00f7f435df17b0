//! `CrowSupervisor`: owns the registry of session actors, the analyzer, the interaction processor and the
//! analysis pool; spawns them linked, and restarts a failed one (session actors with exponential backoff,
//! bounded). Every restarted actor resumes from sled. It carries no data: the jobs that send to its
//! children hold a [`LiveRef`] each, which it points at the new actor when it restarts one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crow_storage::{SessionRecord, SessionStatus, Store};
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};

use crate::analysis_pool::{AnalysisArgs, AnalysisMsg, AnalysisPool};
use crate::analyzer::{AnalyzerActor, AnalyzerArgs, AnalyzerMsg};
use crate::cluster::Bus;
use crate::describer_pool::DescriberPool;
use crate::ingest_session::{IngestSessionActor, IngestSessionArgs, IngestSessionMsg};
use crate::journal::{JournalError, SessionJournal, SessionOp};
use crate::live_ref::LiveRef;
use crate::metrics_names as m;
use crate::processor::{InteractionProcessor, ProcessorArgs, ProcessorMsg};
use crate::retention::{RetentionActor, RetentionArgs, RetentionMsg};
use crate::{PipelineConfig, PipelineError};

/// Whether opening a cluster session may take it from the node that serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// The camera's frames (or a client naming the session) arrived here: this node takes it over.
    Take,
    /// Only while the camera bucket names this node (restarts, the resumption of its own sessions).
    IfOwned,
}

/// A running session actor.
#[derive(Clone)]
pub(crate) struct SessionHandle {
    pub session: SessionRecord,
    pub actor: ActorRef<IngestSessionMsg>,
}

pub(crate) enum SupervisorMsg {
    /// Resolve a session to its running actor, spawning it if needed. `session_id: None` means the camera's
    /// open session, created if there is none.
    Open {
        organization_id: String,
        camera_id: String,
        session_id: Option<String>,
        reply: RpcReplyPort<Result<SessionHandle, PipelineError>>,
    },
    /// The running session actors (for shutdown's drain).
    Sessions(RpcReplyPort<Vec<(String, ActorRef<IngestSessionMsg>)>>),
    /// Restart a failed session actor (sent to itself after the backoff).
    Restart { session_id: String },
    /// In a cluster: run a session that the camera bucket says this node serves, if it is not running
    /// (`None`: it is closed).
    Resume {
        session_id: String,
        reply: RpcReplyPort<Result<Option<SessionHandle>, PipelineError>>,
    },
    /// Fault injection for tests: make a session actor panic.
    #[cfg(feature = "fault-injection")]
    InjectPanic {
        session_id: String,
        reply: RpcReplyPort<bool>,
    },
}

pub(crate) struct SupervisorArgs {
    pub store: Store,
    pub pool: Option<DescriberPool>,
    pub detector: Option<Arc<crow_inference::DetectorPool>>,
    pub config: Arc<PipelineConfig>,
    pub analyzer: AnalyzerArgs,
    pub processor: ProcessorArgs,
    pub analysis: AnalysisArgs,
    pub retention: RetentionArgs,
    /// Where the senders find the running children.
    pub links: ChildLinks,
}

/// The children that other jobs send to, as those jobs hold them.
#[derive(Clone)]
pub(crate) struct ChildLinks {
    /// Session actors send their batches here.
    pub analyzer: LiveRef<AnalyzerMsg>,
    /// The record services say here that an event entered the outbox.
    pub processor: LiveRef<ProcessorMsg>,
    /// The record services submit analyses here.
    pub analysis: LiveRef<AnalysisMsg>,
}

impl ChildLinks {
    /// Links to children not started yet.
    pub(crate) fn vacant() -> Self {
        Self {
            analyzer: LiveRef::vacant("the analyzer"),
            processor: LiveRef::vacant("the interaction processor"),
            analysis: LiveRef::vacant("the analysis pool"),
        }
    }
}

enum Slot {
    Running(ActorRef<IngestSessionMsg>),
    /// Failed; a restart is scheduled.
    Restarting,
}

pub(crate) struct SupervisorState {
    store: Store,
    pool: Option<DescriberPool>,
    detector: Option<Arc<crow_inference::DetectorPool>>,
    config: Arc<PipelineConfig>,
    analyzer: ActorRef<AnalyzerMsg>,
    analyzer_args: AnalyzerArgs,
    processor: ActorRef<ProcessorMsg>,
    processor_args: ProcessorArgs,
    analysis: ActorRef<AnalysisMsg>,
    analysis_args: AnalysisArgs,
    retention: ActorRef<RetentionMsg>,
    retention_args: RetentionArgs,
    links: ChildLinks,
    sessions: HashMap<String, Slot>,
    actor_sessions: HashMap<ActorId, String>,
    restarts: HashMap<String, u32>,
}

pub(crate) struct CrowSupervisor;

impl Actor for CrowSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let cell = myself.get_cell();
        let (analyzer, _) =
            Actor::spawn_linked(None, AnalyzerActor, args.analyzer.clone(), cell.clone()).await?;
        let (processor, _) = Actor::spawn_linked(
            None,
            InteractionProcessor,
            args.processor.clone(),
            cell.clone(),
        )
        .await?;
        let (analysis, _) =
            Actor::spawn_linked(None, AnalysisPool, args.analysis.clone(), cell.clone()).await?;
        let (retention, _) =
            Actor::spawn_linked(None, RetentionActor, args.retention.clone(), cell).await?;
        args.links.analyzer.set(analyzer.clone());
        args.links.processor.set(processor.clone());
        args.links.analysis.set(analysis.clone());
        let mut state = SupervisorState {
            store: args.store,
            pool: args.pool,
            detector: args.detector,
            config: args.config,
            analyzer,
            analyzer_args: args.analyzer,
            processor,
            processor_args: args.processor,
            analysis,
            analysis_args: args.analysis,
            retention,
            retention_args: args.retention,
            links: args.links,
            sessions: HashMap::new(),
            actor_sessions: HashMap::new(),
            restarts: HashMap::new(),
        };
        // Sessions that were open when the process stopped may hold undescribed frames or pending
        // descriptions: bring their actors back so that work is finished.
        let busy = state
            .store
            .run(|s| {
                let mut busy = Vec::new();
                for session in s.open_sessions()? {
                    if !s.pending_analyses(&session.id)?.is_empty()
                        || !s.undescribed_frames(&session.id)?.is_empty()
                    {
                        busy.push(session);
                    }
                }
                Ok(busy)
            })
            .await?;
        // In a cluster, which sessions this node resumes is the camera bucket's to say, not its sled's:
        // the orphan watch resumes the sessions that name this node (`cluster::orphans`).
        if state.analyzer_args.handoff.is_none() {
            for session in busy {
                if let Err(e) = state.spawn_session(&myself, &session.id, None).await {
                    tracing::warn!(session_id = %session.id, error = %e, "open session not resumed at start");
                }
            }
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Open {
                organization_id,
                camera_id,
                session_id,
                reply,
            } => {
                let result = state
                    .open(&myself, &organization_id, &camera_id, session_id.as_deref())
                    .await;
                let _ = reply.send(result);
            }
            SupervisorMsg::Sessions(reply) => {
                let running = state
                    .sessions
                    .iter()
                    .filter_map(|(id, slot)| match slot {
                        Slot::Running(actor) => Some((id.clone(), actor.clone())),
                        Slot::Restarting => None,
                    })
                    .collect();
                let _ = reply.send(running);
            }
            SupervisorMsg::Restart { session_id } => {
                if matches!(state.sessions.get(&session_id), Some(Slot::Restarting)) {
                    state.sessions.remove(&session_id);
                    let restarted = match state.analyzer_args.handoff.clone() {
                        // In a cluster: only while the session is still this node's.
                        Some(bus) => state
                            .resume_owned(&myself, &bus, &session_id)
                            .await
                            .map(drop),
                        None => state
                            .spawn_session(&myself, &session_id, None)
                            .await
                            .map(drop),
                    };
                    match restarted {
                        Ok(()) => {}
                        // Another node took the session over meanwhile: it is that node's to run.
                        Err(PipelineError::Moved(_)) => {
                            tracing::info!(
                                session_id,
                                "session moved to another node; not restarted here"
                            );
                        }
                        Err(e) => {
                            tracing::error!(session_id, error = %e, "session actor restart failed");
                        }
                    }
                }
            }
            SupervisorMsg::Resume { session_id, reply } => {
                let result = match state.analyzer_args.handoff.clone() {
                    Some(bus) => state.resume_owned(&myself, &bus, &session_id).await,
                    None => Err(PipelineError::Internal("not in a cluster".into())),
                };
                let _ = reply.send(result);
            }
            #[cfg(feature = "fault-injection")]
            SupervisorMsg::InjectPanic { session_id, reply } => {
                let sent = match state.sessions.get(&session_id) {
                    Some(Slot::Running(actor)) => actor.cast(IngestSessionMsg::Panic).is_ok(),
                    _ => false,
                };
                let _ = reply.send(sent);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, error) => {
                state.on_failure(&myself, cell, error.to_string()).await?
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                // Session actors stop after a close; the analyzer only when the pipeline shuts down.
                if let Some(session_id) = state.actor_sessions.remove(&cell.get_id()) {
                    tracing::debug!(session_id, ?reason, "session actor stopped");
                    state.sessions.remove(&session_id);
                    state.restarts.remove(&session_id);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl SupervisorState {
    async fn open(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        organization_id: &str,
        camera_id: &str,
        session_id: Option<&str>,
    ) -> Result<SessionHandle, PipelineError> {
        if let Some(bus) = self.analyzer_args.handoff.clone() {
            return self
                .open_in_cluster(myself, &bus, organization_id, camera_id, session_id)
                .await;
        }
        let (org, camera) = (organization_id.to_owned(), camera_id.to_owned());
        let session = match session_id {
            Some(id) => match self.get_session(id).await? {
                Some(s) if s.organization_id == organization_id => s,
                // Another organization's session is reported exactly like a missing one.
                _ => return Err(PipelineError::SessionNotFound(id.to_owned())),
            },
            None => match self
                .store
                .run(move |s| s.open_session_for_camera(&org, &camera))
                .await?
            {
                Some(s) => s,
                None => {
                    let (org, camera) = (organization_id.to_owned(), camera_id.to_owned());
                    let s = self
                        .store
                        .run(move |s| s.create_session(&org, &camera))
                        .await?;
                    metrics::counter!(m::SESSIONS_OPENED).increment(1);
                    tracing::info!(session_id = %s.id, org_id = organization_id, camera_id, "session opened");
                    s
                }
            },
        };
        if let Some(handle) = self.running(&session)? {
            return Ok(handle);
        }
        if session.status == SessionStatus::Closed {
            // A closed session needs no actor; frames sent to it are answered from the record or refused.
            return Err(PipelineError::SessionClosed(session.id));
        }
        let actor = self.spawn_session(myself, &session.id, None).await?;
        Ok(SessionHandle { session, actor })
    }

    /// A session as the node's sled holds it.
    async fn get_session(&self, id: &str) -> Result<Option<SessionRecord>, PipelineError> {
        let id = id.to_owned();
        Ok(self.store.run(move |s| s.get_session(&id)).await?)
    }

    /// The running actor of a session, if there is one; `Unavailable` while it restarts.
    fn running(&self, session: &SessionRecord) -> Result<Option<SessionHandle>, PipelineError> {
        match self.sessions.get(&session.id) {
            Some(Slot::Running(actor)) => Ok(Some(SessionHandle {
                session: session.clone(),
                actor: actor.clone(),
            })),
            Some(Slot::Restarting) => Err(PipelineError::Unavailable(format!(
                "session {} is restarting",
                session.id
            ))),
            None => Ok(None),
        }
    }

    /// [`SupervisorState::open`] on an ingest node of a cluster: sessions and each camera's current
    /// session are the cluster's (see [`crate::journal`]), so a camera can arrive at any ingest node,
    /// which takes its session over ([`Claim::Take`]). A camera with no open session gets a new one,
    /// made its current session by compare-and-set.
    async fn open_in_cluster(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        bus: &Bus,
        organization_id: &str,
        camera_id: &str,
        session_id: Option<&str>,
    ) -> Result<SessionHandle, PipelineError> {
        if let Some(id) = session_id {
            return self
                .open_cluster_session(myself, bus, organization_id, id, Claim::Take)
                .await?
                .ok_or_else(|| PipelineError::SessionClosed(id.to_owned()));
        }
        let cameras = bus
            .cameras()
            .ok_or_else(|| PipelineError::Internal("camera bucket not opened".into()))?;
        loop {
            let current = cameras.current(organization_id, camera_id).await?;
            if let Some(id) = &current.session_id {
                match self
                    .open_cluster_session(myself, bus, organization_id, id, Claim::Take)
                    .await
                {
                    Ok(Some(handle)) => return Ok(handle),
                    // Closed, or never journaled (its opener died between the two steps): replace it.
                    // (No compare-and-set was made on these paths: `current` is still what to
                    // compare against.)
                    Ok(None)
                    | Err(PipelineError::SessionNotFound(_))
                    | Err(PipelineError::SessionClosed(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            let record = SessionRecord::new_open(organization_id, camera_id);
            if !cameras
                .replace(organization_id, camera_id, &current, &record.id, bus.node())
                .await?
            {
                continue; // another node opened one first: use it
            }
            let mut journal = SessionJournal::new(bus.jetstream().clone(), &record.id);
            let opened = SessionOp::Opened {
                session: record.clone(),
            }
            .into();
            journal.append(&opened).await?;
            opened.apply(&self.store)?;
            metrics::counter!(m::SESSIONS_OPENED).increment(1);
            tracing::info!(session_id = %record.id, org_id = organization_id, camera_id, node = bus.node(), "session opened");
            let actor = self
                .spawn_session(myself, &record.id, Some(journal))
                .await?;
            return Ok(SessionHandle {
                session: record,
                actor,
            });
        }
    }

    /// A cluster session by id, running here: replayed from its journal first if it was not, made this
    /// node's in the camera's entry (compare-and-set), and fenced (a [`SessionOp::Resumed`] entry, so
    /// the previous writer's next append is refused). `None`: the session is closed. Another
    /// organization's session, or one the cluster never saw, is `SessionNotFound`; a session that
    /// another node serves is `Moved` under [`Claim::IfOwned`].
    async fn open_cluster_session(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        bus: &Bus,
        organization_id: &str,
        session_id: &str,
        claim: Claim,
    ) -> Result<Option<SessionHandle>, PipelineError> {
        let not_found = || PipelineError::SessionNotFound(session_id.to_owned());
        // Only ids crow made name a journal subject.
        uuid::Uuid::parse_str(session_id).map_err(|_| not_found())?;
        let cameras = bus
            .cameras()
            .ok_or_else(|| PipelineError::Internal("camera bucket not opened".into()))?;
        let local = self.get_session(session_id).await?;
        if let Some(session) = &local {
            if session.organization_id != organization_id {
                return Err(not_found());
            }
            if let Some(handle) = self.running(session)? {
                let entry = cameras.current(organization_id, &session.camera_id).await?;
                if !entry.names_other_node(session_id, bus.node()) {
                    return Ok(Some(handle));
                }
                // Another node took the session over since this actor started: it is stale.
                if claim == Claim::IfOwned {
                    return Err(PipelineError::Moved(session_id.to_owned()));
                }
                self.discard_local(session_id);
            }
        }
        let (mut journal, entries) = self.replay(bus, session_id).await?;
        if entries == 0 {
            // The cluster holds nothing of it: never journaled, or finished and expired. A stale copy
            // in this node's sled must not start a second history.
            return Err(match local {
                Some(_) => PipelineError::SessionClosed(session_id.to_owned()),
                None => not_found(),
            });
        }
        let session = match self.get_session(session_id).await? {
            Some(s) if s.organization_id == organization_id => s,
            _ => return Err(not_found()),
        };
        if session.status == SessionStatus::Closed {
            return Ok(None);
        }
        let entry = cameras.current(organization_id, &session.camera_id).await?;
        if entry.names_other_node(session_id, bus.node()) {
            if claim == Claim::IfOwned {
                return Err(PipelineError::Moved(session_id.to_owned()));
            }
            if !cameras
                .replace(
                    organization_id,
                    &session.camera_id,
                    &entry,
                    session_id,
                    bus.node(),
                )
                .await?
            {
                return Err(PipelineError::Unavailable(format!(
                    "session {session_id} is being taken over by another node; retry"
                )));
            }
        }
        // The fence: once this entry is in, the previous writer cannot append (nor acknowledge) any
        // more. An entry it appended since the replay makes the fence fail: catch up and try again.
        let resumed = SessionOp::Resumed {
            node: bus.node().to_owned(),
        }
        .into();
        let mut tries = 0;
        loop {
            match journal.append(&resumed).await {
                Ok(()) => break,
                Err(JournalError::Moved(_)) if tries < 3 => {
                    tries += 1;
                    journal = self.replay(bus, session_id).await?.0;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let session = self.get_session(session_id).await?.ok_or_else(not_found)?;
        if session.status == SessionStatus::Closed {
            return Ok(None);
        }
        let actor = self
            .spawn_session(myself, session_id, Some(journal))
            .await?;
        Ok(Some(SessionHandle { session, actor }))
    }

    /// A session of this node (by the camera bucket) running here, resumed from its journal if it was
    /// not: after this node restarted, or its actor failed. `None`: it is closed.
    async fn resume_owned(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        bus: &Bus,
        session_id: &str,
    ) -> Result<Option<SessionHandle>, PipelineError> {
        let organization_id = match self.get_session(session_id).await? {
            Some(s) => s.organization_id,
            // Not in this node's sled yet (adopted from a dead node): the journal says whose it is.
            None => {
                self.replay(bus, session_id).await?;
                self.get_session(session_id)
                    .await?
                    .ok_or_else(|| PipelineError::SessionNotFound(session_id.to_owned()))?
                    .organization_id
            }
        };
        self.open_cluster_session(myself, bus, &organization_id, session_id, Claim::IfOwned)
            .await
    }

    /// Stops this node's actor of a session another node took over, without restarting it.
    fn discard_local(&mut self, session_id: &str) {
        if let Some(Slot::Running(actor)) = self.sessions.remove(session_id) {
            // Forgotten first, so that its termination does not clear the slot of the next actor.
            self.actor_sessions.remove(&actor.get_id());
            actor.stop(Some("moved to another node".into()));
            metrics::counter!(m::SESSIONS_MOVED).increment(1);
            tracing::info!(
                session_id,
                "session taken over by another ingest node; its actor here stopped"
            );
        }
    }

    /// Brings this node's sled up to date with a session's journal; the journal's writer continues
    /// after its last entry. Batches the journal holds that this node has not handed on are handed to
    /// the analyzer (JetStream deduplicates what the previous node had published).
    async fn replay(
        &self,
        bus: &Bus,
        session_id: &str,
    ) -> Result<(SessionJournal, usize), PipelineError> {
        let mut journal = SessionJournal::new(bus.jetstream().clone(), session_id);
        let entries = journal.replay(&self.store).await?;
        if entries > 0 {
            metrics::counter!(m::SESSIONS_REPLAYED).increment(1);
            tracing::info!(
                session_id,
                entries,
                node = bus.node(),
                "session replayed from the cluster's journal"
            );
            let id = session_id.to_owned();
            let unanalyzed = self
                .store
                .run(move |s| {
                    let mut unanalyzed = Vec::new();
                    for batch in s.batches(&id)? {
                        if s.is_unanalyzed(&id, batch.batch_index)? {
                            unanalyzed.push(batch);
                        }
                    }
                    Ok(unanalyzed)
                })
                .await?;
            for batch in unanalyzed {
                if let Err(e) = self.analyzer.cast(AnalyzerMsg::Analyze(batch)) {
                    tracing::warn!(error = %e, "analyzer unavailable; batch left for recovery");
                }
            }
        }
        Ok((journal, entries))
    }

    async fn spawn_session(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        session_id: &str,
        journal: Option<SessionJournal>,
    ) -> Result<ActorRef<IngestSessionMsg>, PipelineError> {
        if journal.is_none() && self.analyzer_args.handoff.is_some() {
            return Err(PipelineError::Internal(format!(
                "session {session_id} would run without its journal"
            )));
        }
        let args = IngestSessionArgs {
            session_id: session_id.to_owned(),
            store: self.store.clone(),
            records: self.analyzer_args.records.clone(),
            pool: self.pool.clone(),
            detector: self.detector.clone(),
            analyzer: self.links.analyzer.clone(),
            config: Arc::clone(&self.config),
            disk: Arc::clone(&self.retention_args.disk),
            journal,
        };
        let (actor, _) = Actor::spawn_linked(None, IngestSessionActor, args, myself.get_cell())
            .await
            .map_err(|e| PipelineError::Internal(format!("starting session actor: {e}")))?;
        self.actor_sessions
            .insert(actor.get_id(), session_id.to_owned());
        self.sessions
            .insert(session_id.to_owned(), Slot::Running(actor.clone()));
        Ok(actor)
    }

    async fn on_failure(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        cell: ActorCell,
        error: String,
    ) -> Result<(), ActorProcessingErr> {
        let id = cell.get_id();
        if id == self.retention.get_id() {
            tracing::error!(error, "retention failed; restarting it");
            self.retention = Actor::spawn_linked(
                None,
                RetentionActor,
                self.retention_args.clone(),
                myself.get_cell(),
            )
            .await?
            .0;
            return Ok(());
        }
        if id == self.analyzer.get_id() {
            tracing::error!(error, "analyzer failed; restarting it");
            // Batches lost with the old analyzer are still marked unanalyzed in sled; the new one picks
            // them up.
            self.analyzer = Actor::spawn_linked(
                None,
                AnalyzerActor,
                self.analyzer_args.clone(),
                myself.get_cell(),
            )
            .await?
            .0;
            self.links.analyzer.set(self.analyzer.clone());
            return Ok(());
        }
        if id == self.processor.get_id() {
            tracing::error!(error, "interaction processor failed; restarting it");
            // Unprocessed events are still in the outbox; the new processor drains them.
            self.processor = Actor::spawn_linked(
                None,
                InteractionProcessor,
                self.processor_args.clone(),
                myself.get_cell(),
            )
            .await?
            .0;
            self.links.processor.set(self.processor.clone());
            return Ok(());
        }
        if id == self.analysis.get_id() {
            tracing::error!(error, "analysis pool failed; restarting it");
            // Queued and running analyses are recorded in sled; the new pool runs them again.
            self.analysis = Actor::spawn_linked(
                None,
                AnalysisPool,
                self.analysis_args.clone(),
                myself.get_cell(),
            )
            .await?
            .0;
            self.links.analysis.set(self.analysis.clone());
            return Ok(());
        }
        let Some(session_id) = self.actor_sessions.remove(&cell.get_id()) else {
            return Ok(());
        };
        let attempt = self.restarts.entry(session_id.clone()).or_insert(0);
        *attempt += 1;
        if *attempt > self.config.max_session_restarts {
            tracing::error!(
                session_id,
                error,
                attempts = *attempt - 1,
                "session actor keeps failing; giving up until it is opened again"
            );
            self.sessions.remove(&session_id);
            self.restarts.remove(&session_id);
            return Ok(());
        }
        let backoff = Duration::from_millis(
            self.config
                .restart_backoff_ms
                .saturating_mul(1 << (*attempt - 1).min(10)),
        );
        tracing::warn!(
            session_id,
            error,
            attempt = *attempt,
            backoff_ms = backoff.as_millis() as u64,
            "session actor failed; restarting"
        );
        metrics::counter!(m::SESSION_RESTARTS).increment(1);
        self.sessions.insert(session_id.clone(), Slot::Restarting);
        myself.send_after(backoff, move || SupervisorMsg::Restart { session_id });
        Ok(())
    }
}
