//! `crow bench cluster`: the distributed mode's throughput, measured with real `crow serve` processes
//! over the NATS and PostgreSQL servers given on the command line.
//!
//! - **JetStream hop**: records/s end to end (first frame sent to last record stored) of one `--role all`
//!   process writing to PostgreSQL, against an ingest node handing batches through JetStream to one
//!   analyze node, on the same footage.
//! - **Analyze scaling**: an ingest node alone turns the footage into batches while the analyzers'
//!   consumer is paused; the bench reads them off `CROW_BATCHES`, then publishes `--copies` copies of
//!   them (each copy under session ids of its own, so each makes records of its own) at once to 1, and in
//!   a second run 2, idle analyze nodes; records/s of the analyze tier, 2 nodes against 1.
//!
//! - **Session journal**: frames/s with nothing to describe (decode, gate, the durable write, the ack)
//!   of a `--role all` process against an ingest node, which appends every frame's outcome to the
//!   session's journal on JetStream before its sled.
//!
//! Each run uses an organization of its own, so the runs share the servers without seeing each other's
//! records.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use crow::actors::cluster::{ANALYZERS, BATCH_STREAM};
use crow::inference::{encode_jpeg, MediaReader};
use crow::proto::interaction_service_client::InteractionServiceClient;
use crow::proto::{CloseSessionRequest, Frame, GetSummaryRequest, ImageFormat};
use tokio::sync::mpsc;

#[derive(Args)]
pub(crate) struct ClusterBenchArgs {
    /// Video each camera streams.
    video: PathBuf,
    /// NATS server(s) with JetStream, e.g. nats://127.0.0.1:4222.
    #[arg(long)]
    nats: String,
    /// PostgreSQL database for the records, e.g. postgres://crow@127.0.0.1:5432/bench.
    #[arg(long)]
    postgres: String,
    /// Cameras streaming at once.
    #[arg(long, default_value_t = 4)]
    cameras: usize,
    /// Frames per camera.
    #[arg(long, default_value_t = 120)]
    frames: usize,
    /// Copies of the captured batches (each under session ids of its own) the analyze nodes drain.
    #[arg(long, default_value_t = 20)]
    copies: usize,
}

/// A `crow serve` child process; killed when dropped.
struct Node {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The settings every node of the bench runs with: the OpenCV describer on every accepted frame (no
/// person detector, so every frame that is not a near-duplicate is described), batches of 2, no
/// frame-rate limit.
fn start_node(args: &ClusterBenchArgs, role: &str) -> Result<Node> {
    start_node_with(args, role, &[])
}

/// [`start_node`] with more settings.
fn start_node_with(args: &ClusterBenchArgs, role: &str, envs: &[(&str, &str)]) -> Result<Node> {
    let dir = tempfile::tempdir()?;
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--no-metrics"])
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--role", role])
        .env("CROW_LOG", "off")
        .env("CROW_STORAGE__BACKEND", "postgres")
        .env("CROW_STORAGE__POSTGRES_URL", &args.postgres)
        .env("CROW_PIPELINE__PERCEPTION__DETECTOR", "off")
        .env("CROW_PIPELINE__BATCH_SIZE", "2")
        .env("CROW_PIPELINE__LIMITS__MAX_FPS_PER_SESSION", "0")
        .stdout(Stdio::piped())
        // `--dev` prints its banner there on every start.
        .stderr(Stdio::null());
    if role != "all" {
        command
            .env("CROW_PIPELINE__CLUSTER__NATS_URL", &args.nats)
            // Frames travel in the session journal: within NATS's default 1 MiB message.
            .env("CROW_PIPELINE__LIMITS__MAX_FRAME_BYTES", "983040");
    }
    command.envs(envs.iter().copied());
    let mut child = command.spawn().context("starting crow serve")?;
    let mut line = String::new();
    let stdout = child.stdout.take().context("no stdout")?;
    BufReader::new(stdout).read_line(&mut line)?;
    let Some(url) = line.trim().strip_prefix("crow listening on ") else {
        let _ = child.kill();
        bail!("crow serve --role {role} did not start: {line:?}");
    };
    Ok(Node {
        url: url.to_owned(),
        child,
        _dir: dir,
    })
}

/// What [`stream_cameras`] did.
struct Streamed {
    /// Seconds from the first frame sent to the last ack.
    acked_s: f64,
    frames: u64,
    batches: u64,
    sessions: Vec<String>,
}

/// Streams every camera's frames to `url` at once and closes the sessions.
async fn stream_cameras(
    url: &str,
    org: &str,
    cameras: usize,
    jpegs: &[Vec<u8>],
) -> Result<Streamed> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for camera in 0..cameras {
        let (url, org, jpegs) = (url.to_owned(), org.to_owned(), jpegs.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut client = crow::client::connect(&url).await?;
            let (tx, rx) = mpsc::channel(jpegs.len());
            for (i, data) in jpegs.into_iter().enumerate() {
                tx.send(Frame {
                    organization_id: org.clone(),
                    camera_id: format!("cam-{camera}"),
                    session_id: String::new(),
                    frame_index: i as u64,
                    captured_at_ms: 1_700_000_000_000 + i as i64 * 250,
                    data,
                    format: ImageFormat::Jpeg as i32,
                })
                .await
                .ok();
            }
            drop(tx);
            let (sent, acks) = crow::client::stream_frames(&mut client, rx, |_| {}).await?;
            let acked_at = start.elapsed().as_secs_f64();
            let session_id = acks
                .last()
                .map(|a| a.session_id.clone())
                .context("no acks")?;
            let closed = client
                .close_session(CloseSessionRequest {
                    organization_id: org,
                    session_id,
                })
                .await?
                .into_inner();
            anyhow::Ok((acked_at, sent, closed))
        }));
    }
    let mut out = Streamed {
        acked_s: 0.0,
        frames: 0,
        batches: 0,
        sessions: Vec::new(),
    };
    for task in tasks {
        let (acked_at, sent, closed) = task.await??;
        out.acked_s = out.acked_s.max(acked_at);
        out.frames += sent;
        out.batches += closed.batches_emitted;
        out.sessions.push(closed.session_id);
    }
    Ok(out)
}

/// Camera records of `org` stored so far.
async fn records(url: &str, org: &str) -> Result<u64> {
    let mut client = InteractionServiceClient::connect(url.to_owned()).await?;
    Ok(client
        .get_summary(GetSummaryRequest {
            organization_id: org.into(),
        })
        .await?
        .into_inner()
        .cctv)
}

/// Waits until `url` counts `records` camera records of `org`.
async fn wait_for_records(url: &str, org: &str, expected: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let stored = records(url, org).await?;
        if stored >= expected {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {stored} of {expected} records after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the ingest node has handed every batch of `sessions` to JetStream.
async fn wait_for_handoff(url: &str, org: &str, sessions: &[String]) -> Result<()> {
    let mut client = crow::client::connect(url).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    for session_id in sessions {
        loop {
            let session = client
                .get_session(crow::proto::GetSessionRequest {
                    organization_id: org.into(),
                    session_id: session_id.clone(),
                })
                .await?
                .into_inner();
            if session.batches_unanalyzed == 0 {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "session {session_id} still holds {} batches",
                    session.batches_unanalyzed
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// One run's figures.
struct Run {
    /// Frames/s from the first frame to the last ack, where cameras streamed.
    frames_per_s: Option<f64>,
    records: u64,
    records_per_s: f64,
}

/// End to end through `ingest` (which also serves queries): frames/s until the last ack, records/s
/// until the last record.
async fn end_to_end(
    ingest: &Node,
    org: &str,
    args: &ClusterBenchArgs,
    jpegs: &[Vec<u8>],
) -> Result<Run> {
    let start = Instant::now();
    let streamed = stream_cameras(&ingest.url, org, args.cameras, jpegs).await?;
    wait_for_records(&ingest.url, org, streamed.batches).await?;
    Ok(Run {
        frames_per_s: Some(streamed.frames as f64 / streamed.acked_s),
        records: streamed.batches,
        records_per_s: streamed.batches as f64 / start.elapsed().as_secs_f64(),
    })
}

/// Pauses (`true`) or resumes the analyze nodes' JetStream consumer (JetStream's consumer pause API,
/// NATS 2.11 or newer).
async fn pause_analyzers(nats: &async_nats::Client, pause: bool) -> Result<()> {
    let until = if pause {
        "2100-01-01T00:00:00Z"
    } else {
        "0001-01-01T00:00:00Z"
    };
    let reply = nats
        .request(
            format!("$JS.API.CONSUMER.PAUSE.{BATCH_STREAM}.{ANALYZERS}"),
            serde_json::json!({ "pause_until": until })
                .to_string()
                .into(),
        )
        .await?;
    let reply: serde_json::Value = serde_json::from_slice(&reply.payload)?;
    anyhow::ensure!(
        reply["paused"].as_bool().unwrap_or(false) == pause,
        "consumer pause answered {reply}"
    );
    Ok(())
}

/// The batches an ingest node makes of the footage, as JetStream carries them: the ingest node alone
/// streams every camera while the analyzers' consumer is paused; the batches are read off the stream,
/// which is then emptied (and the consumer resumed).
async fn capture_batches(
    args: &ClusterBenchArgs,
    nats: &async_nats::Client,
    org: &str,
    jpegs: &[Vec<u8>],
) -> Result<(f64, Vec<serde_json::Value>)> {
    let ingest = start_node(args, "ingest")?;
    let js = async_nats::jetstream::new(nats.clone());
    let mut stream = js.get_stream(BATCH_STREAM).await?;
    pause_analyzers(nats, true).await?;
    stream.purge().await?;
    let streamed = stream_cameras(&ingest.url, org, args.cameras, jpegs).await?;
    wait_for_handoff(&ingest.url, org, &streamed.sessions).await?;
    let state = stream.info().await?.state.clone();
    let mut batches = Vec::new();
    for seq in state.first_sequence..=state.last_sequence {
        let message = stream.get_raw_message(seq).await?;
        batches.push(serde_json::from_slice(&message.payload)?);
    }
    anyhow::ensure!(
        batches.len() as u64 == streamed.batches,
        "{} batches in the stream, {} emitted",
        batches.len(),
        streamed.batches
    );
    stream.purge().await?;
    pause_analyzers(nats, false).await?;
    Ok((streamed.frames as f64 / streamed.acked_s, batches))
}

/// `analyzers` analyze nodes start (and idle); then `copies` copies of the captured batches, under
/// organization `org` and session ids of their own, are published at once, and the nodes drain them.
async fn drain(
    args: &ClusterBenchArgs,
    nats: &async_nats::Client,
    org: &str,
    analyzers: usize,
    batches: &[serde_json::Value],
    copies: usize,
) -> Result<Run> {
    let nodes = (0..analyzers)
        .map(|_| start_node(args, "analyze"))
        .collect::<Result<Vec<_>>>()?;
    // Let every node's first pull request reach the server.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let js = async_nats::jetstream::new(nats.clone());
    let start = Instant::now();
    let mut acks = Vec::new();
    for copy in 0..copies {
        for batch in batches {
            let mut batch = batch.clone();
            batch["organization_id"] = org.into();
            // Record ids derive from (session, batch index): new session ids, new records.
            let session = format!(
                "{}-{org}-{copy}",
                batch["session_id"].as_str().unwrap_or("")
            );
            batch["session_id"] = session.into();
            let subject = format!(
                "crow.batches.{org}.{}",
                batch["camera_id"].as_str().unwrap_or("cam")
            );
            acks.push(
                js.publish(subject, serde_json::to_vec(&batch)?.into())
                    .await?,
            );
        }
    }
    for ack in acks {
        ack.await?;
    }
    let records = (batches.len() * copies) as u64;
    let url = &nodes[0].url;
    wait_for_records(url, org, records).await?;
    Ok(Run {
        frames_per_s: None,
        records,
        records_per_s: records as f64 / start.elapsed().as_secs_f64(),
    })
}

fn encode(video: &Path, frames: usize) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for frame in MediaReader::open(video, None)?.take(frames) {
        out.push(encode_jpeg(&frame?.image, 80)?);
    }
    anyhow::ensure!(!out.is_empty(), "no frames in {}", video.display());
    Ok(out)
}

pub(crate) async fn run(args: ClusterBenchArgs) -> Result<()> {
    let jpegs = {
        let (video, frames) = (args.video.clone(), args.frames);
        tokio::task::spawn_blocking(move || encode(&video, frames)).await??
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "input: {}, {} cameras x {} frames (JPEG q80), OpenCV describer, batches of 2; machine: {cores} cores, every node and server on it",
        args.video.display(),
        args.cameras,
        jpegs.len()
    );
    let tag = crow::storage::now_ms();
    let report = |name: &str, r: &Run| {
        let frames = match r.frames_per_s {
            Some(f) => format!("{f:8.1} frames/s"),
            None => " ".repeat(17),
        };
        println!(
            "{name:<44} {frames} {:8.1} records/s ({} records)",
            r.records_per_s, r.records
        )
    };

    // The per-frame cost of the session journal: frames/s with nothing to describe, so that only
    // decode, gate, the durable write and the ack remain.
    let no_describer = [("CROW_PIPELINE__DESCRIBER", "off")];
    let mut frames_per_s = Vec::new();
    for role in ["all", "ingest"] {
        let node = start_node_with(&args, role, &no_describer)?;
        let org = format!("bench-frames-{role}-{tag}");
        let streamed = stream_cameras(&node.url, &org, args.cameras, &jpegs).await?;
        frames_per_s.push(streamed.frames as f64 / streamed.acked_s);
    }
    println!(
        "{:<44} {:8.1} frames/s",
        "describer off, in-process (sled write)", frames_per_s[0]
    );
    println!(
        "{:<44} {:8.1} frames/s",
        "describer off, ingest node (journal + sled)", frames_per_s[1]
    );
    println!(
        "ratio    frames/s with the session journal / without: {:.3}",
        frames_per_s[1] / frames_per_s[0]
    );

    let all = {
        let node = start_node(&args, "all")?;
        end_to_end(&node, &format!("bench-all-{tag}"), &args, &jpegs).await?
    };
    report("in-process (--role all, PostgreSQL)", &all);
    let hop = {
        let ingest = start_node(&args, "ingest")?;
        let _analyze = start_node(&args, "analyze")?;
        end_to_end(&ingest, &format!("bench-hop-{tag}"), &args, &jpegs).await?
    };
    report("ingest -> JetStream -> 1 analyze node", &hop);
    println!(
        "ratio    records/s through JetStream / in-process: {:.3}",
        hop.records_per_s / all.records_per_s
    );

    let nats = async_nats::connect(args.nats.as_str()).await?;
    let (frames_per_s, batches) =
        capture_batches(&args, &nats, &format!("bench-capture-{tag}"), &jpegs).await?;
    println!(
        "{:<44} {frames_per_s:8.1} frames/s {:>18} ({} batches captured)",
        "ingest node alone (analyzers paused)",
        "",
        batches.len()
    );
    let copies = args.copies;
    let one = drain(
        &args,
        &nats,
        &format!("bench-drain1-{tag}"),
        1,
        &batches,
        copies,
    )
    .await?;
    report(&format!("{copies} x the batches, 1 analyze node"), &one);
    let two = drain(
        &args,
        &nats,
        &format!("bench-drain2-{tag}"),
        2,
        &batches,
        copies,
    )
    .await?;
    report(&format!("{copies} x the batches, 2 analyze nodes"), &two);
    println!(
        "ratio    analyze records/s, 2 nodes / 1 node:      {:.3}",
        two.records_per_s / one.records_per_s
    );
    Ok(())
}
