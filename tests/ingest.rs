//! A real video through the whole pipeline, and bad frames that must not stop a stream.

use crow::client::{self, StreamOptions};
use crow::proto::{FrameOutcome, GetSessionRequest, ImageFormat, SourceType};
use crow::PipelineConfig;

use crate::common::{self, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_video_becomes_cctv_interactions() {
    let t = TestServer::start(PipelineConfig::default()).await;
    let mut options = StreamOptions::new("acme", "entrance");
    options.sample_fps = Some(4.0);
    options.start_ms = 1_763_000_000_000;
    let report = client::stream_media(&t.url, common::data("Megamind.avi"), &options, |_| {})
        .await
        .unwrap();
    assert!(
        report.frames_sent >= 20,
        "Megamind.avi at 4 fps gives {} frames",
        report.frames_sent
    );
    assert_eq!(report.acked, report.frames_sent, "every frame is acked");
    assert_eq!(report.session_ids.len(), 1);
    let session_id = report.session_ids[0].clone();

    let mut ingest = client::connect(&t.url).await.unwrap();
    let closed = common::close_session(&t.url, "acme", &session_id).await;
    assert_eq!(closed.frames_received, report.frames_sent);
    assert_eq!(closed.frames_accepted, report.accepted);
    assert_eq!(closed.frames_skipped, report.skipped);
    assert_eq!(
        closed.frames_rejected, 0,
        "a clean video has no rejected frame: {:?}",
        report.rejected
    );
    assert_eq!(
        closed.frames_described, closed.frames_accepted,
        "closing waits for every description"
    );
    assert_eq!(closed.batches_emitted, closed.frames_described.div_ceil(5));
    assert_eq!(closed.last_frame_index, report.frames_sent as i64 - 1);

    let (first_ms, last_ms) = report.captured_range_ms.unwrap();
    // The analyzer writes each batch's interaction asynchronously after the close returns.
    common::wait_for_interactions(&t.url, "acme", closed.batches_emitted).await;
    let interactions = common::list_all(&t.url, "acme", 7).await;
    assert_eq!(
        interactions.len() as u64,
        closed.batches_emitted,
        "one interaction per batch"
    );
    for i in &interactions {
        assert_eq!(i.source_type, SourceType::Cctv as i32);
        assert_eq!(i.session_id, session_id);
        assert!(!i.summary.trim().is_empty());
        assert!(
            (first_ms..=last_ms).contains(&i.timestamp_ms),
            "{} outside the video's time range",
            i.timestamp_ms
        );
        assert!((0.0..=1.0).contains(&i.confidence));
        let data: serde_json::Value = serde_json::from_str(&i.data_json).unwrap();
        assert!(!data["frames"].as_array().unwrap().is_empty());
    }
    common::assert_each_frame_batched_once(&interactions, closed.frames_described);

    // Another organization sees neither the session nor its records.
    let err = ingest
        .get_session(GetSessionRequest {
            organization_id: "other".into(),
            session_id,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert!(common::list_all(&t.url, "other", 50).await.is_empty());
    t.stop().await;
}

/// The first `00dc` (compressed video) chunk of an AVI after `skip` others: real frame data that is not
/// an image file.
fn avi_chunk(bytes: &[u8], skip: usize) -> Vec<u8> {
    let mut at = 0;
    let mut seen = 0;
    while let Some(pos) = bytes[at..].windows(4).position(|w| w == b"00dc") {
        let start = at + pos;
        let len = u32::from_le_bytes(bytes[start + 4..start + 8].try_into().unwrap()) as usize;
        if len > 64 && start + 8 + len <= bytes.len() {
            if seen == skip {
                return bytes[start + 8..start + 8 + len].to_vec();
            }
            seen += 1;
        }
        at = start + 4;
    }
    panic!("no video chunk found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_frames_are_rejected_and_the_stream_goes_on() {
    let t = TestServer::start(common::pixels_only(PipelineConfig::default())).await;
    let good = common::jpeg_frames("vtest.avi", 2.0, 3);
    let bugy = std::fs::read(common::data("Megamind_bugy.avi")).unwrap();
    let png = {
        use crow::inference::opencv::{core::Vector, imgcodecs, prelude::*};
        let img = crow::inference::decode_frame(
            &good[0].1,
            crow::inference::ImageFormat::Jpeg,
            crow::inference::FrameLimits::DEFAULT,
        )
        .unwrap()
        .image;
        let mut out = Vector::<u8>::new();
        imgcodecs::imencode(".png", &img, &mut out, &Vector::new()).unwrap();
        out.to_vec()
    };
    // A deterministic "random" buffer (xorshift), starting like a JPEG so the decoder is exercised.
    let mut noise = vec![0xFF, 0xD8, 0xFF];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.push(x as u8);
    }
    noise.extend_from_slice(&[0xFF, 0xD9]);

    let items = vec![
        (0, 0, good[0].1.clone(), ImageFormat::Jpeg),
        (
            1,
            100,
            good[0].1[..good[0].1.len() / 2].to_vec(),
            ImageFormat::Jpeg,
        ),
        (2, 200, noise, ImageFormat::Jpeg),
        (3, 300, avi_chunk(&bugy, 10), ImageFormat::Jpeg),
        (4, 400, png.clone(), ImageFormat::Jpeg),
        (5, 500, good[1].1.clone(), ImageFormat::Unspecified),
        (6, 600, Vec::new(), ImageFormat::Png),
        (7, 700, png, ImageFormat::Png),
        (8, 1500, good[2].1.clone(), ImageFormat::Jpeg),
    ];
    let acks = common::send(
        &t.url,
        common::frames("acme", "cam", 1_763_000_000_000, &items),
    )
    .await;
    assert_eq!(
        acks.len(),
        items.len(),
        "the stream goes on after bad frames"
    );
    let outcome = |i: usize| FrameOutcome::try_from(acks[i].outcome).unwrap();
    assert_eq!(outcome(0), FrameOutcome::Accepted);
    for (i, words) in [
        (1, "truncated"),
        (2, "does not decode"),
        (3, "signature"),
        (4, "signature"),
        (5, "unspecified"),
        (6, "empty"),
    ] {
        assert_eq!(outcome(i), FrameOutcome::Rejected, "frame {i}");
        assert!(
            acks[i].reason.contains(words),
            "frame {i}: reason {:?} should mention {words:?}",
            acks[i].reason
        );
    }
    assert_ne!(
        outcome(7),
        FrameOutcome::Rejected,
        "a PNG declared as PNG decodes: {}",
        acks[7].reason
    );
    assert_eq!(outcome(8), FrameOutcome::Accepted);

    // The corrupt AVI itself, read as a camera would: what OpenCV can read goes through.
    let mut options = StreamOptions::new("acme", "cam-bugy");
    options.sample_fps = Some(4.0);
    let report = client::stream_media(&t.url, common::data("Megamind_bugy.avi"), &options, |_| {})
        .await
        .unwrap();
    assert!(report.frames_sent > 0);
    assert_eq!(report.acked, report.frames_sent);
    t.stop().await;
}
