//! `crow`: the server and its command-line client.

mod bench;
mod cameras;
mod doctor;
mod records;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use crow::client::{self, StreamOptions};
use crow::proto::{self, CloseSessionRequest, GetSessionRequest};
use crow::{Config, Crow, DescriberKind};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(
    name = "crow",
    version,
    about = "Turns camera streams into customer-interaction records."
)]
struct Cli {
    /// Log format on stderr: text, or json (one object per line, for log shippers).
    #[arg(long, global = true, default_value = "text", env = "CROW_LOG_FORMAT", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gRPC server.
    Serve(ServeArgs),
    /// Stream a video file, an image or a folder of images to a server as a camera.
    Stream(StreamArgs),
    /// Create, get and list interaction records.
    #[command(subcommand)]
    Interactions(records::InteractionsCommand),
    /// Count an organization's interactions per source.
    Summary(records::SummaryArgs),
    /// Events whose processing failed on every attempt.
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(records::DeadLettersCommand),
    /// The product catalog the CCTV analyzer matches against.
    #[command(subcommand)]
    Products(records::ProductsCommand),
    /// Zones (mapped to catalog products), tripwires and motion masks per camera.
    #[command(subcommand)]
    Cameras(cameras::CamerasCommand),
    /// Analyse an organization's interactions with the text model (or fetch an earlier analysis).
    Analyze(records::AnalyzeArgs),
    /// Ask a question about an organization's records: the answer cites the records behind each
    /// statement (with their keyframes), or says that none was found.
    Ask(records::AskArgs),
    /// Print CCTV pattern events of an organization as they are written.
    Watch(records::WatchArgs),
    /// Inspect or close a session.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Describe each frame of a video, an image or a folder with the configured describer, or with a
    /// llama.cpp vision model given by --model/--mmproj, printing the time each frame took.
    Describe(DescribeArgs),
    /// Models: what is installed and configured.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Mint an HS256 token with the configured secret (CROW_JWT_SECRET or [auth] secret).
    Token(TokenArgs),
    /// The configuration file: print the documented defaults, or check a file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Check OpenCV, models (files, checksums, projector fit), the data directory, free disk, ports,
    /// TLS files and authentication, and print what to fix. Exits 1 if anything fails.
    Doctor(doctor::DoctorArgs),
    /// Benchmarks that print ratios measured in one run.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Check a stopped server's database offline (after a crash, before a restart): every record
    /// decodes, sits where its content says, and indexes, counters and sessions add up. Reads only.
    /// Exits 1 if anything is broken.
    Verify(VerifyArgs),
    /// Print the OpenAPI 3.1 document of the HTTP/JSON API (also served at /openapi.json).
    Openapi,
}

#[derive(Args)]
struct VerifyArgs {
    /// Directory of the database [default: the configuration's data_dir, crow-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// TOML configuration file (its data_dir).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    /// TOML configuration file (see `crow::Config`); `CROW_*` environment variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directory of the database [default: crow-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// gRPC listen address [default: 127.0.0.1:50051]; port 0 picks a free port (printed at start).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Prometheus metrics listen address [default: 127.0.0.1:9464].
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Do not export metrics.
    #[arg(long)]
    no_metrics: bool,
    /// Development mode: no authentication (every caller may act for every organization). Never use
    /// it on a network.
    #[arg(long)]
    dev: bool,
    /// Frame describer: opencv (embedded default), llama ([pipeline.llama] models), remote
    /// ([pipeline.remote] server) or off.
    #[arg(long, value_parser = parse_describer)]
    describer: Option<DescriberKind>,
    /// Role in a cluster: all (one process, the default), ingest (camera streams; batches to NATS),
    /// analyze (batches and events into records), api (queries) or infer (an OpenAI-compatible inference
    /// server over the configured models, for other nodes' remote describer and text tasks; see [infer]);
    /// see [pipeline.cluster].
    #[arg(long)]
    role: Option<crow::actors::Role>,
}

fn parse_describer(s: &str) -> Result<DescriberKind, String> {
    match s {
        "opencv" => Ok(DescriberKind::Opencv),
        "llama" => Ok(DescriberKind::Llama),
        "remote" => Ok(DescriberKind::Remote),
        "off" => Ok(DescriberKind::Off),
        other => Err(format!(
            "unknown describer {other:?}; expected opencv or off"
        )),
    }
}

#[derive(Args)]
struct TokenArgs {
    /// Organization the token grants (repeatable).
    #[arg(long = "org", required = true)]
    orgs: Vec<String>,
    /// admin, analyst, camera or viewer.
    #[arg(long, default_value = "admin")]
    role: String,
    /// Lifetime, e.g. 30m, 1h, 7d.
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    ttl: u64,
    /// Subject.
    #[arg(long, default_value = "crow-cli")]
    sub: String,
    /// TOML configuration file (its [auth] issuer, audience and secret).
    #[arg(long)]
    config: Option<PathBuf>,
}

fn parse_ttl(s: &str) -> Result<u64, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("bad duration {s:?}; e.g. 30m, 1h, 7d"))?;
    let scale = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("bad duration unit in {s:?}; use s, m, h or d")),
    };
    Ok(n * scale)
}

#[derive(Args, Clone)]
pub(crate) struct ServerArg {
    /// Server URL: http://HOST:PORT, or https://HOST:PORT for a server that serves TLS.
    #[arg(long, default_value = "http://127.0.0.1:50051", env = "CROW_SERVER")]
    pub(crate) server: String,
    /// PEM CA certificate that signed the server's certificate (https:// servers).
    #[arg(long, env = "CROW_TLS_CA")]
    ca: Option<PathBuf>,
    /// PEM client certificate, for servers that require one (with --key).
    #[arg(long, env = "CROW_TLS_CERT", requires = "key")]
    cert: Option<PathBuf>,
    /// PEM private key of --cert.
    #[arg(long, env = "CROW_TLS_KEY", requires = "cert")]
    key: Option<PathBuf>,
}

impl ServerArg {
    /// `CROW_TOKEN` / `CROW_GATEWAY_KEY`, and the TLS files given.
    pub(crate) fn credentials(&self) -> Result<client::Credentials> {
        let tls = crow::tls::ClientTls::from_paths(
            self.ca.as_deref(),
            self.cert.as_deref(),
            self.key.as_deref(),
        )?;
        Ok(client::Credentials::from_env().with_tls(tls))
    }
}

#[derive(Args)]
struct StreamArgs {
    /// Video file, image, or folder of images.
    path: PathBuf,
    /// Organization id.
    #[arg(long)]
    org: String,
    /// Camera id.
    #[arg(long)]
    camera: String,
    /// Add the frames to this session instead of the camera's open one.
    #[arg(long)]
    session: Option<String>,
    /// Frames per second of footage to send (0 sends every frame).
    #[arg(long, default_value_t = 2.0)]
    fps: f64,
    /// JPEG quality of the frames sent (1-100).
    #[arg(long, default_value_t = 80)]
    quality: i32,
    /// Capture time of the first frame, ms since the Unix epoch [default: now].
    #[arg(long)]
    start_ms: Option<i64>,
    /// Index of the first frame sent (to resume a stream).
    #[arg(long, default_value_t = 0)]
    first_index: u64,
    /// Send at most this many frames.
    #[arg(long)]
    max_frames: Option<u64>,
    /// Leave the session open at the end instead of closing it (closing flushes the last batch).
    #[arg(long)]
    keep_open: bool,
    #[command(flatten)]
    server: ServerArg,
}

#[derive(Args)]
struct DescribeArgs {
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
enum ConfigCommand {
    /// Print every setting with its default, its meaning and its environment variable (TOML).
    Default,
    /// Check a TOML file: every unknown key and bad value, with its line. Exits 1 if any.
    Check {
        /// The file to check.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
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

#[derive(Subcommand)]
enum SessionCommand {
    /// Show a session and its counters.
    Get(SessionArgs),
    /// Close a session (flushes its last batch).
    Close(SessionArgs),
    /// Save the keyframe of a described frame (the image evidence of its interaction).
    Keyframe(KeyframeArgs),
}

#[derive(Args)]
struct KeyframeArgs {
    /// Session id.
    id: String,
    /// Organization id.
    #[arg(long)]
    org: String,
    /// Frame index within the session.
    #[arg(long)]
    frame: u64,
    /// File to write (JPEG or PNG, as the camera sent it).
    #[arg(long, short)]
    output: PathBuf,
    #[command(flatten)]
    server: ServerArg,
}

#[derive(Args)]
struct SessionArgs {
    /// Session id.
    id: String,
    /// Organization id.
    #[arg(long)]
    org: String,
    #[command(flatten)]
    server: ServerArg,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_) | Command::Bench(_)) {
        die_quietly_on_closed_pipe();
    }
    let filter = || {
        // hnsw_rs reports every graph it creates at info: noise in crow's log.
        tracing_subscriber::EnvFilter::try_from_env("CROW_LOG")
            .unwrap_or_else(|_| "info,hnsw_rs=warn".into())
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr);
    if cli.log_format == "json" {
        // One JSON object per line: the event's fields at the top level, the fields of the spans it
        // happened in (org_id, camera_id, session_id) in "spans".
        logs.json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .init();
    } else {
        logs.init();
    }
    match run(cli.command).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            match e.downcast_ref::<tonic::Status>() {
                // A call that failed: its code and message, with what a TLS failure means.
                Some(status) => eprintln!("Error: {}", client::explain_status(status)),
                None => eprintln!("Error: {e:?}"),
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// Client commands end quietly when their reader goes away (`crow interactions list | head`), as Unix
/// tools do: Rust ignores SIGPIPE, which turns a closed stdout into a panic in `println!`. Servers (and
/// benchmarks, which run one) keep ignoring it: their sockets report a closed peer as an error.
fn die_quietly_on_closed_pipe() {
    // SAFETY: restoring the default disposition of one signal, before any thread writes to a pipe.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Stream(args) => stream(args).await,
        Command::Interactions(cmd) => records::interactions(cmd).await,
        Command::Summary(args) => records::summary(args).await,
        Command::DeadLetters(cmd) => records::dead_letters(cmd).await,
        Command::Products(cmd) => records::products(cmd).await,
        Command::Cameras(cmd) => cameras::cameras(cmd).await,
        Command::Analyze(args) => records::analyze(args).await,
        Command::Ask(args) => records::ask(args).await,
        Command::Watch(args) => records::watch(args).await,
        Command::Session(cmd) => session(cmd).await,
        Command::Describe(args) => describe(args).await,
        Command::Models(ModelsCommand::List { config, dir }) => models_list(config, dir),
        Command::Token(args) => token(args),
        Command::Config(ConfigCommand::Default) => {
            print!("{}", crow::config::REFERENCE);
            Ok(())
        }
        Command::Config(ConfigCommand::Check { file }) => config_check(&file),
        Command::Doctor(args) => doctor::run(args),
        Command::Bench(cmd) => bench::run(cmd).await,
        Command::Verify(args) => verify(args),
        Command::Openapi => {
            println!("{}", crow::http::openapi::json());
            Ok(())
        }
    }
}

/// `crow verify`: [`crow::storage::Store::verify`] on a database no server has open.
fn verify(args: VerifyArgs) -> Result<()> {
    let dir = match args.data_dir {
        Some(dir) => dir,
        None => Config::load(args.config.as_deref())?.data_dir,
    };
    if !dir.is_dir() {
        anyhow::bail!("{} is not a crow data directory", dir.display());
    }
    // sled takes an exclusive lock: a running server's database cannot be opened (nor damaged) here.
    let store = crow::storage::Store::open(&dir).with_context(|| {
        format!(
            "opening {} (is a server still running on it? stop it first)",
            dir.display()
        )
    })?;
    let report = store.verify()?;
    println!(
        "{}: {} interactions, {} sessions, {} frames, {} batches",
        dir.display(),
        report.interactions,
        report.sessions,
        report.frames,
        report.batches
    );
    if report.is_sound() {
        println!("sound: every invariant holds");
        return Ok(());
    }
    for problem in &report.problems {
        println!("problem: {problem}");
    }
    anyhow::bail!("{} problem(s) in {}", report.problems.len(), dir.display())
}

async fn serve(args: ServeArgs) -> Result<()> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(addr) = args.metrics_listen {
        config.metrics_listen = Some(addr);
    }
    if args.no_metrics {
        config.metrics_listen = None;
    }
    if let Some(kind) = args.describer {
        config.pipeline.describer = kind;
    }
    if let Some(role) = args.role {
        config.pipeline.cluster.role = role;
    }
    if let Some(addr) = config.metrics_listen {
        use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
        // Histograms as Prometheus histograms (buckets), so that quantiles aggregate across servers.
        PrometheusBuilder::new()
            .with_http_listener(addr)
            // Every series says which kind of node it comes from (Prometheus adds the instance).
            .add_global_label("role", config.pipeline.cluster.role.as_str())
            .set_buckets_for_metric(
                Matcher::Suffix("_seconds".into()),
                &[
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                ],
            )?
            .set_buckets_for_metric(
                Matcher::Full("crow_batch_frames".into()),
                &[1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0],
            )?
            .install()
            .with_context(|| format!("starting the metrics exporter on {addr}"))?;
    }
    if config.pipeline.cluster.role == crow::actors::Role::Infer {
        return serve_infer(config, args.dev).await;
    }
    let auth = config.authenticator(args.dev)?;
    if args.dev {
        let warning = "DEVELOPMENT MODE: authentication is OFF; every caller may read and write every organization. Never expose this server.";
        eprintln!("\n*** {warning} ***\n");
        tracing::warn!("{warning}");
    }
    let tls = crow::tls::ServerTls::load(&config.tls).context("loading [tls]")?;
    if tls.is_none()
        && !config.listen.ip().is_loopback()
        && !args.dev
        && !config.tls.allow_plaintext
    {
        anyhow::bail!(
            "refusing to serve plaintext on {} (beyond loopback): set [tls] cert and key, or tls.allow_plaintext = true behind a TLS proxy, or use --dev",
            config.listen
        );
    }
    if let Some(tls) = &tls {
        let days = (tls.certificate.not_after_s - crow::storage::now_ms() / 1000) / 86_400;
        metrics::gauge!(crow::actors::metrics_names::TLS_CERT_EXPIRY_SECONDS)
            .set((tls.certificate.not_after_s - crow::storage::now_ms() / 1000) as f64);
        if days < 14 {
            tracing::warn!(days, subject = %tls.certificate.subject, "the server certificate expires soon");
        }
    }
    // Bind first and answer health checks (NOT_SERVING) while sled opens and models load.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let startup = crow::server::Startup::new(crow::server::ServeOptions {
        auth,
        tls,
        max_frame_bytes: config.pipeline.limits.max_frame_bytes,
        max_message_bytes: config.pipeline.limits.max_message_bytes,
        dashboard: config.dashboard,
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn({
        let startup = startup.clone();
        async move {
            startup
                .serve(listener, async {
                    let _ = stop_rx.await;
                })
                .await
        }
    });
    let signal = tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested: no new streams; finishing open ones");
        let _ = stop_tx.send(());
    });
    let crow = match Crow::from_config(&config).await {
        Ok(crow) => crow,
        Err(e) => {
            server.abort();
            return Err(e)
                .with_context(|| format!("starting crow on {}", config.data_dir.display()));
        }
    };
    startup.ready(crow.pipeline().clone()).await;
    // Scripts and tests read the first line to learn the address (port 0 picks a free one), once crow is
    // ready (health probes see NOT_SERVING before). Both lines go out in one write, so a reader that
    // stops after the first cannot break a later print.
    let mut banner = format!("crow listening on {scheme}://{addr}\n");
    if let Some(m) = config.metrics_listen {
        banner.push_str(&format!("crow metrics on http://{m}/metrics\n"));
    }
    if config.dashboard {
        banner.push_str(&format!("crow dashboard on {scheme}://{addr}/\n"));
    }
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        // Nobody reading stdout is not a reason to stop serving.
        let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    }
    tracing::info!(data_dir = %config.data_dir.display(), describer = ?config.pipeline.describer, %addr, "serving");
    let served = server.await;
    signal.abort();
    tracing::info!("server stopped; flushing sessions and waiting for analyses");
    let report = crow.shutdown().await;
    tracing::info!(?report, "shut down");
    match served {
        Ok(result) => result.context("serving")?,
        Err(e) => anyhow::bail!("server task failed: {e}"),
    }
    Ok(())
}

/// `crow serve --role infer`: the OpenAI-compatible inference server over the configured models.
async fn serve_infer(config: Config, dev: bool) -> Result<()> {
    if config.infer.api_key.is_none() && !config.listen.ip().is_loopback() && !dev {
        anyhow::bail!(
            "refusing to serve inference on {} without infer.api_key (CROW_INFER__API_KEY); or use --dev",
            config.listen
        );
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let node = tokio::task::spawn_blocking(move || crow::infer::InferNode::load(&config.infer, &config.pipeline))
        .await
        .context("model loader")??;
    let banner = format!(
        "crow listening on http://{addr}\ncrow inference API on http://{addr}/v1 (model {}, vision {}, text {})\n",
        node.name(),
        if node.has_vision() { "yes" } else { "no" },
        if node.has_text() { "yes" } else { "no" },
    );
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    }
    tracing::info!(%addr, model = node.name(), "serving inference");
    axum::serve(listener, crow::infer::router(std::sync::Arc::new(node)))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving inference")?;
    Ok(())
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} },
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the server");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn token(args: TokenArgs) -> Result<()> {
    let config = Config::load(args.config.as_deref())?;
    let token = crow::auth::mint_hs256(&config.auth, &args.sub, &args.orgs, &args.role, args.ttl)?;
    println!("{token}");
    Ok(())
}

async fn stream(args: StreamArgs) -> Result<()> {
    let mut options = StreamOptions::new(&args.org, &args.camera);
    options.session_id = args.session.clone();
    options.sample_fps = (args.fps > 0.0).then_some(args.fps);
    options.jpeg_quality = args.quality;
    if let Some(start) = args.start_ms {
        options.start_ms = start;
    }
    options.first_frame_index = args.first_index;
    options.max_frames = args.max_frames;

    let total = crow::inference::MediaReader::open(&args.path, options.sample_fps)?.total_hint();
    let bar = match total {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:32} {pos}/{len} frames {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let credentials = args.server.credentials()?;
    let report = client::stream_media_with(
        &args.server.server,
        credentials.clone(),
        &args.path,
        &options,
        |ack| {
            bar.inc(1);
            if ack.outcome == proto::FrameOutcome::Rejected as i32 {
                bar.println(format!(
                    "frame {} rejected: {}",
                    ack.frame_index, ack.reason
                ));
            }
        },
    )
    .await?;
    bar.finish_and_clear();

    println!(
        "sent {} frames: {} described, {} skipped as duplicates, {} without people, {} gated (nothing new for the people in view), {} shed, {} rejected ({} replayed, {} unreadable locally)",
        report.frames_sent,
        report.accepted,
        report.skipped,
        report.no_person,
        report.gated,
        report.shed,
        report.rejected.len(),
        report.replayed,
        report.unreadable
    );
    let mut ingest = client::connect_with(&args.server.server, credentials).await?;
    for session_id in &report.session_ids {
        let session = if args.keep_open {
            ingest
                .get_session(GetSessionRequest {
                    organization_id: args.org.clone(),
                    session_id: session_id.clone(),
                })
                .await?
        } else {
            ingest
                .close_session(CloseSessionRequest {
                    organization_id: args.org.clone(),
                    session_id: session_id.clone(),
                })
                .await?
        }
        .into_inner();
        println!(
            "session {} ({}): received {}, accepted {}, skipped {}, no person {}, gated {}, shed {}, rejected {}, described {}, batches {}",
            session.session_id,
            if session.status == proto::SessionStatus::Closed as i32 { "closed" } else { "open" },
            session.frames_received,
            session.frames_accepted,
            session.frames_skipped,
            session.frames_no_person,
            session.frames_gated,
            session.frames_shed,
            session.frames_rejected,
            session.frames_described,
            session.batches_emitted
        );
    }
    Ok(())
}

async fn session(cmd: SessionCommand) -> Result<()> {
    let (args, close) = match cmd {
        SessionCommand::Get(a) => (a, false),
        SessionCommand::Close(a) => (a, true),
        SessionCommand::Keyframe(a) => return keyframe(a).await,
    };
    let mut client = client::connect_with(&args.server.server, args.server.credentials()?).await?;
    let s = if close {
        client
            .close_session(CloseSessionRequest {
                organization_id: args.org,
                session_id: args.id,
            })
            .await?
    } else {
        client
            .get_session(GetSessionRequest {
                organization_id: args.org,
                session_id: args.id,
            })
            .await?
    }
    .into_inner();
    println!("{s:#?}");
    Ok(())
}

async fn keyframe(args: KeyframeArgs) -> Result<()> {
    let mut client = client::connect_with(&args.server.server, args.server.credentials()?).await?;
    let keyframe = client
        .get_keyframe(proto::GetKeyframeRequest {
            organization_id: args.org,
            session_id: args.id,
            frame_index: args.frame,
        })
        .await?
        .into_inner();
    std::fs::write(&args.output, &keyframe.data)
        .with_context(|| format!("writing {}", args.output.display()))?;
    println!(
        "frame {} of session {} (captured at {} ms): {} bytes written to {}",
        keyframe.frame_index,
        keyframe.session_id,
        keyframe.captured_at_ms,
        keyframe.data.len(),
        args.output.display()
    );
    Ok(())
}

async fn describe(args: DescribeArgs) -> Result<()> {
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

fn models_list(config: Option<PathBuf>, dir: PathBuf) -> Result<()> {
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

fn config_check(file: &std::path::Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let problems = Config::check(&text);
    if problems.is_empty() {
        println!("{}: ok", file.display());
        return Ok(());
    }
    for p in &problems {
        eprintln!("{}: {p}", file.display());
    }
    eprintln!("{} problem(s) in {}", problems.len(), file.display());
    std::process::exit(1);
}
