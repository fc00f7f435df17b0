//! `crow bench truth`: crow's counts against footage with exact truth (real people from VIDEO composed
//! along scripted paths on the scene's own background), at several scales and crowd sizes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use clap::{Args, ValueEnum};
use crow::inference::opencv::prelude::*;
use crow::inference::truth_footage::{truth_footage, PersonScale, TruthFootage, TruthSpec};
use crow::PipelineConfig;

use super::scratch::{remove_when_released, temp_dir};

/// How tall people appear (in a 576 px tall frame).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Scale {
    /// 130-280 px.
    Large,
    /// 70-130 px, as in vtest.avi.
    Vtest,
    /// 50-90 px.
    Small,
}

impl From<Scale> for PersonScale {
    fn from(s: Scale) -> PersonScale {
        match s {
            Scale::Large => PersonScale::Large,
            Scale::Vtest => PersonScale::Vtest,
            Scale::Small => PersonScale::Small,
        }
    }
}

#[derive(Args)]
pub(crate) struct TruthBenchArgs {
    /// A video of people walking (its people are cut out against its median background).
    #[arg(default_value = "examples/data/vtest.avi")]
    video: PathBuf,
    /// Seconds of footage per scenario.
    #[arg(long, default_value_t = 600)]
    seconds: u32,
    /// Frames per second streamed.
    #[arg(long, default_value_t = 1.0)]
    fps: f64,
    /// One scenario at this scale (with --max-in-view); default: large with 3 in view, vtest with 3
    /// and with 8, small with 8.
    #[arg(long, value_enum)]
    scale: Option<Scale>,
    /// People in view at once, at most (with --scale).
    #[arg(long, default_value_t = 8)]
    max_in_view: usize,
    /// Busy and idle seconds alternating, e.g. 60:240 (default: busy throughout).
    #[arg(long, value_parser = parse_bursts)]
    bursts: Option<(u32, u32)>,
    /// Script seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The SSD's input size, WIDTHxHEIGHT pixels (perception.detector_input).
    #[arg(long, value_parser = crate::parse_size, default_value = "300x300")]
    detector_input: [u32; 2],
    /// Tiles the detector also looks at, COLUMNSxROWS (perception.detector_tiles).
    #[arg(long, value_parser = crate::parse_size, default_value = "1x1")]
    detector_tiles: [u32; 2],
    /// Turn the near-duplicate gate off (duplicate_threshold = 0): the detector sees every frame, to
    /// check that what the gate skips changes no count.
    #[arg(long)]
    no_duplicate_gate: bool,
    /// Also write every 10th frame of each scenario here as PNG, the true boxes drawn (green: in
    /// full view, yellow: partly hidden, red: mostly hidden).
    #[arg(long)]
    save_frames: Option<PathBuf>,
    /// Instead of composed footage: the detector against people boxed by hand on VIDEO's own frames
    /// (e.g. tests/data/truth/vtest-people.json), at 300x300, 640x480 and --detector-input, with and
    /// without the box shape rule, and at 300x300 with 2x2 tiles.
    #[arg(long)]
    labelled: Option<PathBuf>,
}

/// The detector on hand-labelled real frames, per input size, with and without the shape rule.
fn labelled(labels: &Path, video: &Path, input: [u32; 2]) -> Result<()> {
    use anyhow::Context;
    use crow::inference::{DetectionFilter, PersonDetector};
    let text =
        std::fs::read_to_string(labels).with_context(|| format!("reading {}", labels.display()))?;
    let labelled: crow::truth::LabelledFrames =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", labels.display()))?;
    anyhow::ensure!(
        video.file_name().is_some_and(|n| *n == *labelled.video),
        "{} labels frames of {}, not of {}",
        labels.display(),
        labelled.video,
        video.display()
    );
    let people: usize = labelled.frames.iter().map(|f| f.people.len()).sum();
    println!(
        "input: {people} people boxed by hand on {} frames of {} ({} frame/s samples); machine: {} cores",
        labelled.frames.len(),
        video.display(),
        labelled.sample_fps,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let config = PipelineConfig::default();
    let model = std::fs::read(&config.perception.model).with_context(|| {
        format!(
            "{} (scripts/setup-models.sh installs it)",
            config.perception.model.display()
        )
    })?;
    let mut inputs = vec![[300, 300], [640, 480]];
    if !inputs.contains(&input) {
        inputs.push(input);
    }
    for size in inputs {
        let mut detector = PersonDetector::ssd_with_input(&model, size)?;
        for rule in [true, false] {
            let filter = DetectionFilter {
                min_score: config.perception.min_score,
                max_width_to_height: if rule {
                    config.perception.max_width_to_height
                } else {
                    f32::MAX
                },
            };
            let report =
                crow::truth::measure_labelled(&labelled, video, &mut detector, &filter, [1, 1])?;
            println!(
                "  {}x{}, shape rule {}: {report}",
                size[0],
                size[1],
                if rule { "on " } else { "off" }
            );
        }
    }
    let mut detector = PersonDetector::ssd_with_input(&model, [300, 300])?;
    let filter = DetectionFilter {
        min_score: config.perception.min_score,
        max_width_to_height: config.perception.max_width_to_height,
    };
    let report = crow::truth::measure_labelled(&labelled, video, &mut detector, &filter, [2, 2])?;
    println!("  300x300 + 2x2 tiles, shape rule on : {report}");
    Ok(())
}

/// Writes every 10th frame with its true boxes to `dir`.
fn save_frames(footage: &TruthFootage, dir: &Path, prefix: &str) -> Result<()> {
    use crow::inference::opencv::{core, imgcodecs, imgproc};
    std::fs::create_dir_all(dir)?;
    for i in (0..footage.frame_count()).step_by(10) {
        let (mut image, people) = footage.frame(i)?;
        let (w, h) = (image.cols() as f32, image.rows() as f32);
        for p in &people {
            let colour = if p.visible >= 0.9 {
                core::Scalar::new(0.0, 255.0, 0.0, 0.0)
            } else if p.visible >= 0.5 {
                core::Scalar::new(0.0, 255.0, 255.0, 0.0)
            } else {
                core::Scalar::new(0.0, 0.0, 255.0, 0.0)
            };
            let b = p.bbox;
            imgproc::rectangle(
                &mut image,
                core::Rect::new(
                    (b.x * w) as i32,
                    (b.y * h) as i32,
                    (b.w * w) as i32,
                    (b.h * h) as i32,
                ),
                colour,
                1,
                imgproc::LINE_8,
                0,
            )?;
        }
        let path = dir.join(format!("{prefix}-{i:05}.png"));
        imgcodecs::imwrite(&path, &image, &core::Vector::new())?;
    }
    Ok(())
}

fn parse_bursts(s: &str) -> Result<(u32, u32), String> {
    let [busy, idle] = crate::parse_pair(s, ':', "BUSY:IDLE seconds, e.g. 60:240")?;
    Ok((busy, idle))
}

pub(crate) async fn run(args: TruthBenchArgs) -> Result<()> {
    if let Some(labels) = &args.labelled {
        let (labels, video, input) = (labels.clone(), args.video.clone(), args.detector_input);
        return tokio::task::spawn_blocking(move || labelled(&labels, &video, input)).await?;
    }
    let scenarios: Vec<(Scale, usize)> = match args.scale {
        Some(scale) => vec![(scale, args.max_in_view)],
        None => vec![
            (Scale::Large, 3),
            (Scale::Vtest, 3),
            (Scale::Vtest, 8),
            (Scale::Small, 8),
        ],
    };
    println!(
        "input: people cut out of {} walking scripted paths on its background; {} s per scenario at {} frames/s; door line x = 0.5, display zone right of it; detector input {}x{}, tiles {}x{}; machine: {} cores",
        args.video.display(),
        args.seconds,
        args.fps,
        args.detector_input[0],
        args.detector_input[1],
        args.detector_tiles[0],
        args.detector_tiles[1],
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for (scale, max_in_view) in scenarios {
        let spec = TruthSpec {
            seconds: args.seconds,
            fps: args.fps,
            max_in_view,
            scale: scale.into(),
            bursts: args.bursts,
            seed: args.seed,
        };
        let video = args.video.clone();
        let footage =
            Arc::new(tokio::task::spawn_blocking(move || truth_footage(&video, spec)).await??);
        let acts: Vec<String> = footage
            .acts()
            .iter()
            .map(|(a, n)| format!("{n} {a:?}"))
            .collect();
        println!(
            "\nscenario: {scale:?} people, up to {max_in_view} in view ({})",
            acts.join(", ").to_lowercase()
        );
        if let Some(dir) = &args.save_frames {
            let (footage, dir) = (Arc::clone(&footage), dir.clone());
            let prefix = format!("{scale:?}-{max_in_view}").to_lowercase();
            tokio::task::spawn_blocking(move || save_frames(&footage, &dir, &prefix)).await??;
        }
        let dir = temp_dir("truth");
        let mut config = PipelineConfig::default();
        config.perception.detector_input = args.detector_input;
        config.perception.detector_tiles = args.detector_tiles;
        if args.no_duplicate_gate {
            config.duplicate_threshold = 0.0;
        }
        let report = crow::truth::measure(footage, config, &dir).await;
        remove_when_released(&dir).await;
        println!("{}", report?);
    }
    Ok(())
}
