//! Disk safety: retention removes old keyframes (by total size and age) and never an interaction, and
//! under the disk floor crow stops storing keyframes while it goes on storing interactions.

use std::time::Duration;

use crow::actors::RetentionConfig;
use crow::storage::{InteractionFilter, SourceType, Store};
use crow::{Crow, PipelineConfig};

use crate::common;

fn config(retention: RetentionConfig) -> PipelineConfig {
    common::pixels_only(PipelineConfig {
        batch_size: 3,
        // Keep every readable frame, so that there are many keyframes.
        duplicate_threshold: 0.0,
        retention,
        ..PipelineConfig::default()
    })
}

/// Every CCTV interaction of `org`.
fn cctv(store: &Store, org: &str) -> Vec<crow::storage::Interaction> {
    let filter = InteractionFilter {
        source: Some(SourceType::Cctv),
        ..Default::default()
    };
    store
        .list_interactions(org, &filter, 500, None)
        .unwrap()
        .interactions
}

/// Waits (at most 20 s) until `done` holds.
async fn until(mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn with_a_tiny_byte_limit_old_keyframes_are_removed_and_interactions_stay() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 300_000;
    let crow = Crow::builder()
        .data_dir(dir.path().join("db"))
        .pipeline_config(config(RetentionConfig {
            keyframe_max_bytes: limit,
            // Only the size limit is under test here; the floor is checked below.
            min_free_disk_bytes: 0,
            sweep_interval_ms: 50,
            ..RetentionConfig::default()
        }))
        .build()
        .await
        .unwrap();
    let report = crow::ingest::ingest_media(
        crow.pipeline(),
        common::data("vtest.avi"),
        "shop",
        "door",
        Some(1.0),
    )
    .await
    .unwrap();
    assert!(report.accepted >= 30, "{report:?}");
    let store = crow.store().clone();
    let session = report.session_ids[0].clone();
    let batches = store.batches(&session).unwrap().len();
    assert_eq!(batches as u64, report.accepted.div_ceil(3), "{report:?}");
    until(|| cctv(&store, "shop").len() == batches && store.keyframe_bytes() <= limit).await;

    let kept = store.keyframe_indexes(&session).unwrap();
    assert!(
        !kept.is_empty() && (kept.len() as u64) < report.accepted,
        "{kept:?}"
    );
    // The newest keyframes are the ones left: the last described frame's is there, the first one's not.
    let described: Vec<u64> = store
        .frames(&session)
        .unwrap()
        .into_iter()
        .filter(|f| f.description.is_some())
        .map(|f| f.frame_index)
        .collect();
    assert_eq!(kept.last(), described.last());
    assert!(!kept.contains(&described[0]));
    assert_eq!(
        store
            .keyframe(&session, *kept.last().unwrap())
            .unwrap()
            .map(|b| b[..2].to_vec()),
        Some(vec![0xFF, 0xD8]),
        "a keyframe is the frame's JPEG"
    );
    // Over gRPC: the kept keyframe comes back as the camera sent it; a pruned one is NOT_FOUND.
    let server = crow::server::spawn(
        crow.pipeline().clone(),
        "127.0.0.1:0".parse().unwrap(),
        crow::auth::Authenticator::disabled(),
    )
    .await
    .unwrap();
    let mut ingest = crow::client::connect(&server.url()).await.unwrap();
    let request = |frame_index| crow::proto::GetKeyframeRequest {
        organization_id: "shop".into(),
        session_id: session.clone(),
        frame_index,
    };
    let newest = *kept.last().unwrap();
    let keyframe = ingest
        .get_keyframe(request(newest))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        Some(keyframe.data),
        store.keyframe(&session, newest).unwrap()
    );
    assert_eq!(keyframe.format, crow::proto::ImageFormat::Jpeg as i32);
    assert!(keyframe.captured_at_ms > 0);
    let pruned = ingest
        .get_keyframe(request(described[0]))
        .await
        .unwrap_err();
    assert_eq!(pruned.code(), tonic::Code::NotFound, "{pruned:?}");
    server.shutdown().await;

    // Every batch still has its interaction, and nothing else was touched.
    let interactions = cctv(&store, "shop");
    assert_eq!(interactions.len(), batches);
    let frames_in_interactions: usize = interactions
        .iter()
        .map(|i| i.data["frames"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(frames_in_interactions as u64, report.accepted);
    crow.shutdown().await;
    drop((crow, store));
    let report = common::open_when_released(dir.path().join("db"))
        .await
        .verify()
        .unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[tokio::test]
async fn below_the_disk_floor_keyframes_stop_and_interactions_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let crow = Crow::builder()
        .data_dir(dir.path().join("db"))
        .pipeline_config(config(RetentionConfig {
            // No disk has this much free: the floor is always reached.
            min_free_disk_bytes: u64::MAX,
            sweep_interval_ms: 50,
            ..RetentionConfig::default()
        }))
        .build()
        .await
        .unwrap();
    let pipeline = crow.pipeline().clone();
    until(|| pipeline.disk().is_low()).await;
    assert!(pipeline.disk().free_bytes().is_some());
    let report = crow::ingest::ingest_media(
        crow.pipeline(),
        common::data("vtest.avi"),
        "shop",
        "door",
        Some(0.5),
    )
    .await
    .unwrap();
    assert!(report.accepted >= 10, "{report:?}");
    let store = crow.store().clone();
    let batches = store.batches(&report.session_ids[0]).unwrap().len();
    until(|| cctv(&store, "shop").len() == batches).await;
    assert_eq!(
        store.keyframe_count(),
        0,
        "no optional data under the floor"
    );
    assert_eq!(store.keyframe_bytes(), 0);
    crow.shutdown().await;
}
