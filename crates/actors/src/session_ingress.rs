//! [`SessionIngress`]: where camera frames enter the pipeline. It opens sessions (one per camera-hour),
//! routes each camera's frames to its session actor through a [`FrameRouter`] (following hourly
//! rollovers and actor restarts), answers session and keyframe lookups, and closes sessions.

use std::collections::HashSet;
use std::time::Duration;

use crow_inference::FrameLimits;
use crow_storage::{SessionRecord, Store};
use ractor::rpc::CallResult;
use ractor::ActorRef;

use crate::cluster::Role;
use crate::error::validate_id;
use crate::ingest_session::{FrameAck, FrameInput, FrameReply, IngestSessionMsg};
use crate::prepare::FramePreparer;
use crate::supervisor::{SessionHandle, SupervisorMsg};
use crate::PipelineError;

/// How long a caller waits for a restarting session actor before giving up.
const RESTART_WAIT: Duration = Duration::from_secs(10);

/// What draining the running sessions did at shutdown ([`SessionIngress::drain`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Drained {
    /// Session actors that were running.
    pub sessions: usize,
    /// Of those, sessions whose descriptions did not finish before the deadline.
    pub cut_off: usize,
    /// Batches emitted from pending descriptions during the drain.
    pub batches: u64,
}

/// The sessions of a running pipeline. Cheap to clone.
#[derive(Clone)]
pub struct SessionIngress {
    supervisor: ActorRef<SupervisorMsg>,
    store: Store,
    role: Role,
    preparer: FramePreparer,
}

impl SessionIngress {
    pub(crate) fn new(
        supervisor: ActorRef<SupervisorMsg>,
        store: Store,
        role: Role,
        limits: FrameLimits,
    ) -> Self {
        Self {
            supervisor,
            store,
            role,
            preparer: FramePreparer::new(limits),
        }
    }

    /// The preparation stage for this pipeline's frames (under `pipeline.limits`): every
    /// [`FrameInput`] a router takes is made with it.
    pub fn preparer(&self) -> FramePreparer {
        self.preparer
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
    pub async fn get_session(
        &self,
        organization_id: &str,
        session_id: &str,
    ) -> Result<SessionRecord, PipelineError> {
        validate_id("organization_id", organization_id)?;
        validate_id("session_id", session_id)?;
        let id = session_id.to_owned();
        match self.store.run(move |s| s.get_session(&id)).await? {
            Some(s) if s.organization_id == organization_id => Ok(s),
            _ => Err(PipelineError::SessionNotFound(session_id.to_owned())),
        }
    }

    /// The keyframe of a described frame of an organization's session: `(captured_at_ms, bytes)`.
    /// `NotFound` when the session is unknown or another organization's, the frame was never
    /// described, or retention has removed its keyframe.
    pub async fn get_keyframe(
        &self,
        organization_id: &str,
        session_id: &str,
        frame_index: u64,
    ) -> Result<(i64, Vec<u8>), PipelineError> {
        let session = self.get_session(organization_id, session_id).await?;
        let (bytes, frame) = self
            .store
            .run(move |s| {
                let bytes = s.keyframe(&session.id, frame_index)?;
                Ok((bytes, s.get_frame(&session.id, frame_index)?))
            })
            .await?;
        let bytes = bytes.ok_or(PipelineError::NotFound("keyframe"))?;
        Ok((frame.map_or(0, |f| f.captured_at_ms), bytes))
    }

    /// Closes a session: waits for its in-flight descriptions, flushes the last batch, marks it closed.
    /// Closing a closed session returns it unchanged.
    pub async fn close_session(
        &self,
        organization_id: &str,
        session_id: &str,
    ) -> Result<SessionRecord, PipelineError> {
        // In a cluster the session may live on another ingest node so far: opening it here replays it.
        let camera_id = match self.get_session(organization_id, session_id).await {
            Ok(session) => session.camera_id,
            Err(PipelineError::SessionNotFound(_)) if self.role == Role::Ingest => String::new(),
            Err(e) => return Err(e),
        };
        let handle = match self
            .open_retrying(organization_id, &camera_id, Some(session_id))
            .await
        {
            Ok(h) => h,
            Err(PipelineError::SessionClosed(_)) => {
                return self.get_session(organization_id, session_id).await
            }
            Err(e) => return Err(e),
        };
        match close_actor(&handle.actor).await {
            Err(PipelineError::Unavailable(_)) => {
                self.get_session(organization_id, session_id).await
            }
            other => other,
        }
    }

    /// CCTV batches of a session not yet turned into a record (waiting for or in an analyzer slot).
    pub async fn unanalyzed_batches(&self, session_id: &str) -> Result<u64, PipelineError> {
        let id = session_id.to_owned();
        Ok(self.store.run(move |s| s.unanalyzed_count(&id)).await?)
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
            sessions: self.clone(),
            organization_id: organization_id.to_owned(),
            camera_id: camera_id.to_owned(),
            current: None,
            moved: None,
        })
    }

    /// Shutdown's first step: every running session finishes its in-flight descriptions and emits its
    /// pending descriptions as batches, each for as long as `deadline` allows. Sessions stay open.
    pub(crate) async fn drain(&self, deadline: tokio::time::Instant) -> Drained {
        let sessions = match self.supervisor.call(SupervisorMsg::Sessions, None).await {
            Ok(CallResult::Success(sessions)) => sessions,
            _ => Vec::new(),
        };
        let mut drained = Drained {
            sessions: sessions.len(),
            ..Drained::default()
        };
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
        for result in futures::future::join_all(drains).await {
            match result {
                Some(batches) => drained.batches += batches,
                None => drained.cut_off += 1,
            }
        }
        drained
    }

    /// Whether this node's sled holds the session as closed.
    pub(crate) async fn is_closed(&self, session_id: &str) -> Result<bool, PipelineError> {
        let id = session_id.to_owned();
        Ok(self
            .store
            .run(move |s| s.get_session(&id))
            .await?
            .is_some_and(|s| s.status == crow_storage::SessionStatus::Closed))
    }

    /// The ids of the sessions whose actors run on this node.
    pub(crate) async fn running(&self) -> Result<HashSet<String>, PipelineError> {
        match self.supervisor.call(SupervisorMsg::Sessions, None).await {
            Ok(CallResult::Success(sessions)) => {
                Ok(sessions.into_iter().map(|(id, _)| id).collect())
            }
            _ => Err(PipelineError::Unavailable(
                "pipeline is shutting down".into(),
            )),
        }
    }

    /// In a cluster: runs a session that the camera bucket says this node serves, resumed from its
    /// journal, and emits its pending descriptions as batches once its in-flight descriptions are done
    /// (waiting up to `drain_within`). Returns the batches emitted; `None`: the session is closed.
    pub(crate) async fn resume_owned(
        &self,
        session_id: &str,
        drain_within: Duration,
    ) -> Result<Option<u64>, PipelineError> {
        let id = session_id.to_owned();
        let handle = match self
            .supervisor
            .call(
                |reply| SupervisorMsg::Resume {
                    session_id: id,
                    reply,
                },
                None,
            )
            .await
        {
            Ok(CallResult::Success(result)) => result?,
            _ => {
                return Err(PipelineError::Unavailable(
                    "pipeline is shutting down".into(),
                ))
            }
        };
        let Some(handle) = handle else {
            return Ok(None);
        };
        match handle
            .actor
            .call(IngestSessionMsg::Drain, Some(drain_within))
            .await
        {
            Ok(CallResult::Success(batches)) => Ok(Some(batches)),
            _ => Err(PipelineError::Unavailable(format!(
                "session {session_id} resumed; its descriptions are still running"
            ))),
        }
    }

    /// Fault injection for tests: makes the session's actor panic. Returns whether an actor was there.
    #[cfg(feature = "fault-injection")]
    pub async fn inject_session_panic(&self, session_id: &str) -> bool {
        let id = session_id.to_owned();
        matches!(
            self.supervisor
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

    /// Camera streams are refused on nodes that do not ingest.
    fn check_ingests(&self) -> Result<(), PipelineError> {
        if self.role.ingests() {
            Ok(())
        } else {
            Err(PipelineError::Unavailable(format!(
                "this node's role is {}: send camera streams to an ingest node",
                self.role.as_str()
            )))
        }
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

    /// [`SessionIngress::open`], waiting out a session actor's restart backoff.
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
    sessions: SessionIngress,
    organization_id: String,
    camera_id: String,
    current: Option<SessionHandle>,
    /// Another ingest node took this camera's session over while this router fed it: the camera talks
    /// to that node now, and this router refuses further frames rather than take the session back.
    moved: Option<String>,
}

impl FrameRouter {
    /// Submits one frame. `session_id` pins the frame to a session (it must belong to the organization);
    /// `None` uses the camera's open session. Returns once the outcome is recorded (not yet synced: call
    /// [`Pipeline::sync`](crate::Pipeline::sync) before acknowledging to a client that needs durability).
    pub async fn submit(
        &mut self,
        session_id: Option<&str>,
        frame: FrameInput,
    ) -> Result<FrameAck, PipelineError> {
        if let Some(id) = &self.moved {
            return Err(PipelineError::Moved(id.clone()));
        }
        let deadline = tokio::time::Instant::now() + RESTART_WAIT;
        let mut pinned = session_id.map(str::to_owned);
        loop {
            let handle = match &self.current {
                Some(h) if pinned.as_deref().is_none_or(|id| id == h.session.id) => h.clone(),
                _ => {
                    let h = self
                        .sessions
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
                Ok(CallResult::Success(Err(PipelineError::Moved(id)))) => {
                    self.current = None;
                    self.moved = Some(id.clone());
                    return Err(PipelineError::Moved(id));
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
