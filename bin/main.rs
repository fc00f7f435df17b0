//! `crow`: the server and its command-line client.
// Tests may wait on threads and flush directly (clippy.toml forbids both in product code).
#![cfg_attr(test, allow(clippy::disallowed_methods))]

mod agent;
mod bench;
mod cameras;
mod config_file;
#[cfg(test)]
mod docs_commands;
mod doctor;
mod models;
mod records;
mod serve;
mod stream;
mod token;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use crow::client::{self};

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
    Serve(serve::ServeArgs),
    /// Stream a video file, an image or a folder of images to a server as a camera.
    Stream(stream::StreamArgs),
    /// The on-premise CCTV daemon: pull cameras (RTSP, MJPEG, snapshots, files), spool every frame on
    /// disk, forward the spool to the server.
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// Create, get and list interaction records.
    #[command(subcommand)]
    Interactions(records::InteractionsCommand),
    /// Count an organization's interactions per source.
    Summary(records::SummaryArgs),
    /// Store metrics measured from camera events: people in and out, visits, dwell, occupancy and
    /// product visits per hour, day or five minutes (`--format csv` to export).
    Metrics(records::MetricsArgs),
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
    Session(stream::SessionCommand),
    /// Describe each frame of a video, an image or a folder with the configured describer, or with a
    /// llama.cpp vision model given by --model/--mmproj, printing the time each frame took.
    Describe(models::DescribeArgs),
    /// Models: what is installed and configured.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Mint an HS256 token with the configured secret (CROW_JWT_SECRET or [auth] secret).
    Token(token::TokenArgs),
    /// The configuration file: print the documented defaults, or check a file.
    #[command(subcommand)]
    Config(config_file::ConfigCommand),
    /// Check OpenCV, models (files, checksums, projector fit), the data directory, free disk, ports,
    /// TLS files and authentication, and print what to fix. Exits 1 if anything fails.
    Doctor(doctor::DoctorArgs),
    /// Benchmarks that print ratios measured in one run.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Check a stopped server's database offline (after a crash, before a restart): every record
    /// decodes, sits where its content says, and indexes, counters and sessions add up. Reads only.
    /// Exits 1 if anything is broken.
    Verify(serve::VerifyArgs),
    /// Print the OpenAPI 3.1 document of the HTTP/JSON API (also served at /openapi.json).
    Openapi,
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

#[tokio::main]
async fn main() -> std::process::ExitCode {
    return_large_buffers_to_the_os();
    let cli = Cli::parse();
    if !matches!(
        cli.command,
        Command::Serve(_) | Command::Bench(_) | Command::Agent(_)
    ) {
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
        // The command printed what failed already.
        Err(e) if e.is::<Reported>() => std::process::ExitCode::FAILURE,
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

/// A command that failed and has printed why (`crow config check`, `crow doctor`): it exits 1 without
/// a further message.
#[derive(Debug, thiserror::Error)]
#[error("the command failed; see above")]
pub(crate) struct Reported;

/// Two numbers given as AxB: a size in pixels (640x480) or a grid of tiles (2x2).
pub(crate) fn parse_size(s: &str) -> Result<[u32; 2], String> {
    parse_pair(s, 'x', "two numbers as AxB, e.g. 640x480 or 2x2")
}

/// Two whole numbers separated by `separator`; errors say what to `give`.
pub(crate) fn parse_pair(s: &str, separator: char, give: &str) -> Result<[u32; 2], String> {
    let (a, b) = s
        .split_once(separator)
        .ok_or_else(|| format!("{s:?}: give {give}"))?;
    let n = |v: &str| {
        v.trim()
            .parse::<u32>()
            .map_err(|e| format!("{v:?}: {e} (give {give})"))
    };
    Ok([n(a)?, n(b)?])
}

/// Decoded frames (a 768 x 576 frame is 1.3 MB) and the detector's tensors are allocated and freed on
/// every frame, on many threads. glibc's malloc serves such blocks from `mmap` at first but raises its
/// threshold each time one is freed, after which they come from per-thread heaps that keep the freed
/// memory: a server streaming 16 cameras then held ~10 MB more per open session (`crow bench
/// sessions`). A fixed threshold of 128 KiB keeps every large block on `mmap`, returned when freed.
fn return_large_buffers_to_the_os() {
    // SAFETY: mallopt only sets a malloc parameter; any value is valid for M_MMAP_THRESHOLD up to
    // 32 MiB, and a failure (0) leaves glibc's default in place.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
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
        Command::Serve(args) => serve::serve(args).await,
        Command::Stream(args) => stream::stream(args).await,
        Command::Agent(cmd) => agent::agent(cmd).await,
        Command::Interactions(cmd) => records::interactions(cmd).await,
        Command::Summary(args) => records::summary(args).await,
        Command::Metrics(args) => records::metrics(args).await,
        Command::DeadLetters(cmd) => records::dead_letters(cmd).await,
        Command::Products(cmd) => records::products(cmd).await,
        Command::Cameras(cmd) => cameras::cameras(cmd).await,
        Command::Analyze(args) => records::analyze(args).await,
        Command::Ask(args) => records::ask(args).await,
        Command::Watch(args) => records::watch(args).await,
        Command::Session(cmd) => stream::session(cmd).await,
        Command::Describe(args) => models::describe(args).await,
        Command::Models(models::ModelsCommand::List { config, dir }) => {
            models::models_list(config, dir)
        }
        Command::Token(args) => token::token(args),
        Command::Config(config_file::ConfigCommand::Default) => {
            print!("{}", crow::config::REFERENCE);
            Ok(())
        }
        Command::Config(config_file::ConfigCommand::Check { file }) => {
            config_file::config_check(&file)
        }
        Command::Doctor(args) => doctor::run(args),
        Command::Bench(cmd) => bench::run(cmd).await,
        Command::Verify(args) => serve::verify(args),
        Command::Openapi => {
            println!("{}", crow::http::openapi::json());
            Ok(())
        }
    }
}
