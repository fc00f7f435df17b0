//! `crow bench`: ratios measured in one run (see the README's Benchmarks section).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use crow::inference::opencv::core::Mat;
use crow::inference::opencv::imgcodecs;
use crow::inference::opencv::prelude::*;
use crow::inference::{encode_jpeg, MediaReader};
use crow::proto::{CloseSessionRequest, Frame, FrameOutcome, ImageFormat};
use crow::{Crow, DescriberKind, PipelineConfig};
use tokio::sync::mpsc;

#[derive(Subcommand)]
pub(crate) enum BenchCommand {
    /// Ingest throughput over gRPC against a plain OpenCV decode loop.
    Ingest(IngestBenchArgs),
}

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

pub(crate) async fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Ingest(args) => ingest(args).await,
    }
}

async fn ingest(args: IngestBenchArgs) -> Result<()> {
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

    let off = pipeline_fps(&jpegs, DescriberKind::Off).await?;
    println!("pipeline gRPC loopback, describer off:            {off:8.1} frames/s");
    println!(
        "ratio    pipeline / floor (goal >= 0.90):         {:8.3}",
        off / floor
    );
    if args.with_describer {
        let on = pipeline_fps(&jpegs, DescriberKind::Opencv).await?;
        println!("pipeline gRPC loopback, OpenCV describer on:      {on:8.1} frames/s (until every frame is described)");
        println!(
            "ratio    describer on / floor (reported):         {:8.3}",
            on / floor
        );
    }
    Ok(())
}

/// Frames per second through a real server on loopback with a real sled in a temporary directory,
/// from the first frame sent to the last ack (describer off) or to the closed session (describer on).
async fn pipeline_fps(jpegs: &[Vec<u8>], describer: DescriberKind) -> Result<f64> {
    let dir = std::env::temp_dir().join(format!(
        "crow-bench-{}-{}",
        std::process::id(),
        crow::storage::now_ms()
    ));
    let config = PipelineConfig {
        describer,
        ..PipelineConfig::default()
    };
    let crow = Crow::builder()
        .data_dir(&dir)
        .pipeline_config(config)
        .build()
        .await?;
    let server = crow::server::spawn(crow.pipeline().clone(), "127.0.0.1:0".parse()?).await?;
    let mut client = crow::client::connect(&server.url()).await?;

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
        "         {sent} frames acked: {} accepted, {} skipped as duplicates, {} rejected",
        count(FrameOutcome::Accepted),
        count(FrameOutcome::SkippedDuplicate),
        count(FrameOutcome::Rejected)
    );
    server.shutdown().await;
    crow.shutdown().await;
    std::fs::remove_dir_all(&dir).ok();
    Ok(sent as f64 / elapsed)
}
