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
//! | [`status`] | `<spool_dir>/status.json`, rewritten every 2 s, for `crow agent status` |

pub mod capture;
pub mod config;
pub mod forward;
pub mod spool;
pub mod status;

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
    let mut watched = Vec::new();
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
        let health = Arc::new(capture::CameraHealth::default());
        let capture = {
            let (source, spool, wake, state, health, stop) = (
                camera.clone(),
                Arc::clone(&spool),
                Arc::clone(&wake),
                Arc::clone(&state),
                Arc::clone(&health),
                Arc::clone(&stop),
            );
            std::thread::Builder::new()
                .name(format!("capture-{}", camera.camera_id))
                .spawn(move || {
                    capture::run(&source, settings, &spool, &wake, &health, &stop);
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
        watched.push(Watched {
            camera: camera.clone(),
            spool: Arc::clone(&spool),
            state: Arc::clone(&state),
            health,
        });
        cameras.push((camera.clone(), spool, state, capture, forwarder));
    }
    let watched = Arc::new(watched);
    let reporter = tokio::spawn(report_status(
        config.spool_dir.clone(),
        config.server.clone(),
        Arc::clone(&watched),
        Arc::clone(&stop),
    ));
    if exit_when_done {
        tokio::select! {
            _ = still.wait_for(|n| *n == 0) => {}
            () = shutdown => {}
        }
    } else {
        shutdown.await;
    }
    stop.store(true, Ordering::Release);
    let _ = reporter.await;
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
    let last = snapshot(&config.server, &watched, false);
    let dir = config.spool_dir.clone();
    let _ = tokio::task::spawn_blocking(move || status::write(&dir, &last)).await;
    Ok(reports)
}

/// What the status reporter watches of one camera.
struct Watched {
    camera: config::CameraSource,
    spool: Arc<spool::Spool>,
    state: Arc<forward::Forwarding>,
    health: Arc<capture::CameraHealth>,
}

/// The agent's status now.
fn snapshot(server: &str, cameras: &[Watched], running: bool) -> status::AgentStatus {
    let now = crow_storage::now_ms();
    status::AgentStatus {
        pid: std::process::id(),
        written_at_ms: now,
        running,
        server: server.to_owned(),
        cameras: cameras
            .iter()
            .map(|w| {
                let spooled = w.spool.stats();
                let last = w.health.last_frame_ms.load(Ordering::Acquire);
                status::CameraStatus {
                    camera: format!("{}/{}", w.camera.organization_id, w.camera.camera_id),
                    url: crow_inference::redact_url(&w.camera.url),
                    up: w.health.up.load(Ordering::Acquire),
                    key_frames_only: w.health.key_frames_only.load(Ordering::Acquire),
                    last_frame_ms: (last != 0).then_some(last),
                    captured: w.health.captured.load(Ordering::Acquire),
                    sent: w.state.acknowledged.load(Ordering::Acquire),
                    dropped: spooled.dropped,
                    reconnects: w.health.reconnects.load(Ordering::Acquire),
                    server_reachable: w.state.reachable.load(Ordering::Acquire),
                    spooled_frames: spooled.frames,
                    spooled_bytes: spooled.bytes,
                    oldest_spooled_ms: spooled.oldest_captured_at_ms,
                }
            })
            .collect(),
    }
}

/// Every [`status::EVERY`] until `stop`: the spool gauges, and the status file for `crow agent status`.
async fn report_status(
    spool_dir: std::path::PathBuf,
    server: String,
    cameras: Arc<Vec<Watched>>,
    stop: capture::StopFlag,
) {
    use capture::metric;
    while !stop.load(Ordering::Acquire) {
        let now = snapshot(&server, &cameras, true);
        for c in &now.cameras {
            let (org, camera) = c.camera.split_once('/').unwrap_or(("", &c.camera));
            let labels = [("org_id", org.to_owned()), ("camera_id", camera.to_owned())];
            let age =
                |t: Option<i64>| t.map_or(0.0, |t| (now.written_at_ms - t).max(0) as f64 / 1000.0);
            metrics::gauge!(metric::SPOOL_FRAMES, &labels).set(c.spooled_frames as f64);
            metrics::gauge!(metric::SPOOL_BYTES, &labels).set(c.spooled_bytes as f64);
            metrics::gauge!(metric::SPOOL_OLDEST_AGE, &labels).set(age(c.oldest_spooled_ms));
            metrics::gauge!(metric::LAST_FRAME_AGE, &labels).set(age(c.last_frame_ms));
        }
        let dir = spool_dir.clone();
        match tokio::task::spawn_blocking(move || status::write(&dir, &now)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "agent status not written"),
            Err(_) => return,
        }
        let deadline = tokio::time::Instant::now() + status::EVERY;
        while !stop.load(Ordering::Acquire) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}
