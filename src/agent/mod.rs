//! `crow agent`: the on-premise CCTV daemon. It pulls a store's cameras (RTSP, HTTP MJPEG, HTTP
//! snapshots, or files and folders replayed), writes every sampled frame to a disk spool first, and
//! forwards the spool, oldest first, over the server's acknowledged `StreamFrames` stream, deleting a
//! frame only once the server acknowledged it durably. An unreachable server, a camera rebooting or the
//! agent killed lose nothing that fits the spool.
//!
//! | part | what it does |
//! |---|---|
//! | [`config`] | the agent's TOML + `CROW_AGENT_*` settings, checked |
//! | [`spool`] | one camera's bounded on-disk queue of frames |
//! | [`capture`] | one thread per camera: source -> JPEG -> spool, reopening with backoff |
//! | [`forward`] | one task per camera: spool -> server -> acknowledged frames leave the spool |

pub mod capture;
pub mod config;
pub mod forward;
pub mod spool;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::client::Credentials;

/// How one camera ended a run of the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraReport {
    /// `<org>/<camera>`.
    pub camera: String,
    /// Frames the server acknowledged during this run.
    pub acknowledged: u64,
    /// Frames left in the spool (sent at the next start).
    pub spooled: u64,
    /// Frames pushed out of a full spool during this run.
    pub dropped: u64,
}

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A camera's spool could not be opened.
    #[error(transparent)]
    Spool(#[from] spool::SpoolError),
    /// A camera's capture thread could not start.
    #[error("starting the capture of camera {camera}: {source}")]
    Thread {
        /// The camera.
        camera: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Runs the agent until `shutdown` resolves, or — with `exit_when_done` — until every camera's source
/// has ended (files and folders) and the server has acknowledged every spooled frame. On shutdown the
/// capture stops, the frames in flight are acknowledged, and what is left stays spooled.
pub async fn run(
    config: config::AgentConfig,
    credentials: Credentials,
    exit_when_done: bool,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Vec<CameraReport>, AgentError> {
    let stop: capture::StopFlag = Arc::new(AtomicBool::new(false));
    let settings = capture::CaptureSettings {
        open_timeout_ms: config.open_timeout_ms,
        read_timeout_ms: config.read_timeout_ms,
        reconnect_max_ms: config.reconnect_max_ms,
    };
    let mut cameras = Vec::new();
    // Forwarders still running: the agent is done when none is (with `exit_when_done`).
    let (running, mut still) = tokio::sync::watch::channel(config.cameras.len());
    for camera in &config.cameras {
        let dir = config.spool_of(camera);
        let bound = config.spool_max_bytes_per_camera;
        let spool = tokio::task::spawn_blocking(move || spool::Spool::open(dir, bound))
            .await
            .map_err(|e| AgentError::Thread {
                camera: camera.camera_id.clone(),
                source: std::io::Error::other(e.to_string()),
            })??;
        let spool = Arc::new(spool);
        let wake = Arc::new(Notify::new());
        let state = Arc::new(forward::Forwarding::new());
        let capture = {
            let (source, spool, wake, state, stop) = (
                camera.clone(),
                Arc::clone(&spool),
                Arc::clone(&wake),
                Arc::clone(&state),
                Arc::clone(&stop),
            );
            std::thread::Builder::new()
                .name(format!("capture-{}", camera.camera_id))
                .spawn(move || {
                    capture::run(&source, settings, &spool, &wake, &stop);
                    tracing::debug!(camera_id = %source.camera_id, "capture ended");
                    state.capture_ended.store(true, Ordering::Release);
                    wake.notify_one();
                })
                .map_err(|source| AgentError::Thread {
                    camera: camera.camera_id.clone(),
                    source,
                })?
        };
        let forwarder = {
            let run = forward::run(
                camera.clone(),
                config.server.clone(),
                credentials.clone(),
                Arc::clone(&spool),
                wake,
                Arc::clone(&state),
                Arc::clone(&stop),
            );
            let running = running.clone();
            tokio::spawn(async move {
                run.await;
                running.send_modify(|n| *n -= 1);
            })
        };
        tracing::info!(
            camera_id = %camera.camera_id,
            url = %crow_inference::redact_url(&camera.url),
            spooled = spool.stats().frames,
            "camera started"
        );
        cameras.push((camera.clone(), spool, state, capture, forwarder));
    }
    if exit_when_done {
        tokio::select! {
            _ = still.wait_for(|n| *n == 0) => {}
            () = shutdown => {}
        }
    } else {
        shutdown.await;
    }
    stop.store(true, Ordering::Release);
    let mut reports = Vec::new();
    for (camera, spool, state, capture, forwarder) in cameras {
        let _ = forwarder.await;
        let _ = tokio::task::spawn_blocking(move || capture.join()).await;
        let stats = spool.stats();
        reports.push(CameraReport {
            camera: format!("{}/{}", camera.organization_id, camera.camera_id),
            acknowledged: state.acknowledged.load(Ordering::Acquire),
            spooled: stats.frames,
            dropped: stats.dropped,
        });
    }
    Ok(reports)
}
