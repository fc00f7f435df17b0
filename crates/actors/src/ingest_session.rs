//! `IngestSessionActor`: one per session (camera-hour).
//!
//! For every frame, prepared (validated, decoded, thumbnailed) before it arrives ([`crate::prepare`]):
//! near-duplicate gate -> person
//! detection and tracking, zones and tripwires ([`Scene`]) -> the people gate -> record the outcome in
//! sled together with the session's counters and scene -> reply (the caller acks once the write is
//! durable) -> queue accepted frames for description. Descriptions come back as messages, are stored as
//! pending, and are emitted in batches of `batch_size` or after `batch_timeout_ms` to the analyzer.
//! A batch covers a range of frames that follows the previous batch's: the described frames and the
//! track events of that range, so batches never overlap and hold their frames in order (a description
//! that comes back early waits for the frames before it).
//!
//! Everything the actor needs to resume is in sled: on (re)start it reloads the session, the gate's
//! reference thumbnail, the pending descriptions and the accepted-but-undescribed frames (which it queues
//! for description again).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crow_inference::Mat;
use crow_inference::{Description, DuplicateGate, GateVerdict, Thumbnail};
use crow_storage::{
    now_ms, BatchRecord, FrameAnalysis, FrameOutcome, FrameRecord, Records, SessionRecord,
    SessionStatus, Store,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::analyzer::AnalyzerMsg;
use crate::describer_pool::{DescribeJob, DescriberPool};
use crate::journal::{JournalEntry, JournalError, SessionJournal, SessionOp};
use crate::live_ref::LiveRef;
use crate::metrics_names as m;
use crate::prepare::{FramePreparer, Prepared};
use crate::retention::DiskState;
use crate::scene::{Scene, Verdict};
use crate::{DescriberKind, Overload, PipelineConfig, PipelineError};

/// A frame as handed to the pipeline.
#[derive(Debug, Clone)]
pub struct FrameInput {
    /// Position in the camera's stream; strictly increasing within a session.
    pub frame_index: u64,
    /// Capture time, ms since the Unix epoch.
    pub captured_at_ms: i64,
    /// The frame as the pipeline's [`FramePreparer`](crate::FramePreparer) left it: ready, or refused
    /// (the session records the refusal as the frame's outcome).
    pub frame: Prepared,
}

/// The pipeline's answer to one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameAck {
    /// The frame's index.
    pub frame_index: u64,
    /// Session it was recorded in.
    pub session_id: String,
    /// What became of it.
    pub outcome: FrameOutcome,
    /// True when the index had been recorded before and this repeats the stored outcome.
    pub replayed: bool,
}

/// Reply to [`IngestSessionMsg::Frame`].
#[derive(Debug)]
pub(crate) enum FrameReply {
    /// The frame was recorded (or had been).
    Recorded(FrameAck),
    /// The frame lies past this session's hour: the caller closes this session and opens the next.
    RollOver,
}

/// Messages of the session actor.
pub(crate) enum IngestSessionMsg {
    /// A frame from a client.
    Frame(FrameInput, RpcReplyPort<Result<FrameReply, PipelineError>>),
    /// A describer slot finished a frame.
    Described {
        frame_index: u64,
        captured_at_ms: i64,
        result: Result<(String, Description), String>,
    },
    /// The batch timeout of batch generation `generation` expired.
    BatchTimeout { generation: u64 },
    /// Finish in-flight descriptions, flush the last batch, mark the session closed and stop.
    Close(RpcReplyPort<Result<SessionRecord, PipelineError>>),
    /// Shutdown: finish in-flight descriptions and emit every pending description as batches, leaving
    /// the session open (it resumes on the next start). Replies with the batches emitted.
    Drain(RpcReplyPort<u64>),
    /// Fault injection for tests: panic inside the handler.
    #[cfg(feature = "fault-injection")]
    Panic,
}

/// Start-up arguments.
pub(crate) struct IngestSessionArgs {
    pub session_id: String,
    pub store: Store,
    /// Camera configurations are read from here.
    pub records: Records,
    pub pool: Option<DescriberPool>,
    /// The person detector, unless `perception.detector = "off"`.
    pub detector: Option<Arc<crow_inference::DetectorPool>>,
    /// Batches go to the analyzer (whichever actor runs it now).
    pub analyzer: LiveRef<AnalyzerMsg>,
    pub config: Arc<PipelineConfig>,
    /// While the disk is low, keyframes are not stored.
    pub disk: Arc<DiskState>,
    /// In a cluster: the session's journal, already replayed into `store`.
    pub journal: Option<SessionJournal>,
}

pub(crate) struct IngestSessionState {
    session: SessionRecord,
    store: Store,
    records: Records,
    pool: Option<DescriberPool>,
    detector: Option<Arc<crow_inference::DetectorPool>>,
    /// Tracks, zones and the people gate; present when a detector runs.
    scene: Option<Scene>,
    /// When the camera's configuration was last read.
    camera_read_at: Option<Instant>,
    analyzer: LiveRef<AnalyzerMsg>,
    config: Arc<PipelineConfig>,
    disk: Arc<DiskState>,
    gate: DuplicateGate,
    gate_reference: Option<Thumbnail>,
    /// Last accepted frame, given to the describer for motion.
    previous: Option<Arc<Mat>>,
    /// Descriptions stored but not yet batched, in frame order.
    pending: Vec<FrameAnalysis>,
    /// Frames queued for description whose result has not come back.
    in_flight: BTreeSet<u64>,
    /// Bumped whenever a batch is emitted, so stale timeouts are ignored.
    batch_generation: u64,
    /// A batch timeout is scheduled for the current generation.
    timer_armed: bool,
    /// Close requests waiting for in-flight descriptions to finish.
    closing: Vec<RpcReplyPort<Result<SessionRecord, PipelineError>>>,
    /// Drain requests (shutdown) waiting for in-flight descriptions to finish.
    draining: Vec<RpcReplyPort<u64>>,
    /// Batches emitted by this actor, reported to drain requests.
    batches_emitted: u64,
    /// Shared with this actor's queued describe jobs; set when the actor stops for any reason.
    cancelled: Arc<std::sync::atomic::AtomicBool>,
    /// In a cluster, every write goes to the session's journal first (see [`crate::journal`]).
    journal: Option<SessionJournal>,
    /// Another node took the session over: this actor stops after the current message.
    moved: bool,
    /// A write failed: the actor fails after answering the current message, and its restart reloads
    /// the session from storage.
    write_failed: Option<String>,
    /// The camera's gauges, resolved once (label lookups stay off the per-frame path).
    last_frame_gauge: metrics::Gauge,
    in_flight_gauge: metrics::Gauge,
}

impl Drop for IngestSessionState {
    fn drop(&mut self) {
        // The state goes away however the actor ends (close, failure, shutdown): its queued frames are not
        // worth a slot any more. They stay undescribed in sled for a restarted actor.
        self.cancelled
            .store(true, std::sync::atomic::Ordering::Release);
    }
}

pub(crate) struct IngestSessionActor;

impl Actor for IngestSessionActor {
    type Msg = IngestSessionMsg;
    type State = IngestSessionState;
    type Arguments = IngestSessionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: IngestSessionArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let store = args.store;
        let id = args.session_id.clone();
        let (session, gate_reference, pending) = store
            .run(move |s| {
                let Some(session) = s.get_session(&id)? else {
                    return Ok(None);
                };
                let gate_reference = s.gate_reference(&id)?;
                let pending = s.pending_analyses(&id)?;
                Ok(Some((session, gate_reference, pending)))
            })
            .await?
            .ok_or_else(|| PipelineError::SessionNotFound(args.session_id.clone()))?;
        let gate_reference = gate_reference.and_then(Thumbnail::from_bytes);
        let camera_labels = [
            ("org_id", session.organization_id.clone()),
            ("camera_id", session.camera_id.clone()),
        ];
        let scene = args
            .detector
            .as_ref()
            .map(|_| Scene::resume(args.config.perception.clone(), &session.scene));
        let mut state = IngestSessionState {
            last_frame_gauge: metrics::gauge!(m::CAMERA_LAST_FRAME, &camera_labels),
            in_flight_gauge: metrics::gauge!(m::FRAMES_IN_FLIGHT, &camera_labels),
            gate: DuplicateGate::new(args.config.duplicate_threshold),
            session,
            store,
            records: args.records,
            pool: args.pool,
            detector: args.detector,
            scene,
            camera_read_at: None,
            analyzer: args.analyzer,
            config: args.config,
            disk: args.disk,
            gate_reference,
            previous: None,
            pending,
            in_flight: BTreeSet::new(),
            batch_generation: 0,
            timer_armed: false,
            closing: Vec::new(),
            draining: Vec::new(),
            batches_emitted: 0,
            cancelled: Arc::default(),
            journal: args.journal,
            moved: false,
            write_failed: None,
        };
        state.arm_batch_timeout(&myself);
        state.resubmit_undescribed(&myself).await?;
        tracing::debug!(session_id = %state.session.id, pending = state.pending.len(), in_flight = state.in_flight.len(), "session actor started");
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        use tracing::Instrument as _;
        // Everything logged while handling a message carries the session's organization, camera and id.
        let span = tracing::info_span!(
            "session",
            org_id = %state.session.organization_id,
            camera_id = %state.session.camera_id,
            session_id = %state.session.id,
        );
        Self::dispatch(myself, msg, state).instrument(span).await
    }
}

impl IngestSessionActor {
    async fn dispatch(
        myself: ActorRef<IngestSessionMsg>,
        msg: IngestSessionMsg,
        state: &mut IngestSessionState,
    ) -> Result<(), ActorProcessingErr> {
        let handled = Self::dispatch_inner(&myself, msg, state).await;
        if state.moved {
            // Another node writes this session now; not a failure to restart from.
            tracing::warn!("session taken over by another ingest node; stopping here");
            metrics::counter!(m::SESSIONS_MOVED).increment(1);
            myself.stop(Some("moved to another node".into()));
            return Ok(());
        }
        if let Some(error) = state.write_failed.take() {
            // The in-memory state (tracks, gate) may be ahead of what is stored: restart from storage.
            return Err(format!("a write of the session failed: {error}").into());
        }
        handled
    }

    async fn dispatch_inner(
        myself: &ActorRef<IngestSessionMsg>,
        msg: IngestSessionMsg,
        state: &mut IngestSessionState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            IngestSessionMsg::Frame(frame, reply) => {
                let result = state.on_frame(myself, frame).await;
                let _ = reply.send(result);
            }
            IngestSessionMsg::Described {
                frame_index,
                captured_at_ms,
                result,
            } => {
                state
                    .on_described(myself, frame_index, captured_at_ms, result)
                    .await?;
                state.maybe_finish_drain().await?;
                state.maybe_finish_close(myself).await?;
            }
            IngestSessionMsg::BatchTimeout { generation } => {
                if generation == state.batch_generation {
                    state.timer_armed = false;
                    state.emit_batch(false).await?;
                    state.arm_batch_timeout(myself);
                }
            }
            IngestSessionMsg::Close(reply) => {
                state.closing.push(reply);
                state.maybe_finish_close(myself).await?;
            }
            IngestSessionMsg::Drain(reply) => {
                state.draining.push(reply);
                state.maybe_finish_drain().await?;
            }
            #[cfg(feature = "fault-injection")]
            IngestSessionMsg::Panic => {
                panic!("fault injection: IngestSession actor panics on request")
            }
        }
        Ok(())
    }
}

fn rejected(reason: impl Into<String>) -> FrameOutcome {
    FrameOutcome::Rejected {
        reason: reason.into(),
    }
}

impl IngestSessionState {
    async fn on_frame(
        &mut self,
        myself: &ActorRef<IngestSessionMsg>,
        frame: FrameInput,
    ) -> Result<FrameReply, PipelineError> {
        let session_id = self.session.id.clone();
        let (id, index) = (session_id.clone(), frame.frame_index);
        let existing = self.store.run(move |s| s.get_frame(&id, index)).await?;
        if let Some(existing) = existing {
            return Ok(FrameReply::Recorded(FrameAck {
                frame_index: frame.frame_index,
                session_id,
                outcome: existing.outcome,
                replayed: true,
            }));
        }
        if self.session.status == SessionStatus::Closed || !self.closing.is_empty() {
            return Err(PipelineError::SessionClosed(session_id));
        }
        if let Some(started) = self.session.started_at_ms {
            if frame.captured_at_ms >= started.saturating_add(self.config.session_max_duration_ms) {
                return Ok(FrameReply::RollOver);
            }
        }
        metrics::counter!(m::FRAMES_RECEIVED).increment(1);

        // A near-duplicate is detected anyway while people are tracked and the detector has not
        // looked for `perception.redetect_interval_ms`.
        let detection_due = self.detector.is_some()
            && self.scene.as_ref().is_some_and(|s| {
                s.detection_due(
                    frame.captured_at_ms,
                    self.config.perception.redetect_interval_ms,
                )
            });
        let outcome = match self.check_order(&frame) {
            Some(reason) => (rejected(reason), None),
            None => self.gate(&frame, detection_due),
        };
        let (mut outcome, accepted) = outcome;
        // Under `describer_overload = "shed"`, a frame the describers have no room for is not described.
        let room = self.config.describer_overload == Overload::Wait
            || self.pool.as_ref().is_none_or(DescriberPool::has_room);
        // The people gate: a decoded, non-duplicate frame is described only for what happened to a person.
        let mut people: Option<Arc<[crow_inference::Detection]>> = None;
        if let (Some((image, _)), Some(detector)) = (&accepted, self.detector.clone()) {
            self.refresh_camera().await;
            let image = Arc::clone(image);
            let input = self
                .scene
                .as_ref()
                .and_then(Scene::detector_input)
                .unwrap_or(self.config.perception.detector_input);
            let tiles = self
                .scene
                .as_ref()
                .and_then(Scene::detector_tiles)
                .unwrap_or(self.config.perception.detector_tiles);
            let detections =
                tokio::task::spawn_blocking(move || detector.detect(&image, input, tiles))
                    .await
                    .map_err(|e| PipelineError::Internal(format!("detector task: {e}")))?
                    .map_err(|e| PipelineError::Internal(format!("person detection: {e}")))?;
            let confident = detections
                .iter()
                .filter(|d| d.score >= self.config.perception.min_score)
                .count();
            metrics::counter!(m::DETECTIONS).increment(confident as u64);
            if let Some(scene) = &mut self.scene {
                let (verdict, tracked) =
                    scene.observe(&detections, frame.frame_index, frame.captured_at_ms, room);
                people = Some(tracked.iter().map(|(_, d)| *d).collect());
                outcome = match verdict {
                    Verdict::Describe(reasons) => {
                        tracing::debug!(
                            frame_index = frame.frame_index,
                            ?reasons,
                            "frame described for its people"
                        );
                        FrameOutcome::Accepted
                    }
                    Verdict::NoPerson => FrameOutcome::NoPerson,
                    Verdict::Gated(reason) => FrameOutcome::Gated { reason },
                    Verdict::Shed(reasons) => {
                        tracing::debug!(
                            frame_index = frame.frame_index,
                            ?reasons,
                            "describer full: frame shed"
                        );
                        FrameOutcome::Shed
                    }
                };
            }
        } else if outcome == FrameOutcome::Accepted && !room {
            outcome = FrameOutcome::Shed;
        }
        // A duplicate skips the detector and the describer, never the scene's clock: it shows the
        // people of the frame it duplicates, where they were.
        let mut scene_moved = people.is_some();
        if let (FrameOutcome::SkippedDuplicate { .. }, Some(scene)) = (&outcome, &mut self.scene) {
            // Written with the frame only if it changed (an empty, still scene stays as stored).
            scene_moved = scene.observe_unchanged(frame.frame_index, frame.captured_at_ms);
        }

        // Count the frame and write it in one transaction with the session's counters.
        let mut session = self.session.clone();
        let c = &mut session.counters;
        c.received += 1;
        match &outcome {
            FrameOutcome::Accepted => c.accepted += 1,
            FrameOutcome::SkippedDuplicate { .. } => c.skipped += 1,
            FrameOutcome::Rejected { .. } => c.rejected += 1,
            FrameOutcome::NoPerson => c.no_person += 1,
            FrameOutcome::Gated { .. } => c.gated += 1,
            FrameOutcome::Shed => c.shed += 1,
        }
        // The scene changed only if it saw this frame (the stored copy is current otherwise).
        if let Some(scene) = self.scene.as_ref().filter(|_| scene_moved) {
            session.scene = scene.to_json();
        }
        // Rejected frames do not move the session's clock or position: they may be garbage.
        if !matches!(outcome, FrameOutcome::Rejected { .. }) {
            session.started_at_ms.get_or_insert(frame.captured_at_ms);
            session.ended_at_ms = Some(
                session
                    .ended_at_ms
                    .unwrap_or(i64::MIN)
                    .max(frame.captured_at_ms),
            );
        }
        session.last_frame_index = Some(
            session
                .last_frame_index
                .map_or(frame.frame_index, |l| l.max(frame.frame_index)),
        );
        let describe = accepted.is_some()
            && outcome == FrameOutcome::Accepted
            && self.pool.is_some()
            && self.config.describer != DescriberKind::Off;
        let record = FrameRecord {
            frame_index: frame.frame_index,
            captured_at_ms: frame.captured_at_ms,
            outcome: outcome.clone(),
            description: None,
            digest: frame.frame.as_ref().ok().map(|p| p.digest()),
        };
        let written = self
            .write(JournalEntry {
                op: SessionOp::Frame {
                    frame: record,
                    session,
                },
                undescribed: frame
                    .frame
                    .as_ref()
                    .ok()
                    .filter(|_| describe)
                    .map(|p| p.data().clone()),
                thumbnail: accepted
                    .as_ref()
                    .map(|(_, thumb)| bytes::Bytes::copy_from_slice(thumb.as_bytes())),
            })
            .await?;
        if let SessionOp::Frame { session, .. } = written.op {
            self.session = session;
        }
        if !matches!(outcome, FrameOutcome::Rejected { .. }) {
            self.last_frame_gauge.set(now_ms() as f64 / 1000.0);
        }
        match &outcome {
            FrameOutcome::Accepted => metrics::counter!(m::FRAMES_ACCEPTED).increment(1),
            FrameOutcome::SkippedDuplicate { .. } => {
                metrics::counter!(m::FRAMES_SKIPPED).increment(1)
            }
            FrameOutcome::Rejected { reason } => {
                tracing::debug!(session_id = %self.session.id, frame_index = frame.frame_index, reason, "frame rejected");
                metrics::counter!(m::FRAMES_REJECTED).increment(1);
            }
            FrameOutcome::NoPerson => metrics::counter!(m::FRAMES_NO_PERSON).increment(1),
            FrameOutcome::Gated { .. } => metrics::counter!(m::FRAMES_GATED).increment(1),
            FrameOutcome::Shed => metrics::counter!(m::FRAMES_SHED).increment(1),
        }

        if let Some((image, thumb)) = accepted {
            self.gate_reference = Some(thumb);
            let previous = self.previous.replace(Arc::clone(&image));
            if describe {
                self.submit(
                    myself,
                    image,
                    previous,
                    people,
                    frame.frame_index,
                    frame.captured_at_ms,
                )
                .await?;
            }
        }
        if self.scene.as_ref().is_some_and(Scene::has_pending) {
            self.arm_batch_timeout(myself);
        }
        Ok(FrameReply::Recorded(FrameAck {
            frame_index: frame.frame_index,
            session_id: self.session.id.clone(),
            outcome,
            replayed: false,
        }))
    }

    /// Frame indexes increase strictly; capture time may jitter but not go back by more than a second.
    fn check_order(&self, frame: &FrameInput) -> Option<String> {
        if let Some(last) = self.session.last_frame_index {
            if frame.frame_index < last {
                return Some(format!(
                    "frame index {} is behind the session's last frame index {last}",
                    frame.frame_index
                ));
            }
        }
        if let Some(latest) = self.session.ended_at_ms {
            if frame.captured_at_ms < latest - 1_000 {
                return Some(format!(
                    "capture time {} ms goes back more than 1 s behind the session's latest frame",
                    frame.captured_at_ms
                ));
            }
        }
        None
    }

    /// Runs the near-duplicate gate on a prepared frame. Returns the outcome and, if accepted, the image
    /// and its thumbnail.
    /// The near-duplicate gate; `keep` keeps a near-duplicate for the detector.
    fn gate(
        &self,
        frame: &FrameInput,
        keep: bool,
    ) -> (FrameOutcome, Option<(Arc<Mat>, Thumbnail)>) {
        let prepared = match &frame.frame {
            Ok(p) => p,
            Err(refusal) => return (rejected(refusal.to_string()), None),
        };
        match self
            .gate
            .judge(self.gate_reference.as_ref(), prepared.thumbnail())
        {
            GateVerdict::Duplicate { difference } if !keep => {
                (FrameOutcome::SkippedDuplicate { difference }, None)
            }
            GateVerdict::Duplicate { .. } | GateVerdict::Keep { .. } => (
                FrameOutcome::Accepted,
                Some((Arc::clone(prepared.image()), prepared.thumbnail().clone())),
            ),
        }
    }

    async fn submit(
        &mut self,
        myself: &ActorRef<IngestSessionMsg>,
        image: Arc<Mat>,
        previous: Option<Arc<Mat>>,
        people: Option<Arc<[crow_inference::Detection]>>,
        frame_index: u64,
        captured_at_ms: i64,
    ) -> Result<(), PipelineError> {
        let Some(pool) = &self.pool else {
            return Ok(());
        };
        let me = myself.clone();
        let job = DescribeJob {
            image,
            previous,
            people,
            frame_index,
            captured_at_ms,
            cancelled: Arc::clone(&self.cancelled),
            done: Box::new(move |result| {
                // If this actor has been restarted meanwhile, the frame's bytes are still in sled and the
                // new actor describes it again; dropping this result is correct.
                let _ = me.cast(IngestSessionMsg::Described {
                    frame_index,
                    captured_at_ms,
                    result,
                });
            }),
        };
        pool.submit(job).await?;
        self.in_flight.insert(frame_index);
        self.export_in_flight();
        Ok(())
    }

    /// Queues again the frames a previous incarnation accepted but did not get described.
    async fn resubmit_undescribed(
        &mut self,
        myself: &ActorRef<IngestSessionMsg>,
    ) -> Result<(), PipelineError> {
        if self.pool.is_none() {
            return Ok(());
        }
        let preparer = FramePreparer::new(self.config.limits.frame());
        let id = self.session.id.clone();
        let undescribed = self.store.run(move |s| s.undescribed_frames(&id)).await?;
        for (record, bytes) in undescribed {
            let prepared =
                tokio::task::spawn_blocking(move || preparer.prepare_stored(bytes.into()))
                    .await
                    .map_err(|e| PipelineError::Internal(format!("decode task: {e}")))?;
            match prepared {
                Ok(frame) => {
                    let image = Arc::clone(frame.image());
                    self.previous = Some(Arc::clone(&image));
                    self.submit(
                        myself,
                        image,
                        None,
                        None,
                        record.frame_index,
                        record.captured_at_ms,
                    )
                    .await?;
                }
                Err(e) => {
                    tracing::error!(session_id = %self.session.id, frame_index = record.frame_index, error = %e, "stored frame no longer decodes");
                }
            }
        }
        Ok(())
    }

    async fn on_described(
        &mut self,
        myself: &ActorRef<IngestSessionMsg>,
        frame_index: u64,
        captured_at_ms: i64,
        result: Result<(String, Description), String>,
    ) -> Result<(), PipelineError> {
        self.in_flight.remove(&frame_index);
        self.export_in_flight();
        let (describer, description) = match result {
            Ok(v) => v,
            Err(error) => {
                // The frame stays accepted-but-undescribed in sled; a restart retries it.
                tracing::warn!(session_id = %self.session.id, frame_index, error, "describe failed");
                metrics::counter!(m::DESCRIBE_FAILURES).increment(1);
                // Frames after it may be waiting for it to leave the queue.
                return self.emit_ready().await;
            }
        };
        let analysis = FrameAnalysis {
            frame_index,
            captured_at_ms,
            describer,
            text: description.text,
            confidence: description.confidence.clamp(0.0, 1.0),
            tags: description.tags,
            details: description.details,
        };
        let mut session = self.session.clone();
        session.counters.described += 1;
        let keep_keyframe = self.config.retention.keyframes && !self.disk.is_low();
        if self.config.retention.keyframes && !keep_keyframe {
            metrics::counter!(m::KEYFRAMES_SKIPPED).increment(1);
        }
        let id = session.id.clone();
        let described = self
            .store
            .run(move |s| s.get_frame(&id, frame_index))
            .await?
            .is_some_and(|f| f.description.is_some());
        if described {
            return Ok(());
        }
        self.write(
            SessionOp::Described {
                session: session.clone(),
                analysis: analysis.clone(),
                keep_keyframe,
            }
            .into(),
        )
        .await?;
        self.session = session;
        metrics::counter!(m::FRAMES_DESCRIBED).increment(1);
        let position = self
            .pending
            .partition_point(|a| a.frame_index < frame_index);
        self.pending.insert(position, analysis);
        self.emit_ready().await?;
        self.arm_batch_timeout(myself);
        Ok(())
    }

    /// Makes one fact of the session durable: in a cluster, appended to the session's journal first
    /// (refused if another node has taken the session over), then written to sled.
    /// Returns the entry, so that the caller keeps what it wrote without a copy.
    async fn write(&mut self, entry: JournalEntry) -> Result<JournalEntry, PipelineError> {
        if let Some(journal) = &mut self.journal {
            if let Err(e) = journal.append(&entry).await {
                match e {
                    JournalError::Moved(_) => self.moved = true,
                    ref other => self.write_failed = Some(other.to_string()),
                }
                return Err(e.into());
            }
        }
        match self
            .store
            .run(move |s| entry.apply(s).map(|()| entry))
            .await
        {
            Ok(entry) => Ok(entry),
            Err(e) => {
                self.write_failed = Some(e.to_string());
                Err(e.into())
            }
        }
    }

    /// Emits full batches while enough descriptions are ready (no earlier frame still in flight).
    async fn emit_ready(&mut self) -> Result<(), PipelineError> {
        let size = self.config.batch_size.max(1);
        while self
            .batchable_through(false)
            .is_some_and(|end| self.pending.partition_point(|a| a.frame_index <= end) >= size)
        {
            self.emit_batch(false).await?;
        }
        Ok(())
    }

    /// The last frame a batch may cover now: the frame before the first still in flight, at most the
    /// session's newest frame, or (while the session goes on, `last` false) the one before it.
    fn batchable_through(&self, last: bool) -> Option<u64> {
        let newest = self.session.last_frame_index?;
        let newest = if last { newest } else { newest.checked_sub(1)? };
        match self.in_flight.first() {
            Some(first) => Some(first.checked_sub(1)?.min(newest)),
            None => Some(newest),
        }
    }

    /// Re-reads the camera's zones, tripwires and masks at most once a second, so that an upsert
    /// takes effect within a second without a read per frame.
    async fn refresh_camera(&mut self) {
        let Some(scene) = &mut self.scene else {
            return;
        };
        if self
            .camera_read_at
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.camera_read_at = Some(Instant::now());
        match self
            .records
            .get_camera(&self.session.organization_id, &self.session.camera_id)
            .await
        {
            Ok(camera) => scene.set_camera(camera),
            Err(e) => {
                tracing::warn!(error = %e, "camera configuration unreadable; keeping the previous one")
            }
        }
    }

    /// Frames of this camera queued for or inside a describer, as a gauge.
    fn export_in_flight(&self) {
        self.in_flight_gauge.set(self.in_flight.len() as f64);
    }

    /// Schedules the batch timeout if something waits for a batch and none is scheduled.
    fn arm_batch_timeout(&mut self, myself: &ActorRef<IngestSessionMsg>) {
        let waiting =
            !self.pending.is_empty() || self.scene.as_ref().is_some_and(Scene::has_pending);
        if self.timer_armed || !waiting {
            return;
        }
        self.timer_armed = true;
        let generation = self.batch_generation;
        myself.send_after(
            Duration::from_millis(self.config.batch_timeout_ms),
            move || IngestSessionMsg::BatchTimeout { generation },
        );
    }

    /// Emits the next batch: up to `batch_size` ready descriptions and the track events of the frames
    /// it covers. The range starts after the previous batch's and ends at its last description when the
    /// batch is full, else at the last frame every description of which is in (the frame before the
    /// first still in flight, or the session's last frame). While the session goes on (`last` false)
    /// the newest frame stays out: a track that ends with the session ends on it. Emits nothing when the
    /// range holds nothing.
    async fn emit_batch(&mut self, last: bool) -> Result<(), PipelineError> {
        let Some(mut end) = self.batchable_through(last) else {
            return Ok(());
        };
        let size = self.config.batch_size.max(1);
        let ready = self.pending.partition_point(|a| a.frame_index <= end);
        let take = ready.min(size);
        if take == size && ready > size {
            end = self.pending[take - 1].frame_index;
        }
        let start = self.session.batched_through.map_or(0, |b| b + 1);
        if end < start && take == 0 {
            return Ok(());
        }
        let (events, occupancy) = match &mut self.scene {
            Some(scene) => scene.take_through(end),
            None => Default::default(),
        };
        if take == 0 && events.is_empty() && occupancy.is_empty() {
            return Ok(());
        }
        let frames: Vec<FrameAnalysis> = self.pending.drain(..take).collect();
        let batch = BatchRecord {
            session_id: self.session.id.clone(),
            organization_id: self.session.organization_id.clone(),
            camera_id: self.session.camera_id.clone(),
            batch_index: self.session.next_batch_index,
            frames,
            created_at_ms: now_ms(),
            frame_range: Some((start, end.max(start))),
            events,
            occupancy,
        };
        let mut session = self.session.clone();
        session.next_batch_index += 1;
        session.counters.batches += 1;
        session.batched_through = Some(end.max(start));
        if let Some(scene) = &self.scene {
            session.scene = scene.to_json();
        }
        self.write(
            SessionOp::Batched {
                session: session.clone(),
                batch: batch.clone(),
            }
            .into(),
        )
        .await?;
        self.session = session;
        self.batch_generation += 1;
        self.timer_armed = false;
        self.batches_emitted += 1;
        metrics::counter!(m::BATCHES_EMITTED).increment(1);
        metrics::histogram!(m::BATCH_FRAMES).record(batch.frames.len() as f64);
        tracing::debug!(session_id = %batch.session_id, batch_index = batch.batch_index, frames = batch.frames.len(), events = batch.events.len(), "batch emitted");
        if let Err(e) = self.analyzer.cast(AnalyzerMsg::Analyze(batch)) {
            // The batch is durable and marked unanalyzed; the analyzer picks it up when it restarts.
            tracing::warn!(error = %e, "analyzer unavailable; batch left for recovery");
        }
        Ok(())
    }

    /// Emits everything that waits: every pending description and event, in batches.
    async fn flush_batches(&mut self) -> Result<(), PipelineError> {
        loop {
            let before = self.batches_emitted;
            self.emit_batch(true).await?;
            if self.batches_emitted == before {
                return Ok(());
            }
        }
    }

    /// Completes pending drain requests once no description is in flight: every pending description
    /// goes out in batches (as the batch timeout would have sent them).
    async fn maybe_finish_drain(&mut self) -> Result<(), PipelineError> {
        if self.draining.is_empty() || !self.in_flight.is_empty() {
            return Ok(());
        }
        let before = self.batches_emitted;
        self.flush_batches().await?;
        for reply in self.draining.drain(..) {
            let _ = reply.send(self.batches_emitted - before);
        }
        Ok(())
    }

    /// Completes pending close requests once no description is in flight.
    async fn maybe_finish_close(
        &mut self,
        myself: &ActorRef<IngestSessionMsg>,
    ) -> Result<(), PipelineError> {
        if self.closing.is_empty() || !self.in_flight.is_empty() {
            return Ok(());
        }
        // The session ends: so does every track still in view.
        if let (Some(scene), Some(last)) = (&mut self.scene, self.session.last_frame_index) {
            scene.finish(last, self.session.ended_at_ms.unwrap_or_else(now_ms));
        }
        self.flush_batches().await?;
        if self.session.status != SessionStatus::Closed {
            let mut closed = self.session.clone();
            closed.status = SessionStatus::Closed;
            closed.ended_at_ms.get_or_insert(now_ms());
            self.write(
                SessionOp::Closed {
                    session: closed.clone(),
                }
                .into(),
            )
            .await?;
            self.session = closed;
            // The hand-off of the last batch checks the same; whichever comes second purges.
            if let Some(journal) = &self.journal {
                if crate::journal::finished(&self.store, &self.session.id).await? {
                    journal.forget_all().await;
                }
            }
        }
        for reply in self.closing.drain(..) {
            let _ = reply.send(Ok(self.session.clone()));
        }
        myself.stop(Some("closed".into()));
        Ok(())
    }
}
