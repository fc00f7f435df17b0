//! A `crow serve` process killed with SIGKILL mid-stream loses nothing it acknowledged and, when the
//! stream resumes, produces no duplicate batch or record.

use crow::client;
use crow::proto::{GetSessionRequest, ImageFormat};

use crate::common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_server_keeps_acked_work_and_resumes_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let start_ms = 1_763_000_000_000;
    let jpegs = common::jpeg_frames("vtest.avi", 5.0, 60);
    let items: Vec<_> = jpegs
        .iter()
        .enumerate()
        .map(|(i, (pos, j))| (i as u64, *pos, j.clone(), ImageFormat::Jpeg))
        .collect();

    // Phase 1: 20 frames fully acknowledged, and their interactions written.
    let mut server = common::start_server_process(&db, &[common::PIXELS_ONLY]);
    let acks = common::send(
        &server.url,
        common::frames("acme", "door", start_ms, &items[..20]),
    )
    .await;
    let session_id = acks[0].session_id.clone();
    let mut ingest = client::connect(&server.url).await.unwrap();
    let get = GetSessionRequest {
        organization_id: "acme".into(),
        session_id: session_id.clone(),
    };
    let mut before = Vec::new();
    for _ in 0..300 {
        let s = ingest.get_session(get.clone()).await.unwrap().into_inner();
        before = common::list_all(&server.url, "acme", 50).await;
        if s.frames_described == s.frames_accepted
            && before.len() as u64 == s.batches_emitted
            && s.batches_emitted > 0
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        !before.is_empty(),
        "interactions were written before the crash"
    );

    // Phase 2: kill -9 in the middle of the next 40 frames.
    let url = server.url.clone();
    let tail = items[20..].to_vec();
    let stream = tokio::spawn(async move {
        let mut c = client::connect(&url).await.unwrap();
        let mut n = 0;
        let _ = client::stream_frames(
            &mut c,
            common::frames("acme", "door", start_ms, &tail),
            |_| n += 1,
        )
        .await;
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let _ = stream.await;

    // Restart on the same data: everything listed before is still there, once.
    let mut server = common::start_server_process(&db, &[common::PIXELS_ONLY]);
    let after = common::list_all(&server.url, "acme", 50).await;
    for i in &before {
        assert_eq!(
            after.iter().filter(|a| a.id == i.id).count(),
            1,
            "interaction {} lost or duplicated",
            i.id
        );
    }

    // Resume from the server's record (resending from the start is also harmless: replayed acks).
    let mut ingest = client::connect(&server.url).await.unwrap();
    let s = ingest.get_session(get.clone()).await.unwrap().into_inner();
    assert!(
        s.last_frame_index >= 19,
        "acked frames survive: last index {}",
        s.last_frame_index
    );
    let acks = common::send(
        &server.url,
        common::frames("acme", "door", start_ms, &items[15..]),
    )
    .await;
    assert!(
        acks[..5].iter().all(|a| a.replayed),
        "frames acked before the crash are answered from the record"
    );
    assert!(acks.iter().all(|a| a.session_id == session_id));
    let closed = common::close_session(&server.url, "acme", &session_id).await;
    assert_eq!(closed.frames_received, 60);
    assert_eq!(closed.frames_described, closed.frames_accepted);

    let finals = common::wait_for_interactions(&server.url, "acme", closed.batches_emitted).await;
    assert_eq!(
        finals.len() as u64,
        closed.batches_emitted,
        "one interaction per batch, no duplicates"
    );
    common::assert_each_frame_batched_once(&finals, closed.frames_described);
    server.child.kill().ok();
    server.child.wait().ok();
}
