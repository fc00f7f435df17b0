//! `crow bench describe`: crow's vision describer against llama.cpp's own llama-mtmd-cli on the same
//! image, prompt and model.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use crow::inference::opencv::prelude::*;

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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// crow's vision path and text model, then llama-mtmd-cli on the same image and prompt. Compared per phase:
/// prompt (image encode + image/text decode) and generation (ms per token), since the two may stop after a
/// different number of tokens.
pub(super) fn describe(args: DescribeBenchArgs) -> Result<()> {
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
