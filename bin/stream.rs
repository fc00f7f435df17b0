//! `crow stream` (a video, image or folder sent to a server as a camera) and `crow session` (get,
//! close, keyframe).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use crow::client::{self, StreamOptions};
use crow::proto::{self, CloseSessionRequest, GetSessionRequest};
use indicatif::{ProgressBar, ProgressStyle};

use crate::ServerArg;

#[derive(Args)]
pub(crate) struct StreamArgs {
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
    /// When the server goes away mid-stream (restart, the session moved to another ingest node):
    /// reconnect for up to this many seconds without an ack, resending the frames not acked (0: stop
    /// at the first failure).
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    reconnect_for: u64,
    #[command(flatten)]
    server: ServerArg,
}

#[derive(Subcommand)]
pub(crate) enum SessionCommand {
    /// Show a session and its counters.
    Get(SessionArgs),
    /// Close a session (flushes its last batch).
    Close(SessionArgs),
    /// Save the keyframe of a described frame (the image evidence of its interaction).
    Keyframe(KeyframeArgs),
}

#[derive(Args)]
pub(crate) struct KeyframeArgs {
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
pub(crate) struct SessionArgs {
    /// Session id.
    id: String,
    /// Organization id.
    #[arg(long)]
    org: String,
    #[command(flatten)]
    server: ServerArg,
}

pub(crate) async fn stream(args: StreamArgs) -> Result<()> {
    let mut options = StreamOptions::new(&args.org, &args.camera);
    options.session_id = args.session.clone();
    options.sample_fps = (args.fps > 0.0).then_some(args.fps);
    options.jpeg_quality = args.quality;
    if let Some(start) = args.start_ms {
        options.start_ms = start;
    }
    options.first_frame_index = args.first_index;
    options.max_frames = args.max_frames;
    options.reconnect_for = std::time::Duration::from_secs(args.reconnect_for);

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
    if report.reconnects > 0 {
        println!(
            "the server went away {} times; the stream reconnected and resent the frames not yet acknowledged",
            report.reconnects
        );
    }
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

pub(crate) async fn session(cmd: SessionCommand) -> Result<()> {
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

pub(crate) async fn keyframe(args: KeyframeArgs) -> Result<()> {
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
