//! `IngestService`: sessions and the bidirectional frame stream with credit-based flow control.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use crow_actors::{FrameInput, FrameRouter, Pipeline, PipelineError, Prepared};
use crow_inference::ImageFormat;
use futures::Stream;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{self, Action};
use crate::convert;
use crate::limits::{StreamLimiter, StreamSlot};
use crate::proto::ingest_service_server::IngestService;
use crate::proto::{
    self, stream_frames_response::Event, CloseSessionRequest, CreateSessionRequest, CreditGrant,
    FrameAck, GetKeyframeRequest, GetSessionRequest, Keyframe, Session, StreamFramesRequest,
    StreamFramesResponse,
};

/// The `crow.v1.IngestService` implementation.
#[derive(Clone)]
pub struct IngestApi {
    pipeline: Pipeline,
    limiter: Arc<StreamLimiter>,
    closing: watch::Receiver<bool>,
}

impl IngestApi {
    /// Serves ingest requests into `pipeline`, under its `limits` on streams and frame rates. When
    /// `closing` turns true (the server is shutting down), open frame streams stop taking frames,
    /// acknowledge the ones already taken, and end with `UNAVAILABLE` telling the client to reconnect.
    pub fn new(pipeline: Pipeline, closing: watch::Receiver<bool>) -> IngestApi {
        let limits = &pipeline.config().limits;
        let limiter = StreamLimiter::new(limits.max_streams_per_org, limits.max_fps_per_session);
        IngestApi {
            pipeline,
            limiter,
            closing,
        }
    }
}

impl IngestApi {
    /// Frames sent in one request instead of a stream (crow's HTTP route `POST /api/v1/cctv/frames`):
    /// the same checks on the token and organization, the same stream slot and frame-rate limit, the
    /// same decoding, idempotent frame indexes and outcomes as `StreamFrames`, answered once every
    /// outcome is durable. 1..=`stream_credits` frames of one organization and camera per request.
    pub async fn submit_frames(
        &self,
        request: Request<Vec<proto::Frame>>,
    ) -> Result<Vec<FrameAck>, Status> {
        let caller = auth::caller(&request)?;
        let frames = request.into_inner();
        let max = self.pipeline.config().stream_credits.max(1) as usize;
        if frames.is_empty() {
            return Err(Status::invalid_argument("at least one frame is required"));
        }
        if frames.len() > max {
            return Err(Status::invalid_argument(format!(
                "at most {max} frames per request (stream_credits)"
            )));
        }
        let preparer = self.pipeline.sessions().preparer();
        let mut slot = None;
        let mut router = None;
        let mut acks = Vec::with_capacity(frames.len());
        let mut failure = None;
        for frame in frames {
            let message = StreamFramesRequest { frame: Some(frame) };
            let response = match admit(&self.limiter, &caller, &mut slot, message) {
                Ok((message, Some(reason))) => Ok(throttled_ack(&message, reason)),
                Ok((message, None)) => {
                    let decoded = tokio::task::spawn_blocking(move || {
                        let mut message = message;
                        let prepared = take_frame_data(&mut message)
                            .map(|(data, format)| preparer.prepare(data, format));
                        (message, prepared)
                    })
                    .await;
                    match decoded {
                        Ok((message, prepared)) => {
                            handle_frame(&self.pipeline, &mut router, message, prepared).await
                        }
                        Err(e) => Err(convert::internal("frame decoding", e)),
                    }
                }
                Err(status) => Err(status),
            };
            match response {
                Ok(StreamFramesResponse {
                    event: Some(Event::Ack(ack)),
                }) => acks.push(ack),
                Ok(_) => {}
                Err(status) => {
                    failure = Some(status);
                    break;
                }
            }
        }
        // The outcomes recorded before a failure are made durable too: a retry is answered from them.
        self.pipeline.sync().await.map_err(convert::status)?;
        match failure {
            Some(status) => Err(status),
            None => Ok(acks),
        }
    }
}

/// How a frame stream ends when the server shuts down.
pub const SHUTTING_DOWN: &str = "crow is shutting down: every frame acknowledged on this stream is stored; reconnect and resume after the last acknowledged frame";

type ResponseStream = Pin<Box<dyn Stream<Item = Result<StreamFramesResponse, Status>> + Send>>;

/// Moves a frame message's image bytes out for preparation (no copy), leaving the rest of the message.
fn take_frame_data(message: &mut StreamFramesRequest) -> Option<(Bytes, Option<ImageFormat>)> {
    message
        .frame
        .as_mut()
        .map(|f| (Bytes::from(std::mem::take(&mut f.data)), format(f.format)))
}

fn format(value: i32) -> Option<ImageFormat> {
    match proto::ImageFormat::try_from(value) {
        Ok(proto::ImageFormat::Jpeg) => Some(ImageFormat::Jpeg),
        Ok(proto::ImageFormat::Png) => Some(ImageFormat::Png),
        _ => None,
    }
}

#[tonic::async_trait]
impl IngestService for IngestApi {
    async fn create_session(
        &self,
        request: Request<CreateSessionRequest>,
    ) -> Result<Response<Session>, Status> {
        let caller = auth::caller(&request)?;
        let r = request.into_inner();
        caller.authorize(Action::Ingest, &r.organization_id)?;
        let s = self
            .pipeline
            .sessions()
            .create_session(&r.organization_id, &r.camera_id)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(convert::session(&s)))
    }

    async fn get_session(
        &self,
        request: Request<GetSessionRequest>,
    ) -> Result<Response<Session>, Status> {
        let caller = auth::caller(&request)?;
        let r = request.into_inner();
        caller.authorize(Action::Read, &r.organization_id)?;
        let s = self
            .pipeline
            .sessions()
            .get_session(&r.organization_id, &r.session_id)
            .await
            .map_err(convert::status)?;
        let mut session = convert::session(&s);
        session.batches_unanalyzed = self
            .pipeline
            .sessions()
            .unanalyzed_batches(&s.id)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(session))
    }

    async fn close_session(
        &self,
        request: Request<CloseSessionRequest>,
    ) -> Result<Response<Session>, Status> {
        let caller = auth::caller(&request)?;
        let r = request.into_inner();
        caller.authorize(Action::Ingest, &r.organization_id)?;
        let s = self
            .pipeline
            .sessions()
            .close_session(&r.organization_id, &r.session_id)
            .await
            .map_err(convert::status)?;
        // The close is acknowledged only once it is durable.
        self.pipeline.sync().await.map_err(convert::status)?;
        Ok(Response::new(convert::session(&s)))
    }

    async fn get_keyframe(
        &self,
        request: Request<GetKeyframeRequest>,
    ) -> Result<Response<Keyframe>, Status> {
        let caller = auth::caller(&request)?;
        let r = request.into_inner();
        caller.authorize(Action::Read, &r.organization_id)?;
        let (captured_at_ms, data) = self
            .pipeline
            .sessions()
            .get_keyframe(&r.organization_id, &r.session_id, r.frame_index)
            .await
            .map_err(convert::status)?;
        // The bytes passed validation when the frame was accepted: the signature tells the format.
        let format = if data.starts_with(&[0x89, b'P', b'N', b'G']) {
            proto::ImageFormat::Png
        } else {
            proto::ImageFormat::Jpeg
        };
        Ok(Response::new(Keyframe {
            session_id: r.session_id,
            frame_index: r.frame_index,
            captured_at_ms,
            data,
            format: format as i32,
        }))
    }

    type StreamFramesStream = ResponseStream;

    async fn stream_frames(
        &self,
        request: Request<Streaming<StreamFramesRequest>>,
    ) -> Result<Response<Self::StreamFramesStream>, Status> {
        let caller = auth::caller(&request)?;
        let inbound = request.into_inner();
        let credits = self.pipeline.config().stream_credits.max(1);
        let (out_tx, out_rx) = mpsc::channel(credits as usize + 1);
        let (ack_tx, ack_rx) = mpsc::channel(credits as usize);
        let grant = StreamFramesResponse {
            event: Some(Event::Credits(CreditGrant {
                credits,
                max_frames_per_second: self.pipeline.config().limits.max_fps_per_session,
            })),
        };
        out_tx
            .send(Ok(grant))
            .await
            .map_err(|_| Status::cancelled("stream closed"))?;
        tokio::spawn(acknowledge(
            self.pipeline.clone(),
            ack_rx,
            out_tx.clone(),
            credits as usize,
        ));
        tokio::spawn(receive(
            self.pipeline.clone(),
            Arc::clone(&self.limiter),
            caller,
            inbound,
            ack_tx,
            credits,
            self.closing.clone(),
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }
}

/// An ack (or the stream's final error) waiting for durability, holding the client's credit until sent.
type Pending = (Result<StreamFramesResponse, Status>, OwnedSemaphorePermit);

/// A frame message on its way through the stages of [`receive`], holding the client's credit.
struct Item {
    message: Result<StreamFramesRequest, Status>,
    /// Over the camera's frame rate: answered without being decoded or recorded.
    throttled: Option<String>,
    /// The frame's bytes once prepared (taken out of `message`).
    prepared: Option<Prepared>,
    permit: OwnedSemaphorePermit,
}

/// Three stages, so that decoding a frame overlaps the session's work on the previous one:
/// 1. the reader takes a frame off the wire only while the client holds a credit, checks on the first
///    frame that the token grants its organization and that the organization may open another stream,
///    and meters every frame against the camera's rate;
/// 2. one blocking thread per stream prepares frames (validate + decode + thumbnail) back to back, in order —
///    a long-lived loop rather than a blocking task per frame, which would cost thread wake-ups per frame;
/// 3. the router hands prepared frames to their session in order and queues the acks.
async fn receive(
    pipeline: Pipeline,
    limiter: Arc<StreamLimiter>,
    caller: auth::Caller,
    mut inbound: Streaming<StreamFramesRequest>,
    acks: mpsc::Sender<Pending>,
    credits: u32,
    mut closing: watch::Receiver<bool>,
) {
    // A transport error (e.g. a message over the size limit) travels down the stages and ends the stream
    // with its status, after the acks of the frames before it.
    let permits = Arc::new(Semaphore::new(credits as usize));
    // Both queues hold frames that already own a credit, so credits bound them.
    let (read_tx, mut read_rx) = mpsc::channel::<Item>(credits as usize);
    let (prepared_tx, mut prepared_rx) = mpsc::channel::<Item>(credits as usize);
    let reader = tokio::spawn(async move {
        // Held while the stream is open: the organization's stream count and the camera's rate.
        let mut slot: Option<StreamSlot> = None;
        loop {
            // A frame is read only when the client holds a credit, so at most `credits` frames are in the
            // server at once whatever the client does.
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                return;
            };
            let next = tokio::select! {
                // Frames already taken go on through the stages and are acknowledged before this.
                // (The guard `wait_for` returns is dropped inside, so the task stays `Send`.)
                Ok(()) = async { closing.wait_for(|c| *c).await.map(|_| ()) } => {
                    Err(Status::unavailable(SHUTTING_DOWN))
                }
                next = inbound.message() => Ok(next),
            };
            let message = match next {
                Ok(Ok(Some(m))) => admit(&limiter, &caller, &mut slot, m),
                Ok(Ok(None)) => return,
                Ok(Err(status)) => {
                    tracing::debug!(%status, "frame stream ended by transport error");
                    Err(named_limit(status))
                }
                Err(status) => Err(status),
            };
            let (message, throttled) = match message {
                Ok((m, throttled)) => (Ok(m), throttled),
                Err(status) => (Err(status), None),
            };
            let end = message.is_err();
            let item = Item {
                message,
                throttled,
                prepared: None,
                permit,
            };
            if read_tx.send(item).await.is_err() || end {
                return;
            }
        }
    });
    let preparer = pipeline.sessions().preparer();
    let decoder = tokio::task::spawn_blocking(move || {
        while let Some(mut item) = read_rx.blocking_recv() {
            if let (Ok(message), None) = (&mut item.message, &item.throttled) {
                item.prepared =
                    take_frame_data(message).map(|(data, format)| preparer.prepare(data, format));
            }
            if prepared_tx.blocking_send(item).is_err() {
                return;
            }
        }
    });
    let mut router: Option<(String, String, FrameRouter)> = None;
    while let Some(item) = prepared_rx.recv().await {
        let result = match (item.message, item.throttled) {
            (Ok(message), Some(reason)) => Ok(throttled_ack(&message, reason)),
            (Ok(message), None) => {
                handle_frame(&pipeline, &mut router, message, item.prepared).await
            }
            (Err(status), _) => Err(status),
        };
        let end = result.is_err();
        if acks.send((result, item.permit)).await.is_err() || end {
            break;
        }
    }
    reader.abort();
    // The decoder ends once the reader's queue is closed (reader aborted) or ours is (dropped here).
    drop(prepared_rx);
    let _ = decoder.await;
}

/// tonic's refusal of an oversize message, renamed after crow's setting.
fn named_limit(status: Status) -> Status {
    crate::message_limit_status(&status).unwrap_or(status)
}

/// The reader's checks on one message. The first frame fixes the stream's organization, which the token
/// must grant, and takes one of the organization's stream slots; every frame then takes a token from its
/// camera's bucket or is marked throttled (the reason is its ack). A stream-ending problem is an error.
fn admit(
    limiter: &Arc<StreamLimiter>,
    caller: &auth::Caller,
    slot: &mut Option<StreamSlot>,
    message: StreamFramesRequest,
) -> Result<(StreamFramesRequest, Option<String>), Status> {
    let Some(frame) = message.frame.as_ref() else {
        return Err(Status::invalid_argument("frame is required"));
    };
    let slot = match slot {
        Some(slot) => slot,
        None => {
            caller.authorize(Action::Ingest, &frame.organization_id)?;
            crow_actors::validate_id("organization_id", &frame.organization_id)
                .map_err(convert::status)?;
            crow_actors::validate_id("camera_id", &frame.camera_id).map_err(convert::status)?;
            slot.insert(limiter.open(&frame.organization_id, &frame.camera_id)?)
        }
    };
    let throttled = (!slot.admit_frame()).then(|| {
        metrics::counter!(crow_actors::metrics_names::FRAMES_THROTTLED).increment(1);
        slot.over_rate_reason()
    });
    Ok((message, throttled))
}

fn throttled_ack(message: &StreamFramesRequest, reason: String) -> StreamFramesResponse {
    let frame_index = message.frame.as_ref().map_or(0, |f| f.frame_index);
    StreamFramesResponse {
        event: Some(Event::Ack(FrameAck {
            frame_index,
            outcome: proto::FrameOutcome::Rejected as i32,
            reason,
            session_id: message
                .frame
                .as_ref()
                .map(|f| f.session_id.clone())
                .unwrap_or_default(),
            replayed: false,
            status_code: tonic::Code::ResourceExhausted as i32,
        })),
    }
}

async fn handle_frame(
    pipeline: &Pipeline,
    router: &mut Option<(String, String, FrameRouter)>,
    message: StreamFramesRequest,
    prepared: Option<Prepared>,
) -> Result<StreamFramesResponse, Status> {
    let frame = message
        .frame
        .ok_or_else(|| Status::invalid_argument("frame is required"))?;
    match router {
        Some((org, camera, _)) if *org == frame.organization_id && *camera == frame.camera_id => {}
        Some(_) => {
            return Err(Status::invalid_argument(
                "organization_id and camera_id must not change within a stream",
            ))
        }
        None => {
            // The reader checked that the token grants the first frame's organization.
            let r = pipeline
                .sessions()
                .router(&frame.organization_id, &frame.camera_id)
                .map_err(convert::status)?;
            *router = Some((frame.organization_id.clone(), frame.camera_id.clone(), r));
        }
    }
    let Some((_, _, router)) = router.as_mut() else {
        return Err(convert::internal(
            "frame stream",
            "router missing after the first frame",
        ));
    };
    let session_id = (!frame.session_id.is_empty()).then_some(frame.session_id.as_str());
    if let Some(id) = session_id {
        crow_actors::validate_id("session_id", id).map_err(convert::status)?;
    }
    let frame_index = frame.frame_index;
    let input = FrameInput {
        frame_index,
        captured_at_ms: frame.captured_at_ms,
        frame: prepared.ok_or_else(|| convert::internal("frame stream", "frame not prepared"))?,
    };
    let ack = match router.submit(session_id, input).await {
        Ok(ack) => {
            let (outcome, reason) = convert::outcome(&ack.outcome);
            let status_code = match outcome {
                proto::FrameOutcome::Rejected => tonic::Code::InvalidArgument as i32,
                _ => 0,
            };
            FrameAck {
                frame_index,
                outcome: outcome as i32,
                reason,
                session_id: ack.session_id,
                replayed: ack.replayed,
                status_code,
            }
        }
        // A closed session refuses the frame; the stream goes on (the client may open a new session).
        Err(PipelineError::SessionClosed(id)) => FrameAck {
            frame_index,
            outcome: proto::FrameOutcome::Rejected as i32,
            reason: format!("session {id} is closed"),
            session_id: id,
            replayed: false,
            status_code: tonic::Code::FailedPrecondition as i32,
        },
        Err(e) => return Err(convert::status(e)),
    };
    Ok(StreamFramesResponse {
        event: Some(Event::Ack(ack)),
    })
}

/// Sends acks in order once the records they report are durable: all acks queued meanwhile share one
/// flush (group commit), so durability costs one fsync per burst, not per frame.
async fn acknowledge(
    pipeline: Pipeline,
    mut acks: mpsc::Receiver<Pending>,
    out: mpsc::Sender<Result<StreamFramesResponse, Status>>,
    max_burst: usize,
) {
    let mut burst = Vec::with_capacity(max_burst);
    while acks.recv_many(&mut burst, max_burst).await > 0 {
        if let Err(e) = pipeline.sync().await {
            let _ = out.send(Err(convert::status(e))).await;
            return;
        }
        for (item, permit) in burst.drain(..) {
            if out.send(item).await.is_err() {
                return;
            }
            // The credit returns to the client with its ack.
            drop(permit);
        }
    }
}
