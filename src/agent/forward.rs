//! Forwarding: one task per camera sends the camera's spooled frames, oldest first, over the server's
//! acknowledged `StreamFrames` stream (through [`crate::client::stream_frames_resending`], which
//! reconnects and resends what was not acknowledged), and deletes each frame from the spool once the
//! server acknowledged it durably. While the server is unreachable the frames wait in the spool; when it
//! returns they drain, with their original capture times, at the rate the server grants.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crow_grpc_api::proto::{Frame, ImageFormat};
use tokio::sync::{mpsc, Notify};

use super::config::CameraSource;
use super::spool::Spool;
use crate::client::{stream_frames_resending, ClientError, Credentials};

/// How long one stream rides out an unreachable server before the forwarder starts a new one from the
/// spool (nothing is lost either way: the frames wait in the spool).
const STREAM_PATIENCE: Duration = Duration::from_secs(600);

/// A camera's forwarding, shared with the agent.
pub struct Forwarding {
    /// Frames the server acknowledged (and the spool forgot).
    pub acknowledged: AtomicU64,
    /// Set once the capture has ended (a file replayed to its end, or the agent stopping).
    pub capture_ended: AtomicBool,
    /// Whether the last attempt to reach the server succeeded.
    pub reachable: AtomicBool,
}

impl Forwarding {
    /// Nothing acknowledged yet; the capture running.
    pub fn new() -> Forwarding {
        Forwarding {
            acknowledged: AtomicU64::new(0),
            capture_ended: AtomicBool::new(false),
            reachable: AtomicBool::new(true),
        }
    }
}

impl Default for Forwarding {
    fn default() -> Self {
        Forwarding::new()
    }
}

/// How long a stopping agent waits for the acks of the frames in flight.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Resolves once `stop` is set.
async fn stopping(stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Forwards until the capture has ended and the spool is empty, or `stop` is set (then the frames in
/// flight are acknowledged and the rest stay spooled for the next start).
pub async fn run(
    camera: CameraSource,
    server: String,
    credentials: Credentials,
    spool: Arc<Spool>,
    wake: Arc<Notify>,
    state: Arc<Forwarding>,
    stop: Arc<AtomicBool>,
) {
    let sent_label = [
        ("org_id", camera.organization_id.clone()),
        ("camera_id", camera.camera_id.clone()),
    ];
    let sent = metrics::counter!(super::capture::metric::SENT, &sent_label);
    // Said once when the server goes away, not on every try.
    let mut unreachable_since: Option<std::time::Instant> = None;
    loop {
        let (tx, rx) = mpsc::channel::<Frame>(1);
        let feeder = feed(
            camera.clone(),
            Arc::clone(&spool),
            Arc::clone(&wake),
            Arc::clone(&state),
            Arc::clone(&stop),
            tx,
        );
        let feeder = tokio::spawn(feeder);
        // Acknowledged frames leave the spool off the async workers.
        let (acked_tx, mut acked_rx) = mpsc::unbounded_channel::<u64>();
        let forget = {
            let (spool, state) = (Arc::clone(&spool), Arc::clone(&state));
            tokio::spawn(async move {
                while let Some(index) = acked_rx.recv().await {
                    let spool = Arc::clone(&spool);
                    match tokio::task::spawn_blocking(move || spool.acknowledged(index)).await {
                        Ok(Ok(())) => {
                            state.acknowledged.fetch_add(1, Ordering::AcqRel);
                        }
                        Ok(Err(e)) => {
                            tracing::error!(error = %e, "acknowledged frame not removed from the spool")
                        }
                        Err(e) => tracing::error!(error = %e, "spool task failed"),
                    }
                }
            })
        };
        tracing::debug!(camera_id = %camera.camera_id, spooled = spool.stats().frames, "forwarding the spool");
        let mut stream = Box::pin(stream_frames_resending(
            &server,
            credentials.clone(),
            rx,
            |ack| {
                sent.increment(1);
                state.reachable.store(true, Ordering::Release);
                let _ = acked_tx.send(ack.frame_index);
            },
            STREAM_PATIENCE,
        ));
        let streamed = tokio::select! {
            streamed = &mut stream => streamed,
            // Stopping: the frames in flight get a moment for their acks (the feeder sends no more);
            // a server that is away does not hold the agent's exit. What is not acked stays spooled.
            () = stopping(&stop) => tokio::time::timeout(STOP_GRACE, &mut stream)
                .await
                .unwrap_or_else(|_| Err(crate::client::ClientError::Protocol("stopped".into()))),
        };
        drop(stream);
        drop(acked_tx);
        let _ = forget.await;
        feeder.abort();
        if streamed.is_ok() {
            unreachable_since = None;
            state.reachable.store(true, Ordering::Release);
        } else {
            state.reachable.store(false, Ordering::Release);
        }
        match streamed {
            Ok(_) => {
                let empty = spool.stats().frames == 0;
                if stop.load(Ordering::Acquire)
                    || (empty && state.capture_ended.load(Ordering::Acquire))
                {
                    return;
                }
            }
            Err(e) => {
                // Credentials the server refuses do not mend by themselves: said as such, retried
                // less often (a token renewed in the environment needs a restart; one the server's
                // keys come to accept does not).
                let refused = matches!(&e, ClientError::Status(s)
                    if matches!(s.code(), tonic::Code::Unauthenticated | tonic::Code::PermissionDenied));
                if unreachable_since.is_none() {
                    if refused {
                        tracing::error!(camera_id = %camera.camera_id, error = %e, "the server refused the agent's credentials: set CROW_TOKEN to a camera-role token of the camera's organization (crow token --org ORG --role camera); frames wait in the spool");
                    } else {
                        tracing::warn!(camera_id = %camera.camera_id, error = %e, "server unreachable; frames wait in the spool");
                    }
                    unreachable_since = Some(std::time::Instant::now());
                }
                let pause = Duration::from_secs(if refused { 10 } else { 1 });
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = stopping(&stop) => return,
                }
            }
        }
    }
}

/// Feeds one stream: the spooled frames in order, waiting for new ones, until the capture has ended and
/// nothing is left to send, or `stop` is set.
async fn feed(
    camera: CameraSource,
    spool: Arc<Spool>,
    wake: Arc<Notify>,
    state: Arc<Forwarding>,
    stop: Arc<AtomicBool>,
    tx: mpsc::Sender<Frame>,
) {
    let mut last: Option<u64> = None;
    while !stop.load(Ordering::Acquire) {
        let next = spool.next_after(last);
        let Some(frame) = next else {
            if state.capture_ended.load(Ordering::Acquire) {
                return; // everything captured was sent: the stream closes once it is acknowledged
            }
            // A new frame wakes us; the timeout re-checks the flags.
            let _ = tokio::time::timeout(Duration::from_millis(500), wake.notified()).await;
            continue;
        };
        last = Some(frame.index);
        let reader = Arc::clone(&spool);
        let bytes = match tokio::task::spawn_blocking(move || reader.read(&frame)).await {
            Ok(Ok(Some(bytes))) => bytes,
            // Dropped from a full spool meanwhile.
            Ok(Ok(None)) => continue,
            Ok(Err(e)) => {
                tracing::error!(camera_id = %camera.camera_id, error = %e, "spooled frame unreadable; skipped");
                continue;
            }
            Err(_) => return,
        };
        let frame = Frame {
            organization_id: camera.organization_id.clone(),
            camera_id: camera.camera_id.clone(),
            session_id: String::new(),
            frame_index: frame.index,
            captured_at_ms: frame.captured_at_ms,
            data: bytes,
            format: ImageFormat::Jpeg as i32,
        };
        if tx.send(frame).await.is_err() {
            return;
        }
    }
}
