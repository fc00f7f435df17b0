//! `crow bench sessions`: resident memory per open camera session, with 16 and 64 cameras streaming at
//! once through one embedded pipeline (the person detector on, the default describer, no text model).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Args;
use crow::actors::{DetectorChoice, FrameInput, SessionIngress};
use crow::inference::{encode_jpeg, ImageFormat, MediaReader};
use crow::{Crow, DescriberKind, PipelineConfig};

use super::scratch::{remove_when_released, rss_bytes, temp_dir};

#[derive(Args)]
pub(crate) struct SessionsBenchArgs {
    /// A video of people: each camera streams its frames, one per second of capture time.
    #[arg(default_value = "examples/data/vtest.avi")]
    video: PathBuf,
    /// Camera counts measured in turn, each on a fresh pipeline.
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    cameras: Vec<usize>,
    /// Frames each camera streams.
    #[arg(long, default_value_t = 30)]
    frames: usize,
    /// Turn the describer off (to see what it holds).
    #[arg(long)]
    no_describer: bool,
    /// Turn the person detector off (to see what it holds).
    #[arg(long)]
    no_detector: bool,
    /// Measure the one camera count given and print the figures as JSON: each count runs in a
    /// process of its own, so that one count's freed memory does not count as the next one's idle.
    #[arg(long, hide = true)]
    child: bool,
}

/// Capture time of the first frame.
const START_MS: i64 = 1_764_000_000_000;

pub(crate) async fn run(args: SessionsBenchArgs) -> Result<()> {
    if args.child {
        let cameras = *args
            .cameras
            .first()
            .context("--child needs one camera count")?;
        let m = measure_here(&args, cameras).await?;
        println!("{}", serde_json::to_string(&m)?);
        return Ok(());
    }
    println!(
        "input: {} frames of {} per camera (1 s of capture time apart), sent as fast as the pipeline takes them; detector {}, describer {}, no text model; each count in a fresh process; machine: {} cores",
        args.frames,
        args.video.display(),
        if args.no_detector { "off" } else { "on (default input)" },
        if args.no_describer { "off" } else { "default (opencv)" },
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let mut measured: Vec<(usize, Measured)> = Vec::new();
    for &cameras in &args.cameras {
        let mut child = std::process::Command::new(std::env::current_exe()?);
        child
            .args([
                "bench",
                "sessions",
                "--child",
                "--cameras",
                &cameras.to_string(),
            ])
            .args(["--frames", &args.frames.to_string()])
            .arg(&args.video)
            .stderr(std::process::Stdio::inherit());
        if args.no_describer {
            child.arg("--no-describer");
        }
        if args.no_detector {
            child.arg("--no-detector");
        }
        let out = tokio::task::spawn_blocking(move || child.output()).await??;
        anyhow::ensure!(out.status.success(), "measuring {cameras} cameras failed");
        let m: Measured = serde_json::from_slice(&out.stdout)
            .with_context(|| String::from_utf8_lossy(&out.stdout).into_owned())?;
        let mb = |bytes: u64| bytes as f64 / 1e6;
        let per = |bytes: u64| bytes.saturating_sub(m.idle) as f64 / cameras as f64 / 1e6;
        println!("\n{cameras} cameras streaming at once:");
        println!(
            "  resident, pipeline idle (models loaded):  {:.0} MB",
            mb(m.idle)
        );
        println!(
            "  resident, peak while streaming:           {:.0} MB",
            mb(m.peak)
        );
        println!(
            "  resident, every session open, streamed:   {:.0} MB",
            mb(m.open)
        );
        println!(
            "  (peak - idle) / cameras:                  {:.1} MB",
            per(m.peak)
        );
        println!(
            "  (open - idle) / cameras:                  {:.1} MB",
            per(m.open)
        );
        println!(
            "  frames: {} in {:.1} s ({:.0} camera-seconds per wall second)",
            m.frames,
            m.seconds,
            m.frames as f64 / m.seconds
        );
        measured.push((cameras, m));
    }
    // What one more open session costs: the slope between the smallest and the largest count (the
    // intercept is shared: describer and detector buffers, queues, caches).
    if let (Some((a, low)), Some((b, high))) = (measured.first(), measured.last()) {
        if b > a {
            let slope = |x: u64, y: u64| (y as f64 - x as f64) / (b - a) as f64 / 1e6;
            println!(
                "\nper open camera session, {a} -> {b} cameras: peak {:.1} MB, open {:.1} MB (goal <= 20)",
                slope(low.peak, high.peak),
                slope(low.open, high.open)
            );
        }
    }
    Ok(())
}

async fn measure_here(args: &SessionsBenchArgs, cameras: usize) -> Result<Measured> {
    let frames = {
        let (path, n) = (args.video.clone(), args.frames);
        tokio::task::spawn_blocking(move || -> Result<Vec<Bytes>> {
            // Every 7th frame: people move between frames as at about 1 frame/s.
            MediaReader::open(&path, None)
                .with_context(|| format!("opening {}", path.display()))?
                .step_by(7)
                .take(n)
                .map(|f| Ok(Bytes::from(encode_jpeg(&f?.image, 85)?)))
                .collect()
        })
        .await??
    };
    anyhow::ensure!(!frames.is_empty(), "no frames in {}", args.video.display());
    let mut config = PipelineConfig::default();
    config.analysis.model = None;
    if args.no_describer {
        config.describer = DescriberKind::Off;
    }
    if args.no_detector {
        config.perception.detector = DetectorChoice::Off;
    }
    let dir = temp_dir("sessions");
    let result = measure(&frames, cameras, config, &dir).await;
    remove_when_released(&dir).await;
    result
}

/// One count's figures, bytes resident.
#[derive(serde::Serialize, serde::Deserialize)]
struct Measured {
    idle: u64,
    peak: u64,
    open: u64,
    frames: u64,
    seconds: f64,
}

async fn measure(
    frames: &[Bytes],
    cameras: usize,
    config: PipelineConfig,
    dir: &std::path::Path,
) -> Result<Measured> {
    let crow = Crow::builder()
        .data_dir(dir)
        .pipeline_config(config)
        .build()
        .await?;
    let sessions = crow.pipeline().sessions().clone();
    let org = "bench";
    // One frame through the detector first, so that the idle figure holds its first instance.
    stream(&sessions, org, "warm-up", &frames[..1]).await?;
    let idle = rss_bytes();

    let peak = Arc::new(AtomicU64::new(idle));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..cameras {
        let (sessions, frames) = (sessions.clone(), frames.to_vec());
        tasks.spawn(async move { stream(&sessions, org, &format!("cam-{c:03}"), &frames).await });
    }
    let mut session_ids = Vec::new();
    while let Some(done) = tasks.join_next().await {
        session_ids.push(done??);
    }
    let took = started.elapsed();
    let open = rss_bytes();
    done.store(true, Ordering::Relaxed);
    sampler.await?;
    for id in &session_ids {
        sessions.close_session(org, id).await?;
    }
    crow.shutdown().await;
    Ok(Measured {
        idle,
        peak: peak.load(Ordering::Relaxed).max(open),
        open,
        frames: (cameras * frames.len()) as u64,
        seconds: took.as_secs_f64(),
    })
}

/// Streams `frames` as camera `camera`, one second of capture time apart; the session's id.
async fn stream(
    sessions: &SessionIngress,
    org: &str,
    camera: &str,
    frames: &[Bytes],
) -> Result<String> {
    let mut router = sessions.router(org, camera)?;
    let preparer = sessions.preparer();
    let mut session_id = String::new();
    for (i, jpeg) in frames.iter().enumerate() {
        let jpeg = jpeg.clone();
        let frame =
            tokio::task::spawn_blocking(move || preparer.prepare(jpeg, Some(ImageFormat::Jpeg)))
                .await?;
        let ack = router
            .submit(
                None,
                FrameInput {
                    frame_index: i as u64,
                    captured_at_ms: START_MS + i as i64 * 1000,
                    frame,
                },
            )
            .await?;
        session_id = ack.session_id;
    }
    Ok(session_id)
}
