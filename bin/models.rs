//! `crow describe` (frames described with the configured or a given vision model) and `crow models`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use crow::{Config, DescriberKind};

#[derive(Args)]
pub(crate) struct DescribeArgs {
    /// Video file, image, or folder of images.
    path: PathBuf,
    /// GGUF language model (with --mmproj: use the llama.cpp vision describer).
    #[arg(long, requires = "mmproj")]
    model: Option<PathBuf>,
    /// GGUF multimodal projector made for --model.
    #[arg(long, requires = "model")]
    mmproj: Option<PathBuf>,
    /// TOML configuration file (its [pipeline] describer and [pipeline.llama] models are used).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Frames per second of footage to describe (0: every frame).
    #[arg(long, default_value_t = 1.0)]
    fps: f64,
    /// Describe at most this many frames.
    #[arg(long, default_value_t = 10)]
    max_frames: usize,
}

#[derive(Subcommand)]
pub(crate) enum ModelsCommand {
    /// List GGUF files in the models directory and the configured models.
    List {
        /// TOML configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Models directory to scan.
        #[arg(long, default_value = "models")]
        dir: PathBuf,
    },
}

pub(crate) async fn describe(args: DescribeArgs) -> Result<()> {
    use crow::inference::llama::{LlamaSettings, VisionModel};
    use crow::inference::{DescribeInput, FrameDescriber, MediaReader, OpenCvSceneDescriber};

    let config = Config::load(args.config.as_deref())?;
    let llama = &config.pipeline.llama;
    let (model, mmproj) = match (args.model, args.mmproj) {
        (Some(m), Some(p)) => (Some(m), Some(p)),
        _ if config.pipeline.describer == DescriberKind::Llama => {
            (Some(llama.model.clone()), Some(llama.mmproj.clone()))
        }
        _ => (None, None),
    };
    let settings = LlamaSettings {
        threads: llama.threads,
        n_ctx: llama.n_ctx,
        max_tokens: llama.max_tokens,
    };
    let prompt = llama.prompt.clone();
    let remote = (config.pipeline.describer == DescriberKind::Remote)
        .then(|| config.pipeline.remote.clone());
    let path = args.path.clone();
    let fps = (args.fps > 0.0).then_some(args.fps);
    tokio::task::spawn_blocking(move || -> Result<()> {
        let mut describer: Box<dyn FrameDescriber> = match (model, mmproj) {
            (Some(m), Some(p)) => {
                let start = std::time::Instant::now();
                let vision = VisionModel::load(&m, &p, prompt, settings)?;
                eprintln!(
                    "loaded {} + {} in {:.0} ms",
                    m.display(),
                    p.display(),
                    start.elapsed().as_secs_f64() * 1000.0
                );
                Box::new(vision.describer()?)
            }
            _ => match remote {
                Some(r) => Box::new(crow::inference::remote::RemoteDescriber::new(
                    crow::inference::remote::ServerPool::new(r)?,
                )),
                None => Box::new(OpenCvSceneDescriber::new()?),
            },
        };
        let mut previous: Option<crow::inference::Mat> = None;
        for frame in MediaReader::open(&path, fps)?.take(args.max_frames) {
            let frame = frame?;
            let start = std::time::Instant::now();
            let d = describer.describe(DescribeInput {
                image: &frame.image,
                previous: previous.as_ref(),
                frame_index: frame.index,
                captured_at_ms: frame.position_ms,
                people: None,
            })?;
            let ms = start.elapsed().as_secs_f64() * 1000.0;
            println!(
                "frame {} @ {} ms  [{}]  {:.0} ms\n    {}",
                frame.index,
                frame.position_ms,
                describer.name(),
                ms,
                d.text
            );
            if let Some(tokens) = d.details.get("generated_tokens") {
                println!(
                    "    tokens: image {} prompt {} generated {}",
                    d.details["image_tokens"], d.details["prompt_tokens"], tokens
                );
            }
            previous = Some(frame.image);
        }
        Ok(())
    })
    .await??;
    Ok(())
}

pub(crate) fn models_list(config: Option<PathBuf>, dir: PathBuf) -> Result<()> {
    let config = Config::load(config.as_deref())?;
    println!("configured describer: {:?}", config.pipeline.describer);
    for (role, path) in [
        ("model", &config.pipeline.llama.model),
        ("mmproj", &config.pipeline.llama.mmproj),
    ] {
        let state = match crow::inference::gguf::read_header(path) {
            Ok(h) => format!(
                "ok, architecture {}",
                h.str("general.architecture").unwrap_or("?")
            ),
            Err(e) => format!("unusable: {e}"),
        };
        println!("  llama.{role:<7} {}  ({state})", path.display());
    }
    println!("installed in {}:", dir.display());
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
        .collect();
    entries.sort();
    for p in entries {
        let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        let arch = crow::inference::gguf::read_header(&p)
            .map(|h| {
                let a = h.str("general.architecture").unwrap_or("?").to_owned();
                match h.int("clip.vision.projection_dim") {
                    Some(d) => format!("{a} (projector, output {d})"),
                    None => a,
                }
            })
            .unwrap_or_else(|e| format!("not GGUF: {e}"));
        println!(
            "  {:<40} {:>8.1} MB  {}",
            p.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            size as f64 / 1e6,
            arch
        );
    }
    Ok(())
}
