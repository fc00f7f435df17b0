//! `crow bench agent`: the on-premise daemon against a live RTSP camera. Three figures, each a ratio
//! measured in one run:
//! - decode: CPU-seconds per camera-hour taking 1 frame/s with key-frame-only decoding, against
//!   decoding every frame (the same cameras, the same stream, one after the other);
//! - drain: after an outage of the server, frames/s the agent forwards from its spool until it has
//!   caught up, against the frames/s it captures; and frames captured against frames recorded;
//! - bytes: bytes leaving the store per camera-hour at the default settings, against the options
//!   (JPEG quality and size re-measured on the same frames; only the frames the server's gate
//!   accepted; only the batches, were perception to run in the store).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use crow::agent::config::{AgentConfig, CameraSource, DecodeChoice, SourceKind, Transport};
use crow::inference::encode_jpeg;
use crow::inference::opencv::core::{Mat, Size};
use crow::inference::opencv::{imgcodecs, imgproc, prelude::*};
use crow::proto::CloseSessionRequest;
use crow::{Crow, PipelineConfig};

#[derive(Args)]
pub(crate) struct AgentBenchArgs {
    /// The camera (`rtsp://…`), e.g. `python3 tests/cameras/rtsp_camera.py 8554 VIDEO --size 1280x720
    /// --fps 25 --key-every 25` serving `rtsp://127.0.0.1:8554/cam`.
    #[arg(long)]
    rtsp: String,
    /// Cameras reading the stream at once in the decode comparison.
    #[arg(long, default_value_t = 4)]
    cameras: usize,
    /// Seconds each decoding mode runs.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Seconds the server is away in the drain measurement (0 skips the drain and bytes figures).
    #[arg(long, default_value_t = 120)]
    outage_seconds: u64,
}

const ORG: &str = "bench";

pub(super) async fn run(args: AgentBenchArgs) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "crow bench agent: {} at 1 frame/s, machine: {cores} cores",
        crow::inference::redact_url(&args.rtsp)
    );
    decode(&args).await?;
    if args.outage_seconds == 0 {
        return Ok(());
    }
    drain(&args).await
}

fn camera(id: String, url: &str, decode: DecodeChoice) -> CameraSource {
    CameraSource {
        organization_id: ORG.into(),
        camera_id: id,
        url: url.into(),
        kind: SourceKind::Stream,
        fps: 1.0,
        jpeg_quality: 80,
        max_width: 1280,
        transport: Transport::Tcp,
        decode,
        password_file: None,
        password_env: None,
    }
}

/// User + system CPU time of this process so far (every thread: GStreamer's and FFmpeg's included).
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Frame files in a camera's spool.
fn spooled(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Runs the agent on `config` until `until` resolves; returns its per-camera reports.
async fn agent_until(
    config: AgentConfig,
    credentials: crow::client::Credentials,
    until: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Vec<crow::agent::CameraReport>> {
    Ok(crow::agent::run(config, credentials, false, until).await?)
}

async fn decode(args: &AgentBenchArgs) -> Result<()> {
    // Warm-up, not measured: GStreamer's registry and plugins load once per process.
    let dir = super::scratch::temp_dir("agent-warm-up");
    agent_until(
        AgentConfig {
            server: "http://127.0.0.1:1".into(),
            spool_dir: dir.clone(),
            cameras: vec![camera("warm-up".into(), &args.rtsp, DecodeChoice::Full)],
            ..AgentConfig::default()
        },
        crow::client::Credentials::new(None, None),
        tokio::time::sleep(Duration::from_secs(3)),
    )
    .await?;
    std::fs::remove_dir_all(&dir).ok();
    let mut per_hour = Vec::new();
    for mode in [DecodeChoice::Full, DecodeChoice::KeyFrames] {
        let dir = super::scratch::temp_dir("agent-decode");
        let config = AgentConfig {
            // Nobody listens there: the frames stay in the spool, only capture is measured.
            server: "http://127.0.0.1:1".into(),
            spool_dir: dir.clone(),
            cameras: (0..args.cameras)
                .map(|i| camera(format!("cam{i}"), &args.rtsp, mode))
                .collect(),
            ..AgentConfig::default()
        };
        let seconds = args.seconds;
        let start_cpu = cpu_seconds();
        let start = Instant::now();
        let reports = agent_until(
            config,
            crow::client::Credentials::new(None, None),
            tokio::time::sleep(Duration::from_secs(seconds)),
        )
        .await?;
        let cpu = cpu_seconds() - start_cpu;
        let wall = start.elapsed().as_secs_f64();
        let frames: u64 = reports.iter().map(|r| r.spooled).sum();
        let camera_hours = args.cameras as f64 * wall / 3600.0;
        let cpu_per_hour = cpu / camera_hours;
        println!(
            "decode {:<10} {} cameras x {wall:.0} s: {frames} frames, {cpu:.1} CPU-s -> {cpu_per_hour:7.1} CPU-s per camera-hour, {:6.1} cameras per core",
            format!("{mode:?}"),
            args.cameras,
            3600.0 / cpu_per_hour
        );
        anyhow::ensure!(
            frames as f64 >= args.cameras as f64 * (wall - 5.0),
            "{mode:?}: {frames} frames from {} cameras in {wall:.0} s: the camera did not keep 1 frame/s",
            args.cameras
        );
        per_hour.push(cpu_per_hour);
        std::fs::remove_dir_all(&dir).ok();
    }
    println!(
        "ratio  key frames / full decode CPU (lower is better): {:.3}",
        per_hour[1] / per_hour[0]
    );
    Ok(())
}

async fn drain(args: &AgentBenchArgs) -> Result<()> {
    let dir = super::scratch::temp_dir("agent-drain");
    let data = dir.join("server");
    let spool_dir = dir.join("spool");
    // The server's address is chosen now; it listens only after the outage.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let (auth, credentials) = super::auth::bench_auth(ORG)?;
    let config = AgentConfig {
        server: format!("http://{addr}"),
        spool_dir: spool_dir.clone(),
        cameras: vec![camera("door".into(), &args.rtsp, DecodeChoice::Auto)],
        ..AgentConfig::default()
    };
    let spool = spool_dir.join(ORG).join("door");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(agent_until(config, credentials.clone(), async {
        let _ = stop_rx.await;
    }));
    tokio::time::sleep(Duration::from_secs(args.outage_seconds)).await;
    let backlog = spooled(&spool);
    let capture_rate = backlog.len() as f64 / args.outage_seconds as f64;
    let sizes: Vec<u64> = backlog
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok().map(|m| m.len()))
        .collect();
    // Copies of the backlog's frames, for the size options below (the spool empties as it drains).
    let samples: Vec<Vec<u8>> = backlog
        .iter()
        .step_by((backlog.len() / 30).max(1))
        .filter_map(|p| std::fs::read(p).ok())
        .collect();

    let crow = Crow::builder()
        .data_dir(&data)
        .pipeline_config(PipelineConfig::default())
        .build()
        .await?;
    let server = crow::server::spawn(crow.pipeline().clone(), addr, auth).await?;
    let back = Instant::now();
    // Caught up: the backlog is gone and the spool holds at most the frame being sent.
    while spooled(&spool).len() > 1 {
        anyhow::ensure!(
            back.elapsed() < Duration::from_secs(args.outage_seconds * 2 + 60),
            "the spool did not drain"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain_secs = back.elapsed().as_secs_f64();
    let forwarded = backlog.len() as f64 + capture_rate * drain_secs;
    let drain_rate = forwarded / drain_secs;
    let _ = stop_tx.send(());
    let reports = agent.await??;
    let report = reports.first().context("no camera report")?;
    let captured = report.acknowledged + report.spooled + report.dropped;

    let mut client = crow::client::connect_with(&server.url(), credentials).await?;
    let session = crow
        .store()
        .open_session_for_camera(ORG, "door")?
        .context("the camera has no session")?;
    client
        .close_session(CloseSessionRequest {
            organization_id: ORG.into(),
            session_id: session.id.clone(),
        })
        .await?;
    let session = crow
        .store()
        .get_session(&session.id)?
        .context("session gone")?;
    let counters = &session.counters;
    let batch_bytes: usize = crow
        .store()
        .batches(&session.id)?
        .iter()
        .map(|b| serde_json::to_vec(b).map_or(0, |v| v.len()))
        .sum();

    println!(
        "drain  outage {} s: {} frames spooled (capture {capture_rate:.2} frames/s); caught up in {drain_secs:.1} s -> {drain_rate:.1} frames/s forwarded",
        args.outage_seconds,
        backlog.len()
    );
    println!(
        "ratio  drain / capture rate (goal >= 5):                {:8.1}",
        drain_rate / capture_rate
    );
    println!(
        "truth  captured {captured}, acknowledged {}, still spooled {}, dropped {}; the server recorded {} ({} accepted, {} duplicates, {} without people, {} gated, {} rejected, {} shed)",
        report.acknowledged,
        report.spooled,
        report.dropped,
        counters.received,
        counters.accepted,
        counters.skipped,
        counters.no_person,
        counters.gated,
        counters.rejected,
        counters.shed
    );
    println!(
        "ratio  recorded / captured (goal 1.000 within the spool): {:8.3}",
        counters.received as f64 / (captured - report.spooled) as f64
    );

    bytes(&sizes, &samples, counters, batch_bytes, capture_rate)?;
    server.shutdown().await;
    crow.shutdown().await;
    super::scratch::remove_when_released(&data).await;
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

/// Mean JPEG bytes of `samples` re-encoded at `quality`, scaled to `width` when narrower.
fn mean_reencoded(samples: &[Vec<u8>], width: i32, quality: i32) -> Result<f64> {
    let mut total = 0usize;
    for jpeg in samples {
        let image = imgcodecs::imdecode(&Mat::from_slice(jpeg)?, imgcodecs::IMREAD_COLOR)?;
        let image = if image.cols() > width {
            let height = (f64::from(image.rows()) * f64::from(width) / f64::from(image.cols()))
                .round() as i32;
            let mut small = Mat::default();
            imgproc::resize(
                &image,
                &mut small,
                Size::new(width, height),
                0.0,
                0.0,
                imgproc::INTER_AREA,
            )?;
            small
        } else {
            image
        };
        total += encode_jpeg(&image, quality)?.len();
    }
    Ok(total as f64 / samples.len().max(1) as f64)
}

fn bytes(
    sizes: &[u64],
    samples: &[Vec<u8>],
    counters: &crow::storage::SessionCounters,
    batch_bytes: usize,
    capture_rate: f64,
) -> Result<()> {
    let mib_per_hour = |bytes_per_frame: f64| bytes_per_frame * capture_rate * 3600.0 / 1048576.0;
    let mean = sizes.iter().sum::<u64>() as f64 / sizes.len().max(1) as f64;
    let default = mib_per_hour(mean);
    println!(
        "bytes  default (1 frame/s, JPEG q80, <= 1280 px): {mean:.0} bytes/frame -> {default:.1} MiB per camera-hour"
    );
    for (label, width, quality) in [
        ("JPEG q60, <= 1280 px", 1280, 60),
        ("JPEG q80, <= 640 px", 640, 80),
        ("JPEG q60, <= 640 px", 640, 60),
    ] {
        let option = mib_per_hour(mean_reencoded(samples, width, quality)?);
        println!(
            "bytes  {label:<38} {option:6.1} MiB per camera-hour, ratio to default {:.3}",
            option / default
        );
    }
    let received = counters.received.max(1) as f64;
    let gate = default * counters.accepted as f64 / received;
    println!(
        "bytes  only frames the server's gate accepts ({} of {}): {gate:6.1} MiB per camera-hour, ratio {:.3}",
        counters.accepted,
        counters.received,
        gate / default
    );
    let seconds = received / capture_rate;
    let batches = batch_bytes as f64 * 3600.0 / seconds / 1048576.0;
    println!(
        "bytes  only batches (perception in the store, {} batches): {batches:6.3} MiB per camera-hour, ratio {:.4}",
        counters.batches,
        batches / default
    );
    Ok(())
}
