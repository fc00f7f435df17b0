//! `crow bench`: ratios measured in one run (see docs/benchmarks.md).

mod cluster;
mod list;
mod perception;
mod search;

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
    /// Vision describe latency and tokens/s, against llama.cpp's own llama-mtmd-cli on the same input.
    Describe(DescribeBenchArgs),
    /// ListInteractions and GetSummary latency with 1,000,000 interactions, against a full scan.
    List(list::ListBenchArgs),
    /// Describer calls per frame at 1 frame/s on footage built from VIDEO (idle and busy stretches, a
    /// blinking sign, an exposure step), with the people gate and with the pixel gate; busy stretches
    /// missed.
    Gate(perception::GateBenchArgs),
    /// Person detector frames/s per core (SSD at 300x300 against HOG on the same frames), and the
    /// ingest ratio with detection on.
    Detector(perception::DetectorBenchArgs),
    /// Whether analysis keeps up: 4 cameras at 1 frame/s through the whole pipeline (detector, gate,
    /// describer, analyzer pool with the text model), camera-seconds processed per wall second.
    Analyzer(perception::AnalyzerBenchArgs),
    /// Distributed mode with real `crow serve` processes over the given NATS and PostgreSQL servers:
    /// records/s through JetStream against the in-process path, and analyze records/s with 2 analyze
    /// nodes against 1.
    Cluster(cluster::ClusterBenchArgs),
    /// Search by meaning against word search on the labelled set (recall@10, precision@10, negatives),
    /// the similarity floor calibrated on it, and the vector index with 1,000,000 records against a
    /// brute-force scan.
    Search(search::SearchBenchArgs),
}

#[derive(Args)]
pub(crate) struct DescribeBenchArgs {
    /// Image to describe.
    image: PathBuf,
    /// GGUF language model.
    #[arg(long, default_value = "models/gemma-3-270m-q4_k_m.gguf")]
    model: PathBuf,
    /// GGUF multimodal projector.
    #[arg(long, default_value = "models/test-mmproj-gemma3-224.gguf")]
    mmproj: PathBuf,
    /// Timed runs (after one warm-up run).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Tokens generated per run.
    #[arg(long, default_value_t = 32)]
    tokens: u32,
    /// CPU threads.
    #[arg(long, default_value_t = 2)]
    threads: i32,
    /// llama.cpp's llama-mtmd-cli built from the same source (scripts/build-llama-mtmd-cli.sh).
    #[arg(long)]
    mtmd_cli: Option<PathBuf>,
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
        BenchCommand::Describe(args) => tokio::task::spawn_blocking(move || describe(args)).await?,
        BenchCommand::List(args) => list::run(args).await,
        BenchCommand::Gate(args) => perception::gate(args).await,
        BenchCommand::Detector(args) => perception::detector(args).await,
        BenchCommand::Analyzer(args) => perception::analyzer(args).await,
        BenchCommand::Cluster(args) => cluster::run(args).await,
        BenchCommand::Search(args) => search::run(args).await,
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
    let dir = std::env::temp_dir().join(format!(
        "crow-bench-{}-{}",
        std::process::id(),
        crow::storage::now_ms()
    ));
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
    let (auth, credentials) = bench_auth("bench")?;
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
    std::fs::remove_dir_all(&dir).ok();
    Ok(sent as f64 / elapsed)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// crow's vision path and text model, then llama-mtmd-cli on the same image and prompt. Compared per phase:
/// prompt (image encode + image/text decode) and generation (ms per token), since the two may stop after a
/// different number of tokens.
fn describe(args: DescribeBenchArgs) -> Result<()> {
    use crow::inference::llama::{LlamaSettings, TextModel, VisionModel, DEFAULT_VISION_PROMPT};

    let settings = LlamaSettings {
        threads: args.threads,
        n_ctx: 1024,
        max_tokens: args.tokens,
    };
    let bytes =
        std::fs::read(&args.image).with_context(|| format!("reading {}", args.image.display()))?;
    let image = crow::inference::decode_frame(
        &bytes,
        crow::inference::ImageFormat::Jpeg,
        crow::inference::FrameLimits::DEFAULT,
    )
    .or_else(|_| {
        crow::inference::decode_frame(
            &bytes,
            crow::inference::ImageFormat::Png,
            crow::inference::FrameLimits::DEFAULT,
        )
    })?
    .image;
    let vision = VisionModel::load(&args.model, &args.mmproj, None, settings.clone())?;
    let mut describer = vision.describer()?;
    describer.describe_image(&image)?;
    let (mut total, mut prompt, mut per_token, mut image_tokens, mut generated) =
        (vec![], vec![], vec![], 0, 0);
    for _ in 0..args.runs {
        let start = Instant::now();
        let (_, s) = describer.describe_image(&image)?;
        total.push(start.elapsed().as_secs_f64() * 1000.0);
        prompt.push(s.prompt_ms);
        per_token.push(s.generate_ms / s.generated_tokens.max(1) as f64);
        (image_tokens, generated) = (s.image_tokens, s.generated_tokens);
    }
    let (crow_prompt, crow_token, crow_total) =
        (median(prompt), median(per_token), median(total.clone()));
    println!(
        "input: {} ({}x{}), model {}, projector {}, {} threads, machine: {} cores",
        args.image.display(),
        image.cols(),
        image.rows(),
        args.model.display(),
        args.mmproj.display(),
        args.threads,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("crow vision describe: {:8.1} ms/frame (median of {}; {image_tokens} image tokens, {generated} generated)", median(total), args.runs);
    println!("    prompt (encode + decode): {crow_prompt:8.1} ms    generation: {crow_token:6.2} ms/token ({:.1} tokens/s)", 1000.0 / crow_token);

    let text = TextModel::load(&args.model, settings)?;
    let question = text.chat_prompt("Describe a busy store entrance in one sentence.");
    let mut tps = vec![];
    for _ in 0..args.runs.max(1) {
        let (_, s) = text.complete(&question, None, args.tokens)?;
        tps.push(s.generated_tokens as f64 / (s.generate_ms / 1000.0).max(1e-9));
    }
    println!(
        "crow text model:      {:8.1} tokens/s generation (median of {})",
        median(tps),
        args.runs.max(1)
    );

    let Some(cli) = args.mtmd_cli else {
        println!("(pass --mtmd-cli target/llama-mtmd-cli/bin/llama-mtmd-cli for the llama.cpp comparison)");
        return Ok(());
    };
    let (mut cli_prompt, mut cli_token, mut cli_total) = (vec![], vec![], vec![]);
    for _ in 0..args.runs {
        let out = std::process::Command::new(&cli)
            .args(["-m"])
            .arg(&args.model)
            .args(["--mmproj"])
            .arg(&args.mmproj)
            .args(["--image"])
            .arg(&args.image)
            .args([
                "-p",
                DEFAULT_VISION_PROMPT,
                "-n",
                &args.tokens.to_string(),
                "--temp",
                "0",
                "-t",
                &args.threads.to_string(),
                "-c",
                "1024",
                "--chat-template",
                "gemma",
                "--no-warmup",
                "--perf",
                "-lv",
                "4",
            ])
            .output()
            .with_context(|| format!("running {}", cli.display()))?;
        let log = String::from_utf8_lossy(&out.stderr);
        anyhow::ensure!(
            out.status.success(),
            "llama-mtmd-cli failed: {}",
            log.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
        );
        // llama_perf_context_print: "prompt eval time = X ms / N tokens" and "eval time = Y ms / M runs".
        let perf = |prompt_line: bool| -> Option<(f64, f64)> {
            let line = log
                .lines()
                .find(|l| l.contains(" eval time =") && l.contains("prompt eval") == prompt_line)?;
            let rest = &line[line.find('=')? + 1..];
            let ms = rest.split_whitespace().next()?.parse().ok()?;
            let n = rest
                .split('/')
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some((ms, n))
        };
        let encode_ms: f64 = log
            .lines()
            // "mtmd batch encoding done in N ms" (the vision tower); the image-embedding decode is part of the
            // prompt eval time.
            .filter(|l| l.contains("encoding done in") || l.contains("image slice encoded in"))
            .filter_map(|l| {
                l.split("in ")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse::<f64>()
                    .ok()
            })
            .sum();
        let (prompt_ms, _) =
            perf(true).context("no prompt eval timing in llama-mtmd-cli output")?;
        let eval = perf(false).context("no eval timing in llama-mtmd-cli output")?;
        cli_prompt.push(encode_ms + prompt_ms);
        cli_total.push(encode_ms + prompt_ms + eval.0);
        cli_token.push(eval.0 / eval.1.max(1.0));
    }
    let (p, t) = (median(cli_prompt), median(cli_token));
    println!("llama-mtmd-cli:       prompt (encode + decode): {p:8.1} ms    generation: {t:6.2} ms/token ({:.1} tokens/s)", 1000.0 / t);
    let whole = median(cli_total);
    println!("llama-mtmd-cli:       encode + prompt + generation: {whole:8.1} ms/frame");
    println!(
        "ratio crow / llama.cpp (goal <= 1.05): whole frame {:.3} (crow's includes context creation and RGB conversion), prompt {:.3}, generation {:.3}",
        crow_total / whole,
        crow_prompt / p,
        crow_token / t
    );
    Ok(())
}

/// Authentication as a server runs it: HS256 with a fresh random secret, and a client token for `org`, so
/// that benchmarks measure the authenticated path.
pub(crate) fn bench_auth(
    org: &str,
) -> Result<(crow::auth::Authenticator, crow::client::Credentials)> {
    let config = crow::auth::AuthConfig {
        secret: Some(format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        )),
        ..Default::default()
    };
    let token = crow::auth::mint_hs256(&config, "bench", &[org.to_owned()], "admin", 3_600)?;
    Ok((
        crow::auth::Authenticator::new(&config)?,
        crow::client::Credentials::new(Some(&token), None),
    ))
}
