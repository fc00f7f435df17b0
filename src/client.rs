//! Client side of `StreamFrames`: streams a video, an image or a folder of images to a crow server,
//! honouring the server's credits and the frame rate it announces.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crow_grpc_api::proto::ingest_service_client::IngestServiceClient;
use crow_grpc_api::proto::stream_frames_response::Event;
use crow_grpc_api::proto::{Frame, FrameAck, FrameOutcome, ImageFormat, StreamFramesRequest};
use crow_inference::{encode_jpeg, InferenceError, MediaReader};
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;

use crate::tls::ClientTls;

/// What can go wrong while streaming.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// Server URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The server ended the call with an error.
    #[error("{}", explain_status(.0))]
    Status(#[from] tonic::Status),
    /// The media could not be read.
    #[error(transparent)]
    Media(#[from] InferenceError),
    /// The server broke the protocol (e.g. an ack for a frame never sent).
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// A failed call in words: "server error: MESSAGE (CODE)", the message followed by its source chain
/// and, for a connection or TLS failure (a refused client certificate, a plaintext client on a TLS
/// port), what it means.
pub fn explain_status(status: &tonic::Status) -> String {
    let mut text = status.message().to_owned();
    if let Some(source) = std::error::Error::source(status) {
        text = format!("{text}: {}", crate::tls::error_chain(source));
    }
    format!("server error: {} ({:?})", explained(&text), status.code())
}

/// How to stream media.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Organization.
    pub organization_id: String,
    /// Camera.
    pub camera_id: String,
    /// Session to use; `None` lets the server pick the camera's open session.
    pub session_id: Option<String>,
    /// Frames per second of media time to send (video); `None` sends every frame.
    pub sample_fps: Option<f64>,
    /// JPEG quality, 1..=100.
    pub jpeg_quality: i32,
    /// Capture time of the media's first frame, ms since the Unix epoch.
    pub start_ms: i64,
    /// Frame index given to the media's first frame.
    pub first_frame_index: u64,
    /// Send at most this many frames.
    pub max_frames: Option<u64>,
    /// How long to go on reconnecting after the server went away mid-stream (see
    /// [`stream_frames_resending`]); zero gives up at the first failure.
    pub reconnect_for: Duration,
}

impl StreamOptions {
    /// Options for a camera, starting now, 2 frames per second of footage, JPEG quality 80.
    pub fn new(organization_id: impl Into<String>, camera_id: impl Into<String>) -> Self {
        StreamOptions {
            organization_id: organization_id.into(),
            camera_id: camera_id.into(),
            session_id: None,
            sample_fps: Some(2.0),
            jpeg_quality: 80,
            start_ms: crow_storage::now_ms(),
            first_frame_index: 0,
            max_frames: None,
            reconnect_for: RECONNECT_FOR,
        }
    }
}

/// What happened to the frames of one stream.
#[derive(Debug, Clone, Default)]
pub struct StreamReport {
    /// Sessions the frames were recorded in, in order (more than one after an hourly rollover).
    pub session_ids: Vec<String>,
    /// Frames sent.
    pub frames_sent: u64,
    /// Acks received.
    pub acked: u64,
    /// Acks per outcome.
    pub accepted: u64,
    /// Near-duplicates.
    pub skipped: u64,
    /// Frames in which nobody was detected.
    pub no_person: u64,
    /// Frames with people but nothing new for them (not described).
    pub gated: u64,
    /// Frames the describer had no room for (not described).
    pub shed: u64,
    /// Rejected, with reasons.
    pub rejected: Vec<(u64, String)>,
    /// Acks that repeated an earlier outcome (resent frames).
    pub replayed: u64,
    /// Media frames that could not be read locally (never sent).
    pub unreadable: u64,
    /// Capture time of the first and last frame sent.
    pub captured_range_ms: Option<(i64, i64)>,
    /// Times the stream reconnected after its server went away (and resent what was not acked).
    pub reconnects: u64,
}

/// What a client presents: a bearer token and, for internal routes, the gateway key.
#[derive(Clone, Default)]
pub struct Credentials {
    authorization: Option<MetadataValue<Ascii>>,
    gateway_key: Option<MetadataValue<Ascii>>,
    /// For `https://` servers; `None` reads `CROW_TLS_*` when connecting.
    tls: Option<ClientTls>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        f.debug_struct("Credentials")
            .field("token", &self.authorization.is_some())
            .field("gateway_key", &self.gateway_key.is_some())
            .field("tls", &self.tls)
            .finish()
    }
}

impl Credentials {
    /// A bearer token (and optionally the gateway key). Values that cannot be HTTP header values are
    /// dropped.
    pub fn new(token: Option<&str>, gateway_key: Option<&str>) -> Credentials {
        Credentials {
            authorization: token.and_then(|t| format!("Bearer {}", t.trim()).parse().ok()),
            gateway_key: gateway_key.and_then(|k| k.trim().parse().ok()),
            tls: None,
        }
    }

    /// What to trust (and present) when the server URL is `https://`.
    pub fn with_tls(mut self, tls: ClientTls) -> Credentials {
        self.tls = Some(tls);
        self
    }

    /// From `CROW_TOKEN` and `CROW_GATEWAY_KEY` (each optional); TLS files from `CROW_TLS_CA`,
    /// `CROW_TLS_CERT` and `CROW_TLS_KEY` are read when an `https://` server is connected.
    pub fn from_env() -> Credentials {
        let token = std::env::var("CROW_TOKEN").ok();
        let key = std::env::var("CROW_GATEWAY_KEY").ok();
        Credentials::new(token.as_deref(), key.as_deref())
    }
}

impl Interceptor for Credentials {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.authorization {
            request.metadata_mut().insert("authorization", v.clone());
        }
        if let Some(v) = &self.gateway_key {
            request
                .metadata_mut()
                .insert(crow_grpc_api::auth::GATEWAY_KEY_HEADER, v.clone());
        }
        Ok(request)
    }
}

/// A channel that presents [`Credentials`] on every call.
pub type AuthChannel = InterceptedService<tonic::transport::Channel, Credentials>;

/// Connects a channel to `url` that presents `credentials`: `http://HOST:PORT` in plaintext, or
/// `https://HOST:PORT` over TLS, verifying the server against the credentials' CA.
pub async fn channel(url: &str, credentials: Credentials) -> Result<AuthChannel, ClientError> {
    let connect_error = |reason: String| ClientError::Connect {
        url: url.to_owned(),
        reason,
    };
    // Windows of several frames, so that sending does not stall on HTTP/2 window updates (see the server).
    let mut endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())
        .map_err(|e| connect_error(crate::tls::error_chain(&e)))?
        .initial_stream_window_size(16 * 1024 * 1024)
        .initial_connection_window_size(32 * 1024 * 1024);
    if url.starts_with("https://") {
        let tls = match &credentials.tls {
            Some(tls) => tls.clone(),
            None => ClientTls::from_env().map_err(|e| connect_error(e.to_string()))?,
        };
        let config = tls.tonic().map_err(|e| connect_error(e.to_string()))?;
        endpoint = endpoint
            .tls_config(config)
            .map_err(|e| connect_error(crate::tls::error_chain(&e)))?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| connect_error(explained(&crate::tls::error_chain(&e))))?;
    Ok(InterceptedService::new(channel, credentials))
}

/// `text`, preceded by what it means for TLS when it is about TLS.
fn explained(text: &str) -> String {
    match crate::tls::explain(text) {
        Some(meaning) => format!("{meaning} ({text})"),
        None => text.to_owned(),
    }
}

/// Connects an ingest client to `url`, with the credentials of `CROW_TOKEN` / `CROW_GATEWAY_KEY`.
pub async fn connect(url: &str) -> Result<IngestServiceClient<AuthChannel>, ClientError> {
    connect_with(url, Credentials::from_env()).await
}

/// Connects an ingest client to `url` with explicit credentials.
pub async fn connect_with(
    url: &str,
    credentials: Credentials,
) -> Result<IngestServiceClient<AuthChannel>, ClientError> {
    Ok(IngestServiceClient::new(channel(url, credentials).await?)
        .max_decoding_message_size(16 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024))
}

/// How long a stream waits for the server's answer to the call itself.
const STREAM_ANSWER: Duration = Duration::from_secs(15);
/// How long a stream with frames awaiting their acks waits for the next message from the server.
const ACK_STALL: Duration = Duration::from_secs(30);

/// Streams frames from `frames`, sending only while the server grants credits and no faster than the
/// frame rate it announces; returns how many were sent and the acks in order. The request stream closes
/// when `frames` does; `on_ack` sees each ack as it arrives. A server that does not answer the call
/// within 15 s, or leaves frames without an ack for 30 s, ends the stream with `UNAVAILABLE` (worth a
/// reconnect, see [`stream_frames_resending`]).
pub async fn stream_frames(
    client: &mut IngestServiceClient<AuthChannel>,
    mut frames: mpsc::Receiver<Frame>,
    mut on_ack: impl FnMut(&FrameAck) + Send,
) -> Result<(u64, Vec<FrameAck>), ClientError> {
    let credits = Arc::new(Semaphore::new(0));
    // Set from the credit grant, which comes before any credit: frames per second, 0 = unlimited.
    let max_fps = Arc::new(AtomicU32::new(0));
    let (req_tx, req_rx) = mpsc::channel::<StreamFramesRequest>(1);
    let sender_credits = Arc::clone(&credits);
    let sender_fps = Arc::clone(&max_fps);
    // Frames handed to the transport, for the stall check below.
    let in_flight = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sender_in_flight = Arc::clone(&in_flight);
    let sender = tokio::spawn(async move {
        let mut sent = 0u64;
        let mut pacer: Option<tokio::time::Interval> = None;
        while let Some(frame) = frames.recv().await {
            let Ok(permit) = sender_credits.acquire().await else {
                break;
            };
            permit.forget();
            let fps = sender_fps.load(Ordering::Acquire);
            if fps > 0 {
                // At most `fps` frames per second, never in a catch-up burst.
                let pacer = pacer.get_or_insert_with(|| {
                    let mut i =
                        tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(fps)));
                    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    i
                });
                pacer.tick().await;
            }
            if req_tx
                .send(StreamFramesRequest { frame: Some(frame) })
                .await
                .is_err()
            {
                break;
            }
            sent += 1;
            sender_in_flight.store(sent, Ordering::Release);
        }
        sent
    });
    // A server that takes the connection but never answers (stuck, or a half-open connection) is
    // given up on, like one that refused: the caller may reconnect.
    let answer = tokio::time::timeout(
        STREAM_ANSWER,
        client.stream_frames(ReceiverStream::new(req_rx)),
    )
    .await
    .unwrap_or_else(|_| {
        Err(tonic::Status::unavailable(format!(
            "the server did not answer the stream within {} s",
            STREAM_ANSWER.as_secs()
        )))
    });
    let mut responses = match answer {
        Ok(r) => r.into_inner(),
        Err(status) => {
            // The sender waits for credits that will never come: end it, which also frees whoever
            // feeds `frames` (a caller waiting on it would wait forever).
            credits.close();
            sender.abort();
            return Err(ClientError::Status(status));
        }
    };
    let mut acks = Vec::new();
    let result = loop {
        let next = match tokio::time::timeout(ACK_STALL, responses.next()).await {
            Ok(next) => next,
            // Silence is fine while nothing waits for an ack.
            Err(_) if in_flight.load(Ordering::Acquire) <= acks.len() as u64 => continue,
            Err(_) => {
                break Err(ClientError::Status(tonic::Status::unavailable(format!(
                    "no ack from the server for {} s",
                    ACK_STALL.as_secs()
                ))))
            }
        };
        match next {
            Some(Ok(r)) => match r.event {
                Some(Event::Credits(grant)) => {
                    max_fps.store(grant.max_frames_per_second, Ordering::Release);
                    credits.add_permits(grant.credits as usize);
                }
                Some(Event::Ack(ack)) => {
                    credits.add_permits(1);
                    on_ack(&ack);
                    acks.push(ack);
                }
                None => break Err(ClientError::Protocol("empty response".into())),
            },
            Some(Err(status)) => break Err(ClientError::Status(status)),
            // The server ends the response stream after the last ack, once our side is closed.
            None => break Ok(()),
        }
    };
    credits.close();
    match result {
        // The server ended the stream after our side closed: the sender is done.
        Ok(()) => Ok((sender.await.unwrap_or(0), acks)),
        Err(e) => {
            // The call failed: the transport may never take the sender's next frame, so do not wait
            // for it (dropping its channel also frees whoever feeds it).
            sender.abort();
            Err(e)
        }
    }
}

/// How long [`StreamOptions::new`] lets a stream reconnect after its server went away.
pub const RECONNECT_FOR: Duration = Duration::from_secs(60);

/// Whether a stream that failed this way is worth reconnecting: the connection could not be made or
/// broke, or the server said it cannot take frames now (`UNAVAILABLE`: shutting down, the camera's
/// session moved to another ingest node, NATS failing over).
fn worth_reconnecting(e: &ClientError) -> bool {
    match e {
        ClientError::Connect { .. } => true,
        // A connection cut mid-stream surfaces as UNKNOWN (crow itself never answers it).
        ClientError::Status(s) => {
            matches!(s.code(), tonic::Code::Unavailable | tonic::Code::Unknown)
        }
        _ => false,
    }
}

/// [`stream_frames`] that rides out its server going away: after a failure that is
/// worth reconnecting it connects to `url` again (through a balancer, any ingest
/// node; the node takes the camera's session over), for as long as `reconnect_for` passes without an
/// ack, and first sends again every frame not acknowledged yet. A frame the cluster had recorded before
/// the failure is answered from its record (`replayed`), so nothing is counted twice and every frame
/// gets one ack. Returns the frames taken from `frames`, the acks in order, and the reconnections.
pub async fn stream_frames_resending(
    url: &str,
    credentials: Credentials,
    frames: mpsc::Receiver<Frame>,
    mut on_ack: impl FnMut(&FrameAck) + Send,
    reconnect_for: Duration,
) -> Result<(u64, Vec<FrameAck>, u64), ClientError> {
    let unacked = Arc::new(std::sync::Mutex::new(
        std::collections::VecDeque::<Frame>::new(),
    ));
    let taken = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut source = frames;
    let mut acks = Vec::new();
    let mut reconnects = 0u64;
    let mut last_progress = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(200);
    loop {
        let mut client = match connect_with(url, credentials.clone()).await {
            Ok(c) => c,
            // The first connection fails at once (a wrong address should not wait); a reconnection
            // waits for the node (or the balancer's next one) to come back.
            Err(e)
                if reconnects > 0
                    && worth_reconnecting(&e)
                    && last_progress.elapsed() < reconnect_for =>
            {
                tracing::debug!(error = %e, "reconnecting");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
                continue;
            }
            Err(e) => return Err(e),
        };
        let (tx, rx) = mpsc::channel::<Frame>(1);
        let resend: Vec<Frame> = lock(&unacked).iter().cloned().collect();
        let relay = tokio::spawn(relay(
            source,
            resend,
            tx,
            Arc::clone(&unacked),
            Arc::clone(&taken),
        ));
        let streamed = stream_frames(&mut client, rx, |ack| {
            let mut waiting = lock(&unacked);
            if let Some(at) = waiting
                .iter()
                .position(|f| f.frame_index == ack.frame_index)
            {
                waiting.remove(at);
            }
            drop(waiting);
            last_progress = tokio::time::Instant::now();
            on_ack(ack);
            acks.push(ack.clone());
        })
        .await;
        source = relay
            .await
            .map_err(|e| ClientError::Protocol(format!("frame relay failed: {e}")))?;
        match streamed {
            Ok(_) => return Ok((taken.load(Ordering::Acquire), acks, reconnects)),
            Err(e) if worth_reconnecting(&e) && last_progress.elapsed() < reconnect_for => {
                tracing::warn!(error = %e, unacked = lock(&unacked).len(), "stream interrupted; reconnecting and resending what was not acked");
                reconnects += 1;
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Feeds one connection: first the frames to send again, then new ones from `source` (each kept in
/// `unacked` until its ack), until `source` ends or the connection does; returns `source` for the next
/// connection.
async fn relay(
    mut source: mpsc::Receiver<Frame>,
    resend: Vec<Frame>,
    tx: mpsc::Sender<Frame>,
    unacked: Arc<std::sync::Mutex<std::collections::VecDeque<Frame>>>,
    taken: Arc<std::sync::atomic::AtomicU64>,
) -> mpsc::Receiver<Frame> {
    for frame in resend {
        if tx.send(frame).await.is_err() {
            return source;
        }
    }
    loop {
        let frame = tokio::select! {
            frame = source.recv() => frame,
            () = tx.closed() => return source,
        };
        let Some(frame) = frame else {
            return source;
        };
        lock(&unacked).push_back(frame.clone());
        taken.fetch_add(1, Ordering::AcqRel);
        if tx.send(frame).await.is_err() {
            return source;
        }
    }
}

/// Reads `path` (video, image or folder), encodes frames as JPEG and streams them to `url`, with the
/// credentials of the environment ([`Credentials::from_env`]).
pub async fn stream_media(
    url: &str,
    path: impl AsRef<Path>,
    options: &StreamOptions,
    on_ack: impl FnMut(&FrameAck) + Send,
) -> Result<StreamReport, ClientError> {
    stream_media_with(url, Credentials::from_env(), path, options, on_ack).await
}

/// [`stream_media`] with explicit credentials (token, gateway key, TLS).
pub async fn stream_media_with(
    url: &str,
    credentials: Credentials,
    path: impl AsRef<Path>,
    options: &StreamOptions,
    mut on_ack: impl FnMut(&FrameAck) + Send,
) -> Result<StreamReport, ClientError> {
    let reader = MediaReader::open(path.as_ref(), options.sample_fps)?;
    let (frame_tx, frame_rx) = mpsc::channel::<Frame>(4);
    let opts = options.clone();
    let path: PathBuf = path.as_ref().to_owned();
    let producer = tokio::task::spawn_blocking(move || {
        produce(reader, &opts, &frame_tx).map_err(|e| (path, e))
    });

    let mut report = StreamReport::default();
    let (sent, acks, reconnects) = stream_frames_resending(
        url,
        credentials,
        frame_rx,
        |ack| on_ack(ack),
        options.reconnect_for,
    )
    .await?;
    report.reconnects = reconnects;
    let (unreadable, range) = match producer.await {
        Ok(Ok(v)) => v,
        Ok(Err((_, e))) => return Err(e.into()),
        Err(e) => return Err(ClientError::Protocol(format!("media reader failed: {e}"))),
    };
    report.frames_sent = sent;
    report.unreadable = unreadable;
    report.captured_range_ms = range;
    for ack in acks {
        tally(&mut report, &ack);
    }
    Ok(report)
}

fn tally(report: &mut StreamReport, ack: &FrameAck) {
    report.acked += 1;
    if ack.replayed {
        report.replayed += 1;
    }
    match FrameOutcome::try_from(ack.outcome) {
        Ok(FrameOutcome::Accepted) => report.accepted += 1,
        Ok(FrameOutcome::SkippedDuplicate) => report.skipped += 1,
        Ok(FrameOutcome::NoPerson) => report.no_person += 1,
        Ok(FrameOutcome::Gated) => report.gated += 1,
        Ok(FrameOutcome::Shed) => report.shed += 1,
        _ => report.rejected.push((ack.frame_index, ack.reason.clone())),
    }
    if !ack.session_id.is_empty() && report.session_ids.last() != Some(&ack.session_id) {
        report.session_ids.push(ack.session_id.clone());
    }
}

/// Reads and encodes frames on a blocking thread. Returns (unreadable frames, capture range).
fn produce(
    reader: MediaReader,
    options: &StreamOptions,
    out: &mpsc::Sender<Frame>,
) -> Result<(u64, Option<(i64, i64)>), InferenceError> {
    let mut reader = reader;
    let mut range: Option<(i64, i64)> = None;
    for item in reader.by_ref() {
        let media_frame = item?;
        if options
            .max_frames
            .is_some_and(|max| media_frame.index >= max)
        {
            break;
        }
        let captured_at_ms = options.start_ms + media_frame.position_ms;
        let data = encode_jpeg(&media_frame.image, options.jpeg_quality)?;
        let frame = Frame {
            organization_id: options.organization_id.clone(),
            camera_id: options.camera_id.clone(),
            session_id: options.session_id.clone().unwrap_or_default(),
            frame_index: options.first_frame_index + media_frame.index,
            captured_at_ms,
            data,
            format: ImageFormat::Jpeg as i32,
        };
        range = Some(range.map_or((captured_at_ms, captured_at_ms), |(a, _)| {
            (a, captured_at_ms)
        }));
        if out.blocking_send(frame).is_err() {
            break;
        }
    }
    Ok((reader.unreadable(), range))
}
