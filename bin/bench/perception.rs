//! `crow bench gate | detector | analyzer`: the people gate, the person detector and whether analysis
//! keeps up, each as ratios measured in one run.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Args;
use crow::actors::{DetectorChoice, FrameInput, FramePreparer, ProductInput};
use crow::inference::gate_footage::gate_footage;
use crow::inference::opencv::core::{self as cvcore, Mat};
use crow::inference::opencv::imgcodecs;
use crow::inference::opencv::prelude::*;
use crow::inference::{encode_jpeg, DetectionFilter, ImageFormat, MediaReader, PersonDetector};
use crow::storage::{CameraConfig, FrameOutcome, ZoneConfig};
use crow::{Crow, DescriberKind, PipelineConfig};

use super::ingest::pipeline_fps;
use super::scratch::{remove_when_released, temp_dir};

#[derive(Args)]
pub(crate) struct GateBenchArgs {
    /// A video with people (e.g. examples/data/vtest.avi).
    video: PathBuf,
    /// Busy stretches of 8 s in the footage.
    #[arg(long, default_value_t = 2)]
    stretches: usize,
}

#[derive(Args)]
pub(crate) struct DetectorBenchArgs {
    /// A video with people.
    video: PathBuf,
    /// Frames measured.
    #[arg(long, default_value_t = 60)]
    frames: usize,
    /// The SSD's frozen graph.
    #[arg(
        long,
        default_value = "models/ssdlite-person/frozen_inference_graph.pb"
    )]
    model: PathBuf,
}

#[derive(Args)]
pub(crate) struct AnalyzerBenchArgs {
    /// A video with people, streamed by every camera.
    video: PathBuf,
    /// Cameras streaming at once.
    #[arg(long, default_value_t = 4)]
    cameras: usize,
    /// Seconds of footage per camera (1 frame per second).
    #[arg(long, default_value_t = 60)]
    seconds: usize,
}

async fn start(config: PipelineConfig, dir: &PathBuf) -> Result<Crow> {
    Ok(Crow::builder()
        .data_dir(dir)
        .pipeline_config(config)
        .build()
        .await?)
}

/// A JPEG frame prepared on a blocking thread, as the server's frame stream prepares it.
async fn input(
    preparer: FramePreparer,
    index: usize,
    at_ms: i64,
    jpeg: &[u8],
) -> Result<FrameInput> {
    let data = Bytes::copy_from_slice(jpeg);
    let frame =
        tokio::task::spawn_blocking(move || preparer.prepare(data, Some(ImageFormat::Jpeg)))
            .await?;
    Ok(FrameInput {
        frame_index: index as u64,
        captured_at_ms: at_ms,
        frame,
    })
}

pub(crate) async fn gate(args: GateBenchArgs) -> Result<()> {
    let (video, stretches) = (args.video.clone(), args.stretches);
    let (footage, jpegs) = tokio::task::spawn_blocking(move || -> Result<_> {
        let footage = gate_footage(&video, stretches)?;
        let jpegs: Vec<Vec<u8>> = footage
            .frames
            .iter()
            .map(|m| encode_jpeg(m, 80))
            .collect::<Result<_, _>>()?;
        Ok((footage, jpegs))
    })
    .await??;
    println!(
        "input: {} at 1 frame/s: {} frames, {} busy stretches of 8 s between idle stretches of 20 s, a blinking sign, an exposure step; machine: {} cores",
        args.video.display(),
        jpegs.len(),
        footage.busy.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "fixed 1 frame/s sampling would call the describer {} times",
        jpegs.len()
    );
    for (name, detector) in [
        ("people gate (detector ssd)", DetectorChoice::Ssd),
        ("pixel gate (detector off) ", DetectorChoice::Off),
    ] {
        let dir = temp_dir("gate");
        let mut config = PipelineConfig::default();
        config.perception.detector = detector;
        config.analysis.model = None;
        let crow = start(config, &dir).await?;
        let mut router = crow.pipeline().sessions().router("bench", "shop")?;
        let preparer = crow.pipeline().sessions().preparer();
        let mut described = Vec::new();
        for (i, j) in jpegs.iter().enumerate() {
            let frame = input(preparer, i, 1_700_000_000_000 + i as i64 * 1000, j).await?;
            let ack = router.submit(None, frame).await?;
            if ack.outcome == FrameOutcome::Accepted {
                described.push(i);
            }
        }
        crow.shutdown().await;
        drop(crow);
        remove_when_released(&dir).await;
        let idle = described.iter().filter(|i| !footage.is_busy(**i)).count();
        let missed = footage
            .busy
            .iter()
            .filter(|r| !described.iter().any(|i| r.contains(i)))
            .count();
        println!(
            "{name}: {:3} describer calls / {} frames = {:.3} (goal <= 0.1), idle frames described {idle}, busy stretches missed {missed}",
            described.len(),
            jpegs.len(),
            described.len() as f64 / jpegs.len() as f64
        );
    }
    Ok(())
}

pub(crate) async fn detector(args: DetectorBenchArgs) -> Result<()> {
    let (video, frames, model) = (args.video.clone(), args.frames, args.model.clone());
    let (jpegs, ssd_fps, hog_fps, ssd_people, hog_people, floor) =
        tokio::task::spawn_blocking(move || -> Result<_> {
            let images: Vec<Mat> = MediaReader::open(&video, None)?
                .take(frames)
                .map(|f| f.map(|f| f.image))
                .collect::<Result<_, _>>()?;
            anyhow::ensure!(!images.is_empty(), "no frames in {}", video.display());
            // One core: OpenCV would otherwise spread one call over every core.
            cvcore::set_num_threads(1)?;
            let bytes = std::fs::read(&model).with_context(|| {
                format!("{} (scripts/setup-models.sh installs it)", model.display())
            })?;
            let filter = DetectionFilter::with_min_score(0.5);
            let measure = |mut d: PersonDetector| -> Result<(f64, f64)> {
                d.detect(&images[0], &filter)?;
                let start = Instant::now();
                let mut people = 0;
                for m in &images {
                    people += d.detect(m, &filter)?.len();
                }
                Ok((
                    images.len() as f64 / start.elapsed().as_secs_f64(),
                    people as f64 / images.len() as f64,
                ))
            };
            let (ssd_fps, ssd_people) = measure(PersonDetector::ssd(&bytes)?)?;
            let (hog_fps, hog_people) = measure(PersonDetector::hog()?)?;
            let jpegs: Vec<Vec<u8>> = images
                .iter()
                .map(|m| encode_jpeg(m, 80))
                .collect::<Result<_, _>>()?;
            let start = Instant::now();
            for j in &jpegs {
                let m = imgcodecs::imdecode(&Mat::from_slice(j)?, imgcodecs::IMREAD_COLOR)?;
                anyhow::ensure!(!m.empty(), "frame does not decode");
            }
            let floor = jpegs.len() as f64 / start.elapsed().as_secs_f64();
            cvcore::set_num_threads(-1)?;
            Ok((jpegs, ssd_fps, hog_fps, ssd_people, hog_people, floor))
        })
        .await??;
    println!(
        "input: {} ({} frames), machine: {} cores, one OpenCV thread per detector call",
        args.video.display(),
        jpegs.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("ssd   SSDLite-MobileNetV2 person, 300x300: {ssd_fps:7.1} frames/s per core, {ssd_people:.2} people per frame (score >= 0.5)");
    println!("hog   OpenCV HOG people detector:          {hog_fps:7.1} frames/s per core, {hog_people:.2} people per frame");
    println!(
        "ratio ssd / hog frames/s:                  {:7.2}",
        ssd_fps / hog_fps
    );
    println!("floor opencv imdecode loop (1 thread):     {floor:7.1} frames/s");
    let on = pipeline_fps(&jpegs, DescriberKind::Off, DetectorChoice::Ssd).await?;
    println!("pipeline gRPC loopback, detector on, describer off: {on:7.1} frames/s");
    println!(
        "ratio pipeline with detection / floor (reported):   {:7.3}",
        on / floor
    );
    Ok(())
}

pub(crate) async fn analyzer(args: AnalyzerBenchArgs) -> Result<()> {
    let (video, seconds) = (args.video.clone(), args.seconds);
    let jpegs = tokio::task::spawn_blocking(move || -> Result<Vec<Vec<u8>>> {
        MediaReader::open(&video, Some(1.0))?
            .take(seconds)
            .map(|f| Ok(encode_jpeg(&f?.image, 80)?))
            .collect()
    })
    .await??;
    anyhow::ensure!(!jpegs.is_empty(), "no frames in {}", args.video.display());
    let dir = temp_dir("analyzer");
    let crow = start(PipelineConfig::default(), &dir).await?;
    let pipeline = crow.pipeline().clone();
    anyhow::ensure!(
        pipeline.record_services().has_text_model(),
        "the text model is missing (scripts/setup-models.sh installs it)"
    );
    let catalog: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string("examples/catalog.json")?)?;
    let products: Vec<ProductInput> = catalog
        .iter()
        .map(|p| ProductInput {
            id: p["id"].as_str().unwrap_or_default().to_owned(),
            name: p["name"].as_str().unwrap_or_default().to_owned(),
            category: p["category"].as_str().unwrap_or_default().to_owned(),
            description: p["description"].as_str().unwrap_or_default().to_owned(),
            tags: Vec::new(),
            aliases: Vec::new(),
        })
        .collect();
    let first = products.first().map(|p| p.id.clone());
    pipeline
        .record_services()
        .upsert_products("bench", products)
        .await?;
    println!(
        "input: {} cameras x {} s of {} at 1 frame/s, the shipped detector, OpenCV describer and text model, a zone per camera mapped to a product; machine: {} cores",
        args.cameras,
        jpegs.len(),
        args.video.display(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..args.cameras {
        let camera = format!("cam-{c}");
        pipeline
            .record_services()
            .upsert_camera(CameraConfig {
                organization_id: "bench".into(),
                camera_id: camera.clone(),
                zones: vec![ZoneConfig {
                    id: "middle".into(),
                    polygon: vec![[0.3, 0.3], [0.7, 0.3], [0.7, 0.8], [0.3, 0.8]],
                    product_ids: first.iter().cloned().collect(),
                    min_dwell_ms: 2_000,
                }],
                lines: Vec::new(),
                masks: Vec::new(),
                detector_input: None,
                detector_tiles: None,
                updated_at_ms: 0,
            })
            .await?;
        let (pipeline, jpegs) = (pipeline.clone(), jpegs.clone());
        tasks.push(tokio::spawn(async move {
            let mut router = pipeline.sessions().router("bench", &camera)?;
            let preparer = pipeline.sessions().preparer();
            let mut session = String::new();
            for (i, j) in jpegs.iter().enumerate() {
                let frame = input(preparer, i, 1_700_000_000_000 + i as i64 * 1000, j).await?;
                let ack = router.submit(None, frame).await?;
                session = ack.session_id;
            }
            pipeline.sessions().close_session("bench", &session).await?;
            anyhow::Ok(session)
        }));
    }
    let mut sessions = Vec::new();
    for t in tasks {
        sessions.push(t.await??);
    }
    let ingested = started.elapsed().as_secs_f64();
    // Analysis is done when no batch of these sessions waits for its record.
    loop {
        let mut waiting = 0;
        for s in &sessions {
            waiting += pipeline.sessions().unanalyzed_batches(s).await?;
        }
        if waiting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wall = started.elapsed().as_secs_f64();
    let page = crow
        .store()
        .list_interactions("bench", &Default::default(), 500, None)?;
    let records = page.interactions;
    let model_calls = records
        .iter()
        .filter(|i| {
            i.data["matching"]["model"]
                .as_str()
                .is_some_and(|m| m.starts_with("proposed"))
        })
        .count();
    let with_products = records.iter().filter(|i| !i.product_ids.is_empty()).count();
    crow.shutdown().await;
    drop(crow);
    remove_when_released(&dir).await;
    let camera_seconds = (args.cameras * jpegs.len()) as f64;
    println!(
        "ingest done after {ingested:.1} s, every record written after {wall:.1} s: {} records ({model_calls} asked the text model, {with_products} with products)",
        records.len()
    );
    println!(
        "records/s {:.2}, camera frames/s produced at 1 frame/s by {} cameras: {}",
        records.len() as f64 / wall,
        args.cameras,
        args.cameras
    );
    println!(
        "ratio camera-seconds processed per wall second / cameras' real time (goal >= 1): {:.2}",
        camera_seconds / wall / args.cameras as f64
    );

    // The worst case: every batch's descriptions name catalog products, so every batch asks the text
    // model (as a vision-language describer's would). Batches/s of the model on 2 slots against the
    // batches/s these cameras produce.
    let needed = records.len() as f64 / jpegs.len() as f64;
    let model_path = PipelineConfig::default()
        .analysis
        .model
        .context("no text model configured")?;
    let per_call = tokio::task::spawn_blocking(move || -> Result<f64> {
        use crow::inference::llama::{CatalogProduct, LlamaSettings, TextGenerator, TextModel};
        let model = TextModel::load(
            &model_path,
            LlamaSettings {
                threads: 1,
                ..LlamaSettings::default()
            },
        )?;
        let catalog: Vec<CatalogProduct> = [
            ("sku-101", "Red running shoes (shoes)"),
            ("sku-303", "Winter jacket (apparel)"),
            ("sku-404", "Shopping basket (store)"),
        ]
        .iter()
        .map(|(id, name)| CatalogProduct {
            id: (*id).into(),
            name: (*name).into(),
        })
        .collect();
        let observations: Vec<(u64, String)> = [
            "A customer holds red running shoes near the shelf.",
            "Two people walk past the winter jacket rack.",
            "A woman puts red running shoes into a shopping basket.",
            "Nobody near the shelf.",
            "A man tries on a winter jacket.",
        ]
        .iter()
        .enumerate()
        .map(|(i, t)| (i as u64, (*t).to_owned()))
        .collect();
        model.match_products(&observations, &catalog)?;
        let runs = 3;
        let start = Instant::now();
        for _ in 0..runs {
            model.match_products(&observations, &catalog)?;
        }
        Ok(start.elapsed().as_secs_f64() / runs as f64)
    })
    .await??;
    let capacity = 2.0 / per_call;
    println!(
        "text model, every batch asks it: {per_call:.1} s per batch on 1 thread, {capacity:.2} batches/s on the 2 slots; these cameras produce {needed:.2} batches/s"
    );
    println!(
        "ratio model capacity / batches produced (worst case, goal >= 1): {:.2}",
        capacity / needed
    );
    Ok(())
}
