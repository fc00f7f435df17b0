//! `crow bench ingest`: frames/s through a real server against a plain OpenCV decode loop, and the
//! server-side frames/s other benchmarks compare with ([`pipeline_fps`]).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use crow::inference::opencv::core::Mat;
use crow::inference::opencv::imgcodecs;
use crow::inference::opencv::prelude::*;
use crow::inference::{encode_jpeg, MediaReader};
use crow::proto::{CloseSessionRequest, Frame, FrameOutcome, ImageFormat};
use crow::{Crow, DescriberKind, PipelineConfig};
use tokio::sync::mpsc;

#[derive(Args)]
pub(crate) struct IngestBenchArgs {
    /// Video to use (every frame is sent).
    video: PathBuf,
    /// Use at most this many frames.
    #[arg(long, default_value_t = 400)]
    frames: usize,
    /// JPEG quality of the pre-encoded frames.
    #[arg(long, default_value_t = 80)]
    quality: i32,
    /// Also measure with the embedded OpenCV describer on (slow: people detection on every frame).
    #[arg(long)]
    with_describer: bool,
}

pub(super) async fn ingest(args: IngestBenchArgs) -> Result<()> {
    let (jpegs, width, height) = {
        let path = args.video.clone();
        let (frames, quality) = (args.frames, args.quality);
        tokio::task::spawn_blocking(move || -> Result<(Vec<Vec<u8>>, i32, i32)> {
            let mut out = Vec::new();
            let (mut w, mut h) = (0, 0);
            for frame in MediaReader::open(&path, None)?.take(frames) {
                let frame = frame?;
                (w, h) = (frame.image.cols(), frame.image.rows());
                out.push(encode_jpeg(&frame.image, quality)?);
            }
            Ok((out, w, h))
        })
        .await??
    };
    anyhow::ensure!(!jpegs.is_empty(), "no frames in {}", args.video.display());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mean_kib = jpegs.iter().map(Vec::len).sum::<usize>() as f64 / jpegs.len() as f64 / 1024.0;
    println!("input: {} ({} frames, {width}x{height}, JPEG q{} ~{mean_kib:.0} KiB), machine: {cores} cores", args.video.display(), jpegs.len(), args.quality);

    // Floor: a plain imdecode loop on one thread — the server decodes a stream's frames one at a time.
    let floor = {
        let jpegs = jpegs.clone();
        tokio::task::spawn_blocking(move || -> Result<f64> {
            let start = Instant::now();
            for j in &jpegs {
                let buf = Mat::from_slice(j)?;
                let m = imgcodecs::imdecode(&buf, imgcodecs::IMREAD_COLOR)?;
                anyhow::ensure!(!m.empty(), "frame does not decode");
            }
            Ok(jpegs.len() as f64 / start.elapsed().as_secs_f64())
        })
        .await??
    };
    println!("floor    opencv imdecode loop (1 thread):          {floor:8.1} frames/s");

    use crow::actors::DetectorChoice;
    let off = pipeline_fps(&jpegs, DescriberKind::Off, DetectorChoice::Off).await?;
    println!("pipeline gRPC loopback, describer and detector off: {off:6.1} frames/s");
    println!(
        "ratio    pipeline / floor (goal >= 0.90):         {:8.3}",
        off / floor
    );
    if args.with_describer {
        let on = pipeline_fps(&jpegs, DescriberKind::Opencv, DetectorChoice::Ssd).await?;
        println!("pipeline gRPC loopback, detector + OpenCV describer on: {on:6.1} frames/s (until every description is in)");
        println!(
            "ratio    describer on / floor (reported):         {:8.3}",
            on / floor
        );
    }
    Ok(())
}

/// Frames per second through a real server on loopback with a real sled in a temporary directory,
/// from the first frame sent to the last ack (describer off) or to the closed session (describer on).
pub(crate) async fn pipeline_fps(
    jpegs: &[Vec<u8>],
    describer: DescriberKind,
    detector: crow::actors::DetectorChoice,
) -> Result<f64> {
    let dir = super::scratch::temp_dir("ingest");
    let mut config = PipelineConfig {
        describer,
        ..PipelineConfig::default()
    };
    config.perception.detector = detector;
    // The bench measures the pipeline, not the per-camera frame-rate limit (the client paces itself to
    // it: 60 frames/s by default).
    config.limits.max_fps_per_session = 0;
    let crow = Crow::builder()
        .data_dir(&dir)
        .pipeline_config(config)
        .build()
        .await?;
    let (auth, credentials) = super::auth::bench_auth("bench")?;
    let server = crow::server::spawn(crow.pipeline().clone(), "127.0.0.1:0".parse()?, auth).await?;
    let mut client = crow::client::connect_with(&server.url(), credentials).await?;

    let frames: Vec<Frame> = jpegs
        .iter()
        .enumerate()
        .map(|(i, data)| Frame {
            organization_id: "bench".into(),
            camera_id: "cam".into(),
            session_id: String::new(),
            frame_index: i as u64,
            captured_at_ms: 1_700_000_000_000 + i as i64 * 40,
            data: data.clone(),
            format: ImageFormat::Jpeg as i32,
        })
        .collect();
    let (tx, rx) = mpsc::channel(frames.len());
    for f in frames {
        tx.send(f).await.ok();
    }
    drop(tx);

    let start = Instant::now();
    let (sent, acks) = crow::client::stream_frames(&mut client, rx, |_| {}).await?;
    if describer != DescriberKind::Off {
        let session_id = acks
            .last()
            .map(|a| a.session_id.clone())
            .context("no acks")?;
        client
            .close_session(CloseSessionRequest {
                organization_id: "bench".into(),
                session_id,
            })
            .await?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    anyhow::ensure!(
        acks.len() as u64 == sent,
        "{} acks for {sent} frames",
        acks.len()
    );
    let count = |o: FrameOutcome| acks.iter().filter(|a| a.outcome == o as i32).count();
    println!(
        "         {sent} frames acked: {} accepted, {} skipped as duplicates, {} without people, {} gated, {} rejected",
        count(FrameOutcome::Accepted),
        count(FrameOutcome::SkippedDuplicate),
        count(FrameOutcome::NoPerson),
        count(FrameOutcome::Gated),
        count(FrameOutcome::Rejected)
    );
    server.shutdown().await;
    crow.shutdown().await;
    super::scratch::remove_when_released(&dir).await;
    Ok(sent as f64 / elapsed)
}
