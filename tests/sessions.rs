//! Session lifecycle: hourly rollover by capture time, batches emitted on timeout, size limits.

use crow::client;
use crow::proto::{FrameOutcome, GetSessionRequest, ImageFormat, SessionStatus};
use crow::PipelineConfig;

use crate::common::{self, TestServer};

const HOUR_MS: i64 = 3_600_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_an_hour_after_the_first_roll_over_into_a_new_session() {
    let t = TestServer::start(common::pixels_only(PipelineConfig::default())).await;
    let jpegs = common::jpeg_frames("vtest.avi", 1.0, 4);
    let offsets = [0, 20 * 60_000, HOUR_MS - 1, HOUR_MS];
    let items: Vec<_> = jpegs
        .iter()
        .zip(offsets)
        .enumerate()
        .map(|(i, ((_, j), off))| (i as u64, off, j.clone(), ImageFormat::Jpeg))
        .collect();
    let acks = common::send(
        &t.url,
        common::frames("acme", "aisle", 1_763_000_000_000, &items),
    )
    .await;
    let first = acks[0].session_id.clone();
    assert!(acks[..3].iter().all(|a| a.session_id == first));
    let second = acks[3].session_id.clone();
    assert_ne!(
        second, first,
        "the frame one hour after the first opens a new session"
    );
    assert_eq!(acks[3].outcome, FrameOutcome::Accepted as i32);

    let mut c = client::connect(&t.url).await.unwrap();
    let get = |id: &str| GetSessionRequest {
        organization_id: "acme".into(),
        session_id: id.into(),
    };
    let old = c.get_session(get(&first)).await.unwrap().into_inner();
    assert_eq!(
        old.status,
        SessionStatus::Closed as i32,
        "the finished hour is closed (its last batch flushed)"
    );
    assert_eq!(old.frames_received, 3);
    assert_eq!(old.batches_emitted, 1);
    let new = c.get_session(get(&second)).await.unwrap().into_inner();
    assert_eq!(new.status, SessionStatus::Open as i32);
    assert_eq!((new.frames_received, new.camera_id.as_str()), (1, "aisle"));
    assert_eq!(new.started_at_ms, 1_763_000_000_000 + HOUR_MS);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_batch_is_emitted_when_its_timeout_expires() {
    let t = TestServer::start(common::pixels_only(PipelineConfig {
        batch_timeout_ms: 300,
        ..PipelineConfig::default()
    }))
    .await;
    // Three frames: a batch covers frames up to the one before the newest while the session goes on
    // (the newest may still end a track), so the timeout's batch holds two.
    let jpegs = common::jpeg_frames("vtest.avi", 1.0, 3);
    let items: Vec<_> = jpegs
        .iter()
        .enumerate()
        .map(|(i, (pos, j))| (i as u64, *pos, j.clone(), ImageFormat::Jpeg))
        .collect();
    common::send(
        &t.url,
        common::frames("acme", "till", 1_763_000_000_000, &items),
    )
    .await;
    let found = common::wait_for_interactions(&t.url, "acme", 1).await;
    assert_eq!(
        found.len(),
        1,
        "one batch of 2 frames, without closing the session"
    );
    let data: serde_json::Value = serde_json::from_str(&found[0].data_json).unwrap();
    assert_eq!(data["frames"].as_array().unwrap().len(), 2);
    assert_eq!(data["frame_range"], serde_json::json!([0, 1]));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_frames_are_rejected_and_oversize_messages_refused_without_harm() {
    let t = TestServer::start(common::pixels_only(PipelineConfig {
        limits: crow::actors::LimitsConfig {
            max_frame_bytes: 50_000,
            ..Default::default()
        },
        ..PipelineConfig::default()
    }))
    .await;
    let jpegs = common::jpeg_frames("vtest.avi", 1.0, 3);
    assert!(
        jpegs[0].1.len() > 50_000,
        "a vtest frame at q80 is about 75 KB"
    );
    let small = {
        let img = crow::inference::decode_frame(
            &jpegs[1].1,
            crow::inference::ImageFormat::Jpeg,
            crow::inference::FrameLimits::DEFAULT,
        )
        .unwrap()
        .image;
        crow::inference::encode_jpeg(&img, 30).unwrap()
    };
    assert!(small.len() < 50_000);
    let items = vec![
        (0, 0, jpegs[0].1.clone(), ImageFormat::Jpeg),
        (1, 1000, small, ImageFormat::Jpeg),
    ];
    let acks = common::send(
        &t.url,
        common::frames("acme", "gate", 1_763_000_000_000, &items),
    )
    .await;
    assert_eq!(acks[0].outcome, FrameOutcome::Rejected as i32);
    assert!(
        acks[0]
            .reason
            .contains("over pipeline.limits.max_frame_bytes"),
        "{}",
        acks[0].reason
    );
    assert_eq!(acks[1].outcome, FrameOutcome::Accepted as i32);

    // A message far over the transport limit ends that stream with a clear status ...
    let huge = vec![(2, 2000, vec![0xFF; 1 << 20], ImageFormat::Jpeg)];
    let mut c = client::connect(&t.url).await.unwrap();
    let err = client::stream_frames(
        &mut c,
        common::frames("acme", "gate", 1_763_000_000_000, &huge),
        |_| {},
    )
    .await
    .unwrap_err();
    let crow::client::ClientError::Status(status) = err else {
        panic!("expected a status, got {err}")
    };
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status
            .message()
            .contains("pipeline.limits.max_message_bytes"),
        "{status:?}"
    );
    // ... and the session and its records are intact: the next stream goes on where it was.
    let s = c
        .get_session(GetSessionRequest {
            organization_id: "acme".into(),
            session_id: acks[1].session_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (s.frames_received, s.frames_rejected, s.last_frame_index),
        (2, 1, 1)
    );
    let next = vec![(3, 3000, jpegs[2].1[..].to_vec(), ImageFormat::Jpeg)];
    let acks = common::send(
        &t.url,
        common::frames("acme", "gate", 1_763_000_000_000, &next),
    )
    .await;
    assert_eq!(acks[0].session_id, s.session_id);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_overload_a_shedding_pipeline_records_frames_shed_and_never_waits() {
    // One slow describer (HOG on every frame) with room for one waiting frame, and every frame worth
    // describing: most of a fast stream finds the queue full.
    let t = TestServer::start(common::pixels_only(PipelineConfig {
        describer_slots: 1,
        describer_queue: 1,
        describer_overload: crow::actors::Overload::Shed,
        duplicate_threshold: 0.0,
        ..PipelineConfig::default()
    }))
    .await;
    let jpegs = common::jpeg_frames("vtest.avi", 10.0, 40);
    let items: Vec<_> = jpegs
        .iter()
        .enumerate()
        .map(|(i, (pos, j))| (i as u64, *pos, j.clone(), ImageFormat::Jpeg))
        .collect();
    let acks = common::send(
        &t.url,
        common::frames("acme", "busy", 1_763_000_000_000, &items),
    )
    .await;
    let shed: Vec<u64> = acks
        .iter()
        .filter(|a| a.outcome == FrameOutcome::Shed as i32)
        .map(|a| a.frame_index)
        .collect();
    assert!(!shed.is_empty(), "a full describer sheds");
    assert!(
        acks.iter()
            .any(|a| a.outcome == FrameOutcome::Accepted as i32),
        "what fits is described"
    );
    let closed = common::close_session(&t.url, "acme", &acks[0].session_id).await;
    assert_eq!(closed.frames_shed, shed.len() as u64);
    assert_eq!(closed.frames_described, closed.frames_accepted);
    let records = common::wait_for_interactions(&t.url, "acme", closed.batches_emitted).await;
    common::assert_each_frame_batched_once(&records, closed.frames_described);
    for i in &records {
        let data: serde_json::Value = serde_json::from_str(&i.data_json).unwrap();
        for f in data["frames"].as_array().unwrap() {
            let index = f["frame_index"].as_u64().unwrap();
            assert!(!shed.contains(&index), "shed frame {index} was described");
        }
    }
    t.stop().await;
}
