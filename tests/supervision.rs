//! A session actor that panics is restarted by its supervisor and the session continues.

use crow::proto::ImageFormat;
use crow::PipelineConfig;

use crate::common::{self, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_session_actor_is_restarted_and_the_session_continues() {
    let t = TestServer::start(PipelineConfig::default()).await;
    let jpegs = common::jpeg_frames("vtest.avi", 5.0, 30);
    let items: Vec<_> = jpegs
        .iter()
        .enumerate()
        .map(|(i, (pos, j))| (i as u64, *pos, j.clone(), ImageFormat::Jpeg))
        .collect();
    let start_ms = 1_763_000_000_000;

    let acks = common::send(
        &t.url,
        common::frames("acme", "till", start_ms, &items[..15]),
    )
    .await;
    let session_id = acks[0].session_id.clone();
    // Fault injection (a panic cannot be provoked with valid input): the actor dies with whatever is in
    // its mailbox.
    assert!(
        t.crow
            .pipeline()
            .sessions()
            .inject_session_panic(&session_id)
            .await,
        "session actor was running"
    );

    let acks = common::send(
        &t.url,
        common::frames("acme", "till", start_ms, &items[15..]),
    )
    .await;
    assert!(
        acks.iter().all(|a| a.session_id == session_id),
        "frames after the panic go to the same session"
    );
    let closed = common::close_session(&t.url, "acme", &session_id).await;
    assert_eq!(closed.frames_received, 30);
    assert_eq!(
        closed.frames_described, closed.frames_accepted,
        "work queued before the panic was finished"
    );
    assert_eq!(closed.batches_emitted, closed.frames_described.div_ceil(5));
    let interactions = common::wait_for_interactions(&t.url, "acme", closed.batches_emitted).await;
    assert_eq!(interactions.len() as u64, closed.batches_emitted);
    t.stop().await;
}
