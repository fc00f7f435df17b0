//! Helpers shared by the integration tests.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crow::client;
use crow::inference::{encode_jpeg, MediaReader};
use crow::proto::interaction_service_client::InteractionServiceClient;
use crow::proto::{Frame, ImageFormat, Interaction, ListInteractionsRequest};
use crow::server::RunningServer;
use crow::{Crow, PipelineConfig};
use tokio::sync::mpsc;

/// Path of a sample file; the tests need `scripts/setup.sh` to have run.
pub fn data(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/data")
        .join(name);
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup.sh first",
        p.display()
    );
    p
}

/// A program `scripts/setup-tools.sh` installs under `.tools/` (the Python venv, node modules).
pub fn tool(relative: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".tools")
        .join(relative);
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup-tools.sh first (scripts/test.sh does)",
        p.display()
    );
    p
}

/// The text model `scripts/setup-models.sh` installs (the default `analysis.model`).
pub fn text_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/gemma-3-270m-q4_k_m.gguf")
}

/// For tests of ingest mechanics (acks, batches, rollover, crash recovery) rather than perception: no
/// person detector, so every decoded, non-duplicate frame is described (`perception.detector = "off"`).
pub fn pixels_only(mut config: PipelineConfig) -> PipelineConfig {
    config.perception.detector = crow::actors::DetectorChoice::Off;
    config
}

/// [`pixels_only`] for a `crow serve` process.
pub const PIXELS_ONLY: (&str, &str) = ("CROW_PIPELINE__PERCEPTION__DETECTOR", "off");

/// Where a [`TestServer`] keeps its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// sled, in the server's temporary directory.
    Sled,
    /// A fresh database on the test process's PostgreSQL server ([`crate::pg::shared`]).
    Postgres,
}

/// Runs each named `async fn(Backend)` as two tests, `sled::NAME` and `postgres::NAME`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sled {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sled).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}
pub(crate) use on_both_backends;

/// A crow pipeline and gRPC server on 127.0.0.1:0 over a sled database in a temporary directory (and,
/// with [`Backend::Postgres`], records in PostgreSQL).
pub struct TestServer {
    pub crow: Crow,
    pub server: Option<RunningServer>,
    pub url: String,
    pub _dir: tempfile::TempDir,
}

impl TestServer {
    /// With authentication off (it is the subject of tests/auth.rs).
    pub async fn start(config: PipelineConfig) -> TestServer {
        TestServer::start_with_auth(config, crow::auth::Authenticator::disabled()).await
    }

    /// With records on `backend` and authentication off.
    pub async fn start_on(backend: Backend, config: PipelineConfig) -> TestServer {
        let builder = match backend {
            Backend::Sled => Crow::builder(),
            Backend::Postgres => Crow::builder().postgres(crate::pg::shared().database()),
        };
        TestServer::start_with(builder, config, crow::auth::Authenticator::disabled()).await
    }

    /// With the given authenticator in front of every service.
    pub async fn start_with_auth(
        config: PipelineConfig,
        auth: crow::auth::Authenticator,
    ) -> TestServer {
        TestServer::start_with(Crow::builder(), config, auth).await
    }

    /// `builder` (its data directory set here) with `config` and `auth`.
    pub async fn start_with(
        builder: crow::CrowBuilder,
        config: PipelineConfig,
        auth: crow::auth::Authenticator,
    ) -> TestServer {
        TestServer::start_in(tempfile::tempdir().unwrap(), builder, config, auth).await
    }

    /// Like [`TestServer::start_with`], over the sled database in `dir/db` (which a test may have
    /// written before).
    pub async fn start_in(
        dir: tempfile::TempDir,
        builder: crow::CrowBuilder,
        config: PipelineConfig,
        auth: crow::auth::Authenticator,
    ) -> TestServer {
        let crow = builder
            .data_dir(dir.path().join("db"))
            .pipeline_config(config)
            .build()
            .await
            .unwrap();
        let server = crow::server::spawn(
            crow.pipeline().clone(),
            "127.0.0.1:0".parse().unwrap(),
            auth,
        )
        .await
        .unwrap();
        let url = server.url();
        TestServer {
            crow,
            server: Some(server),
            url,
            _dir: dir,
        }
    }

    pub async fn stop(self) {
        self.stop_keeping_data().await;
    }

    /// Stops the server and the pipeline and hands over the temporary directory (the database is in
    /// `db/`), so that a test can inspect what was stored.
    pub async fn stop_keeping_data(mut self) -> tempfile::TempDir {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        self.crow.shutdown().await;
        self._dir
    }
}

/// JPEG frames of a video, sampled at `fps` frames per second of footage: (position ms, bytes).
pub fn jpeg_frames(name: &str, fps: f64, max: usize) -> Vec<(i64, Vec<u8>)> {
    MediaReader::open(data(name), Some(fps))
        .unwrap()
        .take(max)
        .map(|f| {
            let f = f.unwrap();
            (f.position_ms, encode_jpeg(&f.image, 80).unwrap())
        })
        .collect()
}

/// Wraps encoded frames into protocol frames for one camera.
pub fn frames(
    org: &str,
    camera: &str,
    start_ms: i64,
    items: &[(u64, i64, Vec<u8>, ImageFormat)],
) -> mpsc::Receiver<Frame> {
    let (tx, rx) = mpsc::channel(items.len().max(1));
    for (index, offset, data, format) in items {
        tx.try_send(Frame {
            organization_id: org.into(),
            camera_id: camera.into(),
            session_id: String::new(),
            frame_index: *index,
            captured_at_ms: start_ms + offset,
            data: data.clone(),
            format: *format as i32,
        })
        .unwrap();
    }
    rx
}

/// Streams frames and returns the acks.
pub async fn send(url: &str, rx: mpsc::Receiver<Frame>) -> Vec<crow::proto::FrameAck> {
    let mut c = client::connect(url).await.unwrap();
    let (sent, acks) = client::stream_frames(&mut c, rx, |_| {}).await.unwrap();
    assert_eq!(acks.len() as u64, sent, "every frame is acked");
    acks
}

/// Every interaction of an organization, following cursors.
pub async fn list_all(url: &str, org: &str, page_size: u32) -> Vec<Interaction> {
    let mut c = InteractionServiceClient::connect(url.to_owned())
        .await
        .unwrap();
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .list_interactions(ListInteractionsRequest {
                organization_id: org.into(),
                page_size,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        out.extend(page.interactions);
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

/// Checks that every described frame is in exactly one interaction's batch.
/// Returns the frame indexes the records hold.
pub fn assert_each_frame_batched_once(
    interactions: &[Interaction],
    frames_described: u64,
) -> std::collections::BTreeSet<u64> {
    let mut frames: Vec<u64> = interactions
        .iter()
        .flat_map(|i| {
            let data: serde_json::Value = serde_json::from_str(&i.data_json).unwrap();
            data["frames"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["frame_index"].as_u64().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    frames.sort_unstable();
    let listed = frames.len();
    frames.dedup();
    assert_eq!(listed, frames.len(), "no frame is in two batches");
    assert_eq!(
        listed as u64, frames_described,
        "every described frame is in a batch"
    );
    frames.into_iter().collect()
}

/// Lists the organization's interactions until there are `expected` of them (the analyzer writes them
/// asynchronously), for at most 10 s; returns the last listing.
pub async fn wait_for_interactions(url: &str, org: &str, expected: u64) -> Vec<Interaction> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let found = list_all(url, org, 50).await;
        if found.len() as u64 == expected || std::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Lists one session's records until there are `expected` of them (the analyzer writes them
/// asynchronously), for at most 60 s; returns the last listing.
pub async fn wait_for_session_records(
    url: &str,
    org: &str,
    session_id: &str,
    expected: u64,
) -> Vec<Interaction> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let found: Vec<Interaction> = list_all(url, org, 500)
            .await
            .into_iter()
            .filter(|i| i.session_id == session_id)
            .collect();
        if found.len() as u64 >= expected || std::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Closes a session over gRPC and checks the protocol's promise that every received frame has exactly one
/// outcome.
pub async fn close_session(url: &str, org: &str, session_id: &str) -> crow::proto::Session {
    let mut c = client::connect(url).await.unwrap();
    let closed = c
        .close_session(crow::proto::CloseSessionRequest {
            organization_id: org.into(),
            session_id: session_id.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        closed.frames_received,
        closed.frames_accepted
            + closed.frames_skipped
            + closed.frames_rejected
            + closed.frames_no_person
            + closed.frames_gated
            + closed.frames_shed,
        "every received frame has one outcome"
    );
    closed
}

/// A `crow serve` child process on 127.0.0.1:0.
pub struct ServerProcess {
    pub child: Child,
    pub url: String,
    /// The server's stdout, kept open for its lifetime.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // A test that ends (or fails) must not leave its server running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `crow serve` on `dir` with extra environment variables (e.g. `CROW_PIPELINE__...`).
pub fn start_server_process(dir: &std::path::Path, envs: &[(&str, &str)]) -> ServerProcess {
    spawn_server(serve_command(dir, envs))
}

/// `crow serve --dev` on 127.0.0.1:0 without metrics, its database in `dir`, with extra environment
/// variables; add arguments, then [`spawn_server`].
pub fn serve_command(dir: &std::path::Path, envs: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_crow"));
    command
        .args([
            "serve",
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--no-metrics",
            "--data-dir",
        ])
        .arg(dir)
        .env("CROW_LOG", "warn")
        .envs(envs.iter().copied())
        .stderr(Stdio::inherit());
    command
}

/// Spawns a prepared `crow serve` command and waits for its `crow listening on URL` line.
pub fn spawn_server(mut command: Command) -> ServerProcess {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting crow serve");
    let mut line = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("crow listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    ServerProcess {
        child,
        url,
        _stdout: stdout,
    }
}

/// Opens the store of a stopped pipeline (`Store::open` waits for its sled to release the lock), off
/// the async threads.
pub async fn open_when_released(path: PathBuf) -> crow::storage::Store {
    tokio::task::spawn_blocking(move || crow::storage::Store::open(&path))
        .await
        .unwrap()
        .unwrap()
}

/// A free loopback port (bound, then released for a server to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
