//! Graceful shutdown of the `crow serve` process as an init system does it: SIGTERM while a camera is
//! streaming. The stream is told to reconnect, every frame acknowledged before that is in a stored batch
//! when the process has exited 0, and the JSON logs of the run carry the session's identifiers but never
//! the caller's token.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use crow::client::{self, Credentials};
use crow::proto::{FrameAck, FrameOutcome, ImageFormat};
use crow::storage::Store;

use crate::common;

const SECRET: &str = "shutdown-test-secret-long-enough-0123456789";

#[tokio::test]
async fn sigterm_mid_stream_loses_no_acknowledged_frames_batch() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut command = Command::new(env!("CARGO_BIN_EXE_crow"));
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-metrics",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(&db)
        .env("CROW_JWT_SECRET", SECRET)
        .env(
            "CROW_LOG",
            "info,crow=debug,crow_actors=debug,crow_grpc_api=debug",
        )
        // Batches only by count (or by the shutdown's flush): a timeout would hide a missing flush.
        .env(common::PIXELS_ONLY.0, common::PIXELS_ONLY.1)
        .env("CROW_PIPELINE__BATCH_SIZE", "4")
        .env("CROW_PIPELINE__BATCH_TIMEOUT_MS", "600000")
        .env("CROW_PIPELINE__DUPLICATE_THRESHOLD", "0")
        .env("CROW_PIPELINE__LIMITS__MAX_FPS_PER_SESSION", "0")
        .stderr(Stdio::piped());
    let mut server = common::spawn_server(command);
    let url = server.url.clone();
    let child = &mut server.child;
    let stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });

    let config = crow::auth::AuthConfig {
        secret: Some(SECRET.into()),
        ..Default::default()
    };
    let token = crow::auth::mint_hs256(&config, "cam", &["shop".into()], "camera", 600).unwrap();
    let mut ingest = client::connect_with(&url, Credentials::new(Some(&token), None))
        .await
        .unwrap();

    // An endless camera: the sample video over and over, until the server says to stop.
    let jpegs = common::jpeg_frames("vtest.avi", 5.0, 40);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let producer = tokio::spawn(async move {
        for (index, (_, data)) in jpegs.iter().cycle().enumerate() {
            let frame = crow::proto::Frame {
                organization_id: "shop".into(),
                camera_id: "door".into(),
                session_id: String::new(),
                frame_index: index as u64,
                captured_at_ms: 1_700_000_000_000 + index as i64 * 200,
                data: data.clone(),
                format: ImageFormat::Jpeg as i32,
            };
            if tx.send(frame).await.is_err() {
                return;
            }
        }
    });
    let acks: Arc<Mutex<Vec<FrameAck>>> = Arc::default();
    let seen = Arc::clone(&acks);
    let pid = child.id();
    let mut signalled = false;
    let result = client::stream_frames(&mut ingest, rx, move |ack| {
        let mut acks = seen.lock().unwrap();
        acks.push(ack.clone());
        // Mid-stream: after a few batches' worth, with frames still in flight.
        if acks.len() == 30 && !signalled {
            signalled = true;
            let status = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .unwrap();
            assert!(status.success());
        }
    })
    .await;
    producer.abort();
    let error = result.expect_err("the server ends the stream");
    assert!(
        error.to_string().contains("reconnect"),
        "the stream is told to reconnect: {error}"
    );

    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "crow serve exits 0 after SIGTERM: {status:?}"
    );
    let logs = logs.join().unwrap();
    let acks = acks.lock().unwrap().clone();
    assert!(acks.len() >= 30, "{} acks", acks.len());

    // Every acknowledged, accepted frame is in a stored batch; nothing is left half-done.
    let store = Store::open(&db).unwrap();
    let session = acks[0].session_id.clone();
    let batched: std::collections::HashSet<u64> = store
        .batches(&session)
        .unwrap()
        .iter()
        .flat_map(|b| b.frames.iter().map(|f| f.frame_index))
        .collect();
    let accepted: Vec<u64> = acks
        .iter()
        .filter(|a| a.outcome == FrameOutcome::Accepted as i32)
        .map(|a| a.frame_index)
        .collect();
    assert!(accepted.len() >= 30, "{accepted:?}");
    let missing: Vec<u64> = accepted
        .iter()
        .copied()
        .filter(|i| !batched.contains(i))
        .collect();
    assert!(
        missing.is_empty(),
        "acked frames without a batch: {missing:?}"
    );
    assert!(store.pending_analyses(&session).unwrap().is_empty());
    assert!(store.undescribed_frames(&session).unwrap().is_empty());
    assert!(
        store.unanalyzed_batches().unwrap().is_empty(),
        "every batch was analysed before exit"
    );
    let report = store.verify().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    // The logs: one JSON object per line, the session's identifiers on the pipeline's lines, no token.
    assert!(!logs.is_empty());
    let mut with_ids = 0;
    for line in &logs {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(!line.contains(&token), "a log line holds the token: {line}");
        assert!(
            !line.contains(SECRET),
            "a log line holds the secret: {line}"
        );
        assert!(
            line.len() < 4096,
            "a log line too long to be free of frame bytes: {line}"
        );
        let text = value.to_string();
        if text.contains(&session) && text.contains("\"org_id\"") && text.contains("\"camera_id\"")
        {
            with_ids += 1;
        }
    }
    assert!(
        with_ids > 0,
        "no log line carries org_id, camera_id and session_id: {logs:#?}"
    );
    assert!(
        logs.iter().any(|l| l.contains("shut down")),
        "the shutdown is logged: {logs:#?}"
    );
}
