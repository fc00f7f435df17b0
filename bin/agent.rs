//! `crow agent`: run the on-premise CCTV daemon, or check its configuration and probe its cameras.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use crow::agent::config::{AgentConfig, SourceKind};
use crow::inference::{redact_url, LiveCapture, MediaReader};

use crate::ServerArg;

#[derive(Subcommand)]
pub(crate) enum AgentCommand {
    /// Pull the cameras of the configuration, spool every frame on disk, forward the spool to the server.
    Run(RunArgs),
    /// Check the configuration and probe every camera once (codec, resolution, frame rate).
    Check(CheckArgs),
    /// One line per camera of the running agent: up or down, last frame, spool, counts. Exits 1 when
    /// the agent is not running or a camera is down.
    Status(StatusArgs),
}

#[derive(Args)]
pub(crate) struct StatusArgs {
    /// The agent's TOML configuration (its `spool_dir` holds the status).
    #[arg(long)]
    config: PathBuf,
    /// Print the status as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct RunArgs {
    /// The agent's TOML configuration (see examples/agent.toml); `CROW_AGENT_*` variables override it.
    #[arg(long)]
    config: PathBuf,
    /// Exit once every camera's source has ended (files, folders) and the server acknowledged every
    /// spooled frame, instead of running until SIGTERM or Ctrl-C.
    #[arg(long)]
    exit_when_done: bool,
    /// Prometheus metrics listen address (frames captured, sent, dropped; cameras up; spool).
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// TLS and credentials towards the server (its URL is the configuration's `server`).
    #[command(flatten)]
    server: ServerArg,
}

#[derive(Args)]
pub(crate) struct CheckArgs {
    /// The agent's TOML configuration.
    #[arg(long)]
    config: PathBuf,
}

pub(crate) async fn agent(command: AgentCommand) -> Result<()> {
    match command {
        AgentCommand::Run(args) => run(args).await,
        AgentCommand::Check(args) => check(args).await,
        AgentCommand::Status(args) => status(args),
    }
}

fn status(args: StatusArgs) -> Result<()> {
    let config = AgentConfig::load(&args.config)?;
    let status = crow::agent::status::read(&config.spool_dir)?;
    let now = crow::storage::now_ms();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        for line in status.lines(now) {
            println!("{line}");
        }
    }
    if !status.is_live(now) || status.cameras.iter().any(|c| !c.up) {
        return Err(crate::Reported.into());
    }
    Ok(())
}

async fn run(args: RunArgs) -> Result<()> {
    let config = AgentConfig::load(&args.config)?;
    if let Some(addr) = args.metrics_listen {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()
            .with_context(|| format!("starting the metrics exporter on {addr}"))?;
    }
    let credentials = args.server.credentials()?;
    tracing::info!(
        server = %config.server,
        cameras = config.cameras.len(),
        spool = %config.spool_dir.display(),
        "agent starting"
    );
    let reports = crow::agent::run(
        config,
        credentials,
        args.exit_when_done,
        crate::serve::shutdown_signal(),
    )
    .await?;
    for r in reports {
        println!(
            "{}: {} frames acknowledged by the server, {} waiting in the spool, {} dropped (spool full)",
            r.camera, r.acknowledged, r.spooled, r.dropped
        );
    }
    Ok(())
}

async fn check(args: CheckArgs) -> Result<()> {
    let config = AgentConfig::load(&args.config)?;
    println!(
        "configuration ok: {} cameras, server {}, spool {}",
        config.cameras.len(),
        config.server,
        config.spool_dir.display()
    );
    let mut failed = 0;
    for camera in config.cameras {
        let shown = redact_url(&camera.url);
        let name = format!("{}/{}", camera.organization_id, camera.camera_id);
        let (open_ms, read_ms) = (config.open_timeout_ms, config.read_timeout_ms);
        let probe = tokio::task::spawn_blocking(move || probe(&camera, open_ms, read_ms))
            .await
            .context("camera probe")?;
        match probe {
            Ok(what) => println!("[ ok ] {name} {shown}: {what}"),
            Err(why) => {
                failed += 1;
                println!("[FAIL] {name} {shown}: {why}");
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} cameras failed their probe");
        return Err(crate::Reported.into());
    }
    Ok(())
}

/// Opens a camera once and says what it serves.
fn probe(
    camera: &crow::agent::config::CameraSource,
    open_ms: u32,
    read_ms: u32,
) -> Result<String, String> {
    match camera.kind {
        SourceKind::Snapshot => {
            let response = reqwest::blocking::Client::builder()
                .timeout(std::time::Duration::from_millis(u64::from(read_ms)))
                .build()
                .map_err(|e| e.to_string())?
                .get(&camera.url)
                .send()
                .map_err(|e| {
                    if e.is_timeout() {
                        "timed out"
                    } else {
                        "cannot connect"
                    }
                    .to_owned()
                })?;
            let status = response.status();
            let bytes = response.bytes().map_err(|_| "the body broke".to_owned())?;
            if !status.is_success() || !bytes.starts_with(&[0xFF, 0xD8]) {
                return Err(format!("answered {status} without a JPEG"));
            }
            Ok(format!("snapshot, JPEG of {} bytes", bytes.len()))
        }
        SourceKind::Stream if std::path::Path::new(&camera.url).exists() => {
            let reader =
                MediaReader::open(&camera.url, Some(camera.fps)).map_err(|e| e.to_string())?;
            Ok(format!(
                "media, {} frames at {} fps",
                reader.total_hint().map_or("?".into(), |n| n.to_string()),
                camera.fps
            ))
        }
        SourceKind::Stream => {
            // Read the way the daemon reads it: one frame through the same pipeline.
            let options = camera.live_options(open_ms, read_ms);
            let mut capture =
                LiveCapture::open(&camera.url, &options).map_err(|e| e.to_string())?;
            capture.read().map_err(|e| e.to_string())?;
            let info = capture.info();
            let how = if camera.url.starts_with("rtsp") {
                format!(
                    ", {} over {}, decoding {}",
                    if info.fps > 0.0 {
                        ""
                    } else {
                        "rate not announced"
                    },
                    match camera.transport {
                        crow::agent::config::Transport::Tcp => "TCP",
                        crow::agent::config::Transport::Udp => "UDP",
                    },
                    match camera.decode {
                        crow::agent::config::DecodeChoice::Auto =>
                            "key frames while frequent enough",
                        crow::agent::config::DecodeChoice::KeyFrames => "key frames only",
                        crow::agent::config::DecodeChoice::Full => "every frame",
                    }
                )
                .replace(",  over", ", over")
            } else {
                String::new()
            };
            Ok(format!(
                "stream, {} {}x{} at {:.1} fps{how}",
                info.codec.as_deref().unwrap_or("unknown codec"),
                info.width,
                info.height,
                info.fps
            ))
        }
    }
}
