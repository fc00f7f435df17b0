//! `crow agent` as a process against a real `crow serve`: frames of a folder camera go through the
//! agent's disk spool to the server; captured while the server is down, they wait in the spool,
//! survive the agent killed with SIGKILL, and reach the server exactly once when both are back.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crow::proto::CreateSessionRequest;

use crate::common::{self, ServerProcess};

const ORG: &str = "shop";

/// `crow serve --dev` on a port of the test's choosing (the agent's configuration names it first).
fn server_on(port: u16, dir: &Path) -> ServerProcess {
    let mut command = Command::new(env!("CARGO_BIN_EXE_crow"));
    command
        .args(["serve", "--dev", "--no-metrics", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir)
        .env("CROW_LOG", "warn")
        .env(common::PIXELS_ONLY.0, common::PIXELS_ONLY.1)
        .stderr(Stdio::inherit());
    common::spawn_server(command)
}

/// Writes the agent's configuration: one folder camera.
fn agent_config(dir: &Path, port: u16, folder: &Path) -> std::path::PathBuf {
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "server = \"http://127.0.0.1:{port}\"\nspool_dir = \"{}\"\n\n[[cameras]]\norganization_id = \"{ORG}\"\ncamera_id = \"till\"\nurl = \"{}\"\nfps = 2.0\n",
            dir.join("spool").display(),
            folder.display()
        ),
    )
    .unwrap();
    path
}

fn agent(config: &Path, exit_when_done: bool) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_crow"));
    command
        .args(["agent", "run", "--config"])
        .arg(config)
        .env(
            "CROW_LOG",
            std::env::var("AGENT_LOG").unwrap_or("warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if exit_when_done {
        command.arg("--exit-when-done");
    }
    command.spawn().unwrap()
}

/// Stops an agent with SIGTERM, as a service manager does; returns how it exited and what it printed.
fn stop(mut agent: Child) -> (std::process::ExitStatus, String) {
    let term = Command::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = agent.wait().unwrap();
    let mut report = String::new();
    std::io::Read::read_to_string(agent.stdout.as_mut().unwrap(), &mut report).unwrap();
    (status, report)
}

/// Frame files waiting in a spool directory.
fn spooled(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".jpg"))
                })
                .count()
        })
        .unwrap_or(0)
}

/// A folder of `n` JPEG frames of the sample video.
fn folder_of_frames(n: usize) -> tempfile::TempDir {
    let folder = tempfile::tempdir().unwrap();
    for (i, (_, jpeg)) in common::jpeg_frames("vtest.avi", 2.0, n)
        .into_iter()
        .enumerate()
    {
        std::fs::write(folder.path().join(format!("{i:04}.jpg")), jpeg).unwrap();
    }
    folder
}

/// The camera's open session on the server, with its counters.
async fn session_of(url: &str, camera: &str) -> crow::proto::Session {
    let mut c = crow::client::connect(url).await.unwrap();
    c.create_session(CreateSessionRequest {
        organization_id: ORG.into(),
        camera_id: camera.into(),
    })
    .await
    .unwrap()
    .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_spooled_while_the_server_is_down_survive_a_sigkill_and_arrive_once() {
    let work = tempfile::tempdir().unwrap();
    let frames = folder_of_frames(20);
    let port = common::free_port();
    let config = agent_config(work.path(), port, frames.path());
    let spool = work.path().join("spool").join(ORG).join("till");

    // No server yet: every frame waits in the spool.
    let mut first = agent(&config, false);
    let deadline = Instant::now() + Duration::from_secs(60);
    while spooled(&spool) < 20 {
        assert!(
            Instant::now() < deadline,
            "only {} frames spooled",
            spooled(&spool)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(spooled(&spool), 20, "a killed agent keeps its spool");

    // The camera's folder is empty now: what reaches the server comes from the spool only.
    for entry in std::fs::read_dir(frames.path()).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let data = tempfile::tempdir().unwrap();
    let server = server_on(port, data.path());
    let second = agent(&config, true);
    let output = tokio::task::spawn_blocking(move || second.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{:?} {report}", output.status);
    assert!(
        report.contains(
            "shop/till: 20 frames acknowledged by the server, 0 waiting in the spool, 0 dropped"
        ),
        "{report}"
    );
    assert_eq!(spooled(&spool), 0, "acknowledged frames leave the spool");
    let session = session_of(&server.url, "till").await;
    assert_eq!(session.frames_received, 20, "each frame once: {session:?}");
    assert_eq!(session.last_frame_index, 19, "{session:?}");
}

/// `crow agent check` validates the configuration and probes each camera; a camera URL's password
/// appears nowhere in what it prints, and a failed probe makes it exit 1.
#[test]
fn agent_check_probes_cameras_without_showing_passwords() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ok = Command::new(env!("CARGO_BIN_EXE_crow"))
        .args(["agent", "check", "--config", "examples/agent.toml"])
        .current_dir(root)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        printed.contains("[ ok ] shop/entrance examples/data/vtest.avi: media, 80 frames"),
        "{printed}"
    );

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    let port = common::free_port();
    std::fs::write(
        &config,
        format!(
            "open_timeout_ms = 2000\nread_timeout_ms = 2000\n\n[[cameras]]\norganization_id = \"shop\"\ncamera_id = \"till\"\nurl = \"rtsp://viewer:hunter2-secret@127.0.0.1:{port}/cam\"\n\n[[cameras]]\norganization_id = \"shop\"\ncamera_id = \"snap\"\nurl = \"http://viewer:hunter2-secret@127.0.0.1:{port}/snap.jpg\"\nkind = \"snapshot\"\n"
        ),
    )
    .unwrap();
    let failed = Command::new(env!("CARGO_BIN_EXE_crow"))
        .args(["agent", "check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&failed.stdout),
        String::from_utf8_lossy(&failed.stderr)
    );
    assert_eq!(failed.status.code(), Some(1), "{all}");
    assert!(
        all.contains("[FAIL] shop/till rtsp://viewer:***@127.0.0.1"),
        "{all}"
    );
    assert!(
        all.contains("[FAIL] shop/snap http://viewer:***@127.0.0.1"),
        "{all}"
    );
    assert!(!all.contains("hunter2"), "the password leaked: {all}");
}

/// The commands of docs/agent.md as written, on examples/agent.toml (its file camera), with the server
/// and the spool set by `CROW_AGENT_*` variables: `run --exit-when-done` sends the file's 80 frames
/// and exits; `status` then shows the camera's counts and says the agent is not running (exit 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_configuration_runs_and_reports_its_status() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = tempfile::tempdir().unwrap();
    let server = server_on(common::free_port(), data.path());
    let spool = tempfile::tempdir().unwrap();
    let command = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_crow"));
        c.args(args)
            .args(["--config", "examples/agent.toml"])
            .current_dir(root)
            .env("CROW_AGENT_SERVER", &server.url)
            .env("CROW_AGENT_SPOOL_DIR", spool.path())
            .env("CROW_LOG", "warn");
        c
    };
    let run = command(&["agent", "run", "--exit-when-done"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{report}");
    assert!(
        report.contains("shop/entrance: 80 frames acknowledged by the server, 0 waiting"),
        "{report}"
    );
    let status = command(&["agent", "status"]).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(1), "{text}");
    assert!(text.contains("agent NOT running"), "{text}");
    assert!(text.contains("captured 80, sent 80, dropped 0"), "{text}");
    let json = command(&["agent", "status", "--json"]).output().unwrap();
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["cameras"][0]["camera"], "shop/entrance");
    assert_eq!(value["cameras"][0]["spooled_frames"], 0);
    assert_eq!(
        session_of(&server.url, "entrance").await.frames_received,
        80
    );
}

/// The agent as a store installs it: the server speaks TLS (a certificate of the store's CA) and wants a
/// token. Without one the agent says the server refused its credentials and keeps the frames; with a
/// camera-role token of the organization (`CROW_TOKEN`) and the CA (`CROW_TLS_CA`) every frame arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_sends_over_tls_with_a_camera_token() {
    let dir = tempfile::tempdir().unwrap();
    let pki = crate::tls::Pki::new(dir.path(), "store");
    let (cert, key) = pki.leaf("server", &["localhost", "127.0.0.1"], false);
    let auth = crow::auth::AuthConfig {
        secret: Some("a-test-secret-of-at-least-32-bytes!!".into()),
        ..Default::default()
    };
    let crow = crow::Crow::builder().temporary().build().await.unwrap();
    let tls = crow::tls::ServerTls::load(&crow::tls::TlsConfig {
        cert: Some(cert),
        key: Some(key),
        ..Default::default()
    })
    .unwrap()
    .unwrap();
    let server = crow::server::spawn_with(
        crow.pipeline().clone(),
        "127.0.0.1:0".parse().unwrap(),
        crow::server::ServeOptions::new(crow::auth::Authenticator::new(&auth).unwrap())
            .with_tls(tls),
    )
    .await
    .unwrap();
    let folder = folder_of_frames(6);
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "server = \"{}\"\nspool_dir = \"{}\"\n\n[[cameras]]\norganization_id = \"{ORG}\"\ncamera_id = \"till\"\nurl = \"{}\"\nfps = 2.0\n",
            server.url(),
            dir.path().join("spool").display(),
            folder.path().display()
        ),
    )
    .unwrap();
    let log = dir.path().join("agent.log");
    let agent = |token: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_crow"));
        command
            .args(["agent", "run", "--config"])
            .arg(&config)
            .env("CROW_TLS_CA", pki.path("store-ca.crt"))
            .env("CROW_LOG", "warn")
            .env_remove("CROW_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
        if let Some(token) = token {
            command.env("CROW_TOKEN", token).arg("--exit-when-done");
        }
        command.spawn().unwrap()
    };

    let refused = agent(None);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (status, report) = stop(refused);
    assert!(status.success(), "{report}");
    assert!(
        report.contains("0 frames acknowledged by the server, 6 waiting in the spool"),
        "{report}"
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("the server refused the agent's credentials"),
        "{logged}"
    );

    let token = crow::auth::mint_hs256(&auth, "agent", &[ORG.to_owned()], "camera", 600).unwrap();
    let sent = agent(Some(&token)).wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&sent.stdout);
    assert!(sent.status.success(), "{report}");
    // The 6 frames the refused run kept, and the 6 this run captured.
    assert!(
        report.contains("12 frames acknowledged by the server, 0 waiting"),
        "{report}"
    );
    let session = crow
        .store()
        .open_session_for_camera(ORG, "till")
        .unwrap()
        .unwrap();
    assert_eq!(session.counters.received, 12);
    server.shutdown().await;
    crow.shutdown().await;
}

/// A backlog that spans more than an hour (the agent away for hours, then back): the frames keep their
/// capture times and land in the camera's hourly sessions by those times — the first session takes
/// the first hour, the next session the rest — not in one session stamped with the present.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_lands_in_the_hourly_sessions_of_its_capture_times() {
    let work = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = server_on(common::free_port(), data.path());
    // Three hours ago: 3 frames in the first hour, 2 in the next.
    let base = crow::storage::now_ms() - 3 * 3_600_000;
    let offsets_min = [0, 20, 40, 61, 62];
    let spool =
        crow::agent::spool::Spool::open(work.path().join("spool").join(ORG).join("till"), 1 << 30)
            .unwrap();
    for ((_, jpeg), minutes) in common::jpeg_frames("vtest.avi", 2.0, 5)
        .into_iter()
        .zip(offsets_min)
    {
        spool.push(base + minutes * 60_000, &jpeg).unwrap();
    }
    drop(spool);
    // The camera itself has nothing more to give (an empty folder): the agent only drains.
    let empty = tempfile::tempdir().unwrap();
    let config = agent_config(work.path(), 0, empty.path());
    let config_text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("http://127.0.0.1:0", &server.url);
    std::fs::write(&config, config_text).unwrap();
    let done = agent(&config, true).wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&done.stdout);
    assert!(done.status.success(), "{report}");
    assert!(
        report.contains("5 frames acknowledged by the server, 0 waiting"),
        "{report}"
    );

    let open = session_of(&server.url, "till").await;
    assert_eq!(open.frames_received, 2, "the second hour: {open:?}");
    let second = records_of(&server.url, &open.session_id).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        let first: Vec<_> = common::list_all(&server.url, ORG, 500)
            .await
            .into_iter()
            .filter(|r| r.session_id != open.session_id)
            .collect();
        if !first.is_empty() {
            break first;
        }
        assert!(
            Instant::now() < deadline,
            "the first hour's session has no records"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let first_session = &first[0].session_id;
    assert!(first.iter().all(|r| &r.session_id == first_session));
    for r in &first {
        assert!(
            (base..base + 3_600_000).contains(&r.timestamp_ms),
            "first hour: {r:?}"
        );
    }
    for r in &second {
        assert!(r.timestamp_ms >= base + 61 * 60_000, "second hour: {r:?}");
    }
}

/// Starts a test camera of tests/cameras/ with Debian's Python (which has GStreamer's bindings) and
/// waits for its "ready" line.
fn python_camera(script: &str, args: &[&str]) -> Child {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new("/usr/bin/python3")
        .arg(root.join("tests/cameras").join(script))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("Debian's python3 with python3-gi: run scripts/setup-tools.sh");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready", "{script} did not start");
    child
}

/// A real RTSP camera: GStreamer's RTSP server (Debian) serving the sample footage as H.264 behind basic
/// authentication; killed when dropped.
struct RtspCamera {
    child: Child,
    port: u16,
}

impl RtspCamera {
    /// H.264, 640x360 at 10 frames/s, a key frame every second.
    fn start(port: u16) -> RtspCamera {
        RtspCamera::start_with(port, &[])
    }

    /// With the camera script's options (`--codec h265`, `--key-every 10`, …).
    fn start_with(port: u16, options: &[&str]) -> RtspCamera {
        let video = common::data("vtest.avi");
        let port_text = port.to_string();
        let mut args = vec![
            port_text.as_str(),
            video.to_str().unwrap(),
            "viewer",
            "hunter2-secret",
        ];
        args.extend_from_slice(options);
        let child = python_camera("rtsp_camera.py", &args);
        RtspCamera { child, port }
    }

    fn url(&self) -> String {
        format!("rtsp://viewer:hunter2-secret@127.0.0.1:{}/cam", self.port)
    }
}

impl Drop for RtspCamera {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Closes the session and waits for its records: one per batch it emitted.
async fn records_of(url: &str, session_id: &str) -> Vec<crow::proto::Interaction> {
    let closed = common::close_session(url, ORG, session_id).await;
    assert!(closed.batches_emitted > 0, "no batch: {closed:?}");
    let records =
        common::wait_for_session_records(url, ORG, session_id, closed.batches_emitted).await;
    assert_eq!(
        records.len() as u64,
        closed.batches_emitted,
        "one record per batch"
    );
    records
}

/// The top-level keys of a record's data, sorted: what kind of record it is.
fn shape(record: &crow::proto::Interaction) -> Vec<String> {
    let data: serde_json::Value = serde_json::from_str(&record.data_json).unwrap();
    let mut keys: Vec<String> = data.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

/// `crow agent status --config CONFIG`.
fn agent_status(config: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_crow"))
        .args(["agent", "status", "--config"])
        .arg(config)
        .output()
        .unwrap()
}

/// Waits until the camera's session on the server has received at least `n` frames.
async fn received_at_least(url: &str, camera: &str, n: u64) -> crow::proto::Session {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let session = session_of(url, camera).await;
        if session.frames_received >= n {
            return session;
        }
        assert!(
            Instant::now() < deadline,
            "only {} frames received",
            session.frames_received
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An RTSP camera through the agent to the server; the camera's server is killed and restarted and
/// the agent reconnects and goes on; SIGTERM flushes the acks. Every frame the agent captured is on
/// the server once, and the camera's password (read from a file of its own) is in no log line, no
/// metric and no status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rtsp_camera_reaches_the_server_through_the_agent_and_its_restart() {
    let work = tempfile::tempdir().unwrap();
    let camera = RtspCamera::start(common::free_port());
    let data = tempfile::tempdir().unwrap();
    let server = server_on(common::free_port(), data.path());
    let config = work.path().join("agent.toml");
    // The password lives in a file of its own, not in the configuration.
    let secret = work.path().join("door.password");
    std::fs::write(&secret, "hunter2-secret\n").unwrap();
    std::fs::write(
        &config,
        format!(
            "server = \"{}\"\nspool_dir = \"{}\"\nreconnect_max_ms = 2000\nopen_timeout_ms = 5000\nread_timeout_ms = 3000\n\n[[cameras]]\norganization_id = \"{ORG}\"\ncamera_id = \"door\"\nurl = \"{}\"\npassword_file = \"{}\"\nfps = 2.0\n\n[[cameras]]\norganization_id = \"{ORG}\"\ncamera_id = \"dead\"\nurl = \"rtsp://127.0.0.1:{}/cam\"\n",
            server.url,
            work.path().join("spool").display(),
            camera.url().replace(":hunter2-secret@", "@"),
            secret.display(),
            common::free_port()
        ),
    )
    .unwrap();
    let metrics_port = common::free_port();
    let log = work.path().join("agent.log");
    let agent = Command::new(env!("CARGO_BIN_EXE_crow"))
        .args(["agent", "run", "--config"])
        .arg(&config)
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
        .env("CROW_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();

    received_at_least(&server.url, "door", 6).await;
    // The camera goes away and comes back on the same address.
    let port = camera.port;
    drop(camera);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = session_of(&server.url, "door").await.frames_received;
    let camera = RtspCamera::start(port);
    received_at_least(&server.url, "door", before + 4).await;
    // The camera stalls (its connection open, no frames) past read_timeout_ms, then recovers: the
    // agent notices the stall, reopens, and goes on.
    let signal = |sig: &str| {
        let ok = Command::new("kill")
            .args([sig, &camera.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    signal("-STOP");
    tokio::time::sleep(Duration::from_secs(6)).await;
    signal("-CONT");
    let before = session_of(&server.url, "door").await.frames_received;
    received_at_least(&server.url, "door", before + 4).await;
    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("crow_agent_camera_reconnects_total"),
        "{metrics}"
    );
    assert!(!metrics.contains("hunter2"), "the password is in a metric");
    for gauge in [
        "crow_agent_spool_frames",
        "crow_agent_spool_oldest_age_seconds",
        "crow_agent_last_frame_age_seconds",
    ] {
        assert!(metrics.contains(gauge), "{gauge} in {metrics}");
    }
    // `crow agent status`: one line per camera, with its last frame seconds ago; a camera down fails
    // the command (for a monitoring check).
    let shown = agent_status(&config);
    assert_eq!(shown.status.code(), Some(1), "{shown:?}");
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("agent running"), "{text}");
    let line = text.lines().find(|l| l.starts_with("shop/door")).unwrap();
    assert!(line.contains(" up "), "{line}");
    assert!(line.contains("last frame "), "{line}");
    // A camera that never answers (nothing listens at its address) beside it: down, retried, and no
    // trouble for the door camera, which delivered all along.
    let dead = text.lines().find(|l| l.starts_with("shop/dead")).unwrap();
    assert!(dead.contains(" DOWN "), "{dead}");
    assert!(dead.contains("no frame yet"), "{dead}");
    assert!(!dead.contains("key frames"), "{dead}");
    assert!(!dead.contains("reconnects 0"), "{dead}");
    assert!(
        !text.contains("hunter2"),
        "the password in the status: {text}"
    );

    let (status, report) = stop(agent);
    assert!(status.success(), "{report}");
    let acknowledged = acknowledged_in(&report, "door");
    // A frame captured as the agent stopped may wait in the spool for the next start.
    assert!(report.contains(" 0 dropped"), "{report}");
    let session = session_of(&server.url, "door").await;
    assert_eq!(
        session.frames_received, acknowledged,
        "each captured frame once: {report}"
    );
    // The agent's frames become the same kind of records as `crow stream` of the same footage.
    let from_agent = records_of(&server.url, &session.session_id).await;
    let streamed = Command::new(env!("CARGO_BIN_EXE_crow"))
        .arg("stream")
        .arg(common::data("vtest.avi"))
        .args(["--org", ORG, "--camera", "door-file", "--fps", "2"])
        .args(["--max-frames", "12", "--keep-open", "--server", &server.url])
        .env("CROW_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        streamed.status.success(),
        "{}",
        String::from_utf8_lossy(&streamed.stderr)
    );
    let from_file = records_of(
        &server.url,
        &session_of(&server.url, "door-file").await.session_id,
    )
    .await;
    for record in from_agent.iter().chain(&from_file) {
        assert_eq!(record.source_type, crow::proto::SourceType::Cctv as i32);
        assert_eq!(shape(record), shape(&from_file[0]), "{record:?}");
    }
    // Stopped: the status says so, and the command fails (for a monitoring check).
    let shown = agent_status(&config);
    assert!(!shown.status.success());
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("agent NOT running"), "{text}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("camera unavailable; reopening"), "{logged}");
    assert!(logged.contains("the camera stalled"), "{logged}");
    // Key frames every second cannot give 2 frames/s: `decode = "auto"` measured that and decodes
    // every frame.
    assert!(
        logged.contains("decoding every frame"),
        "no switch to full decode: {logged}"
    );
    assert!(
        !logged.contains("hunter2"),
        "the password is in the log: {logged}"
    );
    drop(camera);
}

/// Spooled frames' capture times (ms), oldest first, from the spool's file names
/// (`<index>-<captured_at_ms>.jpg`).
fn spooled_times(dir: &Path) -> Vec<i64> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".jpg"))
        .collect();
    names.sort();
    names
        .iter()
        .filter_map(|n| n.trim_end_matches(".jpg").split_once('-'))
        .map(|(_, ms)| ms.parse().unwrap())
        .collect()
}

/// The crow server stopped for a minute under a live camera (H.265 over UDP, key frames only): the
/// spool grows by a frame a second of the camera's clock, then drains once the server is back, and
/// every captured frame ends in exactly one counted outcome on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_camera_rides_out_a_minute_without_its_server() {
    let work = tempfile::tempdir().unwrap();
    // Small (a light encoder beside the other tests), played three times over: the camera outlasts
    // the test (no end of stream).
    let camera = RtspCamera::start_with(
        common::free_port(),
        &["--codec", "h265", "--size", "320x180", "--repeat", "3"],
    );
    let data = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let server = server_on(port, data.path());
    let config = work.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "server = \"{}\"\nspool_dir = \"{}\"\nreconnect_max_ms = 2000\nread_timeout_ms = 5000\n\n[[cameras]]\norganization_id = \"{ORG}\"\ncamera_id = \"aisle\"\nurl = \"{}\"\ntransport = \"udp\"\ndecode = \"key_frames\"\n",
            server.url,
            work.path().join("spool").display(),
            camera.url()
        ),
    )
    .unwrap();
    let log = work.path().join("agent.log");
    let agent = Command::new(env!("CARGO_BIN_EXE_crow"))
        .args(["agent", "run", "--config"])
        .arg(&config)
        .env("CROW_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    received_at_least(&server.url, "aisle", 3).await;

    // The server stops (as its service manager stops it) for a minute.
    let mut server = server;
    let term = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    server.child.wait().unwrap();
    let spool = work.path().join("spool").join(ORG).join("aisle");
    tokio::time::sleep(Duration::from_secs(60)).await;
    let times = spooled_times(&spool);
    // One frame a second by the camera's clock (a key frame each). Not every step is exact on a
    // loaded machine: UDP may lose a key frame (a 2 s step), and a test camera that falls behind real
    // time is re-anchored now and then (a longer step). Capture times only rise.
    assert!(
        times.len() >= 40,
        "{} frames spooled in a minute",
        times.len()
    );
    let gaps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    let steady = gaps.iter().filter(|g| (**g - 1000).abs() <= 50).count();
    assert!(steady * 3 >= gaps.len() * 2, "capture time steps {gaps:?}");
    assert!(gaps.iter().all(|g| *g > 0), "capture time steps {gaps:?}");

    let server = server_on(port, data.path());
    let back = Instant::now();
    while spooled(&spool) > 1 {
        assert!(
            back.elapsed() < Duration::from_secs(60),
            "{} frames still spooled",
            spooled(&spool)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, report) = stop(agent);
    assert!(status.success(), "{report}");
    // A frame captured as the agent stopped may wait for the next start; none was dropped.
    assert!(report.contains(" 0 dropped"), "{report}");
    let acknowledged = acknowledged_in(&report, "aisle");
    assert!(acknowledged >= times.len() as u64 + 3, "{report}");
    let session = session_of(&server.url, "aisle").await;
    assert_eq!(session.frames_received, acknowledged, "{report}");
    assert_eq!(
        session.frames_accepted
            + session.frames_skipped
            + session.frames_rejected
            + session.frames_no_person
            + session.frames_gated
            + session.frames_shed,
        session.frames_received,
        "each frame in exactly one outcome: {session:?}"
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.contains("hunter2"), "the password is in the log");
    drop(camera);
}

/// HTTP cameras (tests/cameras/http_camera.py): an MJPEG stream and a snapshot URL, cycling through
/// frames of the sample video; killed when dropped.
struct HttpCamera {
    child: Child,
    port: u16,
}

impl HttpCamera {
    fn start(folder: &Path) -> HttpCamera {
        let port = common::free_port();
        let port_text = port.to_string();
        let child = python_camera(
            "http_camera.py",
            &[port_text.as_str(), folder.to_str().unwrap()],
        );
        HttpCamera { child, port }
    }
}

impl Drop for HttpCamera {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The frames the agent's exit report says the server acknowledged for `camera`.
fn acknowledged_in(report: &str, camera: &str) -> u64 {
    report
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{ORG}/{camera}: ")))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no report for {camera}: {report}"))
}

/// An MJPEG stream and a snapshot camera each reach the server through the agent, every acknowledged
/// frame once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mjpeg_and_snapshot_cameras_reach_the_server_through_the_agent() {
    let frames = folder_of_frames(10);
    let camera = HttpCamera::start(frames.path());
    let data = tempfile::tempdir().unwrap();
    let server = server_on(common::free_port(), data.path());
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("agent.toml");
    let base = format!("http://127.0.0.1:{}", camera.port);
    std::fs::write(
        &config,
        format!(
            "server = \"{}\"\nspool_dir = \"{}\"\n\n[[cameras]]\norganization_id = \"{ORG}\"\ncamera_id = \"aisle\"\nurl = \"{base}/video.mjpg\"\nfps = 2.0\n\n[[cameras]]\norganization_id = \"{ORG}\"\ncamera_id = \"back\"\nurl = \"{base}/snapshot.jpg\"\nkind = \"snapshot\"\nfps = 2.0\n",
            server.url,
            work.path().join("spool").display()
        ),
    )
    .unwrap();
    let agent = agent(&config, false);
    received_at_least(&server.url, "aisle", 4).await;
    received_at_least(&server.url, "back", 4).await;
    let (status, report) = stop(agent);
    assert!(status.success(), "{report}");
    for camera in ["aisle", "back"] {
        let session = session_of(&server.url, camera).await;
        assert_eq!(
            session.frames_received,
            acknowledged_in(&report, camera),
            "{camera}: {report}"
        );
        // And they become records.
        let records = records_of(&server.url, &session.session_id).await;
        assert!(
            records
                .iter()
                .all(|r| r.source_type == crow::proto::SourceType::Cctv as i32),
            "{records:?}"
        );
    }
    // A frame captured as the agent stopped may wait for the next start; none was dropped.
    assert_eq!(report.matches(" 0 dropped").count(), 2, "{report}");
}

/// A spool too small for an outage keeps the newest frames: exactly the counted frames are missing,
/// and they are the oldest ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_too_small_for_the_outage_drops_exactly_the_counted_oldest_frames() {
    let work = tempfile::tempdir().unwrap();
    let frames = folder_of_frames(20);
    let largest = std::fs::read_dir(frames.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .max()
        .unwrap();
    let port = common::free_port();
    let config = agent_config(work.path(), port, frames.path());
    // Room for about six frames.
    let bound = 6 * largest;
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("spool_max_bytes_per_camera = {bound}\nspool_max_bytes = {bound}\n{text}"),
    )
    .unwrap();
    let spool = work.path().join("spool").join(ORG).join("till");

    // The server is down while the camera's 20 frames are captured.
    let agent = agent(&config, true);
    let deadline = Instant::now() + Duration::from_secs(60);
    let kept = loop {
        let names: Vec<String> = std::fs::read_dir(&spool)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".jpg"))
                    .collect()
            })
            .unwrap_or_default();
        if std::fs::read_to_string(spool.join("next_index"))
            .ok()
            .as_deref()
            == Some("20")
        {
            break names;
        }
        assert!(Instant::now() < deadline, "capture did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut indexes: Vec<u64> = kept
        .iter()
        .map(|n| n.split('-').next().unwrap().parse().unwrap())
        .collect();
    indexes.sort_unstable();
    let k = indexes.len() as u64;
    assert!((1..20).contains(&k), "{indexes:?}");
    assert_eq!(
        indexes,
        (20 - k..20).collect::<Vec<_>>(),
        "the newest frames are kept"
    );

    let data = tempfile::tempdir().unwrap();
    let server = server_on(port, data.path());
    let output = tokio::task::spawn_blocking(move || agent.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{:?} {report}", output.status);
    assert!(
        report.contains(&format!(
            "{k} frames acknowledged by the server, 0 waiting in the spool, {} dropped",
            20 - k
        )),
        "{report}"
    );
    let session = session_of(&server.url, "till").await;
    assert_eq!(session.frames_received, k, "{session:?}");
    assert_eq!(session.last_frame_index, 19, "{session:?}");
}

/// SIGTERM while the server is away: the agent stops within seconds (it does not wait for the server),
/// reports what stays in the spool, and the next start finds it there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_the_server_away_exits_promptly_and_keeps_the_spool() {
    let work = tempfile::tempdir().unwrap();
    let frames = folder_of_frames(8);
    let config = agent_config(work.path(), common::free_port(), frames.path());
    let spool = work.path().join("spool").join(ORG).join("till");
    let agent = agent(&config, false);
    let deadline = Instant::now() + Duration::from_secs(60);
    while spooled(&spool) < 8 {
        assert!(Instant::now() < deadline, "capture did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stopped_at = Instant::now();
    let (status, report) = tokio::task::spawn_blocking(move || stop(agent))
        .await
        .unwrap();
    assert!(status.success(), "{status:?} {report}");
    assert!(
        stopped_at.elapsed() < Duration::from_secs(15),
        "took {:?}",
        stopped_at.elapsed()
    );
    assert!(
        report.contains("0 frames acknowledged by the server, 8 waiting in the spool"),
        "{report}"
    );
    assert_eq!(spooled(&spool), 8);
}
