//! The hostile-input corpus (`tests/data/hostile/`, each file named for what it tries) against a real
//! server: every input gets its expected, sanitized status; the server serves the next request after
//! each; and afterwards every record stored before is intact and the database passes a full
//! consistency check.

use std::path::PathBuf;
use std::time::Duration;

use crow::proto::analysis_service_client::AnalysisServiceClient;
use crow::proto::ingest_service_client::IngestServiceClient;
use crow::proto::interaction_service_client::InteractionServiceClient;
use crow::proto::{
    CloseSessionRequest, CreateInteractionRequest, CreateSessionRequest, Frame, FrameAck,
    FrameOutcome, GetSessionRequest, GetSummaryRequest, ImageFormat, ListInteractionsRequest,
    SourceType, StreamFramesRequest, WatchPatternsRequest,
};
use crow::PipelineConfig;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Code;

use crate::common::{self, TestServer};

const ORG: &str = "hostile-org";

fn corpus(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/hostile")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Fails when a client-facing message shows internals: type or module paths, files, storage or
/// serialization details, panics.
fn assert_sanitized(what: &str, message: &str) {
    for leak in [
        "::", "crow_", "sled", "serde", "prost", ".rs", "/src/", "panick", "Error {", "tree",
    ] {
        assert!(
            !message.contains(leak),
            "{what}: message leaks internals ({leak:?}): {message}"
        );
    }
}

/// A [`TestServer`] with small limits, so that each can be hit cheaply.
struct Hostile {
    t: TestServer,
    url: String,
}

impl Hostile {
    async fn start() -> Hostile {
        let mut config = PipelineConfig {
            batch_size: 2,
            batch_timeout_ms: 300,
            ..PipelineConfig::default()
        };
        config.interactions.outbox_batch_timeout_ms = 50;
        // Hostile input is about acks and storage, not about people.
        let mut config = common::pixels_only(config);
        config.limits.max_fps_per_session = 30;
        config.limits.max_streams_per_org = 3;
        config.limits.max_watchers_per_org = 2;
        let t = TestServer::start(config).await;
        Hostile {
            url: t.url.clone(),
            t,
        }
    }

    async fn ingest(&self) -> IngestServiceClient<Channel> {
        IngestServiceClient::connect(self.url.clone())
            .await
            .unwrap()
    }

    async fn interactions(&self) -> InteractionServiceClient<Channel> {
        InteractionServiceClient::connect(self.url.clone())
            .await
            .unwrap()
    }

    /// The server answers an ordinary request.
    async fn still_serves(&self, after: &str) {
        self.interactions()
            .await
            .get_summary(GetSummaryRequest {
                organization_id: ORG.into(),
            })
            .await
            .unwrap_or_else(|s| panic!("after {after}: the server no longer serves: {s}"));
    }

    /// Sends frames on one stream; returns the acks and the status that ended the stream, if any.
    async fn stream(&self, frames: Vec<Frame>) -> (Vec<FrameAck>, Option<tonic::Status>) {
        let (tx, rx) = mpsc::channel(frames.len().max(1));
        for f in frames {
            tx.try_send(StreamFramesRequest { frame: Some(f) }).unwrap();
        }
        drop(tx);
        let mut response = match self
            .ingest()
            .await
            .stream_frames(ReceiverStream::new(rx))
            .await
        {
            Ok(r) => r.into_inner(),
            Err(s) => return (vec![], Some(s)),
        };
        let mut acks = Vec::new();
        loop {
            match response.message().await {
                Ok(Some(m)) => {
                    if let Some(crow::proto::stream_frames_response::Event::Ack(a)) = m.event {
                        acks.push(a);
                    }
                }
                Ok(None) => return (acks, None),
                Err(s) => return (acks, Some(s)),
            }
        }
    }

    /// Stops the server and the pipeline; the data directory outlives them.
    async fn stop(self) -> tempfile::TempDir {
        self.t.stop_keeping_data().await
    }
}

fn frame(camera: &str, session: &str, index: u64, data: Vec<u8>, format: ImageFormat) -> Frame {
    Frame {
        organization_id: ORG.into(),
        camera_id: camera.into(),
        session_id: session.into(),
        frame_index: index,
        captured_at_ms: 1_700_000_000_000 + index as i64 * 100,
        data,
        format: format as i32,
    }
}

/// Frame files: (file, declared format, expected rejection reason; `None` = accepted).
const FRAME_CASES: &[(&str, ImageFormat, Option<&str>)] = &[
    ("valid-happy-fish.jpg", ImageFormat::Jpeg, None),
    ("valid-template.png", ImageFormat::Png, None),
    ("zero-bytes.jpg", ImageFormat::Jpeg, Some("frame is empty")),
    (
        "jpeg-truncated-at-half.jpg",
        ImageFormat::Jpeg,
        Some("truncated"),
    ),
    (
        "jpeg-header-claims-60000x60000.jpg",
        ImageFormat::Jpeg,
        Some("pipeline.limits.max_frame_pixels"),
    ),
    (
        "jpeg-header-claims-1x1.jpg",
        ImageFormat::Jpeg,
        Some("outside the accepted"),
    ),
    (
        "jpeg-frame-header-with-zero-components.jpg",
        ImageFormat::Jpeg,
        Some("does not decode as JPEG"),
    ),
    (
        "jpeg-huffman-table-overflows.jpg",
        ImageFormat::Jpeg,
        Some("does not decode as JPEG"),
    ),
    (
        "jpeg-without-frame-header.jpg",
        ImageFormat::Jpeg,
        Some("does not decode as JPEG"),
    ),
    (
        "text-declared-as-jpeg.txt",
        ImageFormat::Jpeg,
        Some("does not decode as JPEG"),
    ),
    (
        "png-declared-as-jpeg.png",
        ImageFormat::Jpeg,
        Some("not a JPEG image"),
    ),
    (
        "jpeg-declared-as-png.jpg",
        ImageFormat::Png,
        Some("not a PNG image"),
    ),
    (
        "valid-happy-fish.jpg",
        ImageFormat::Unspecified,
        Some("format is unspecified"),
    ),
    (
        "png-truncated-inside-idat.png",
        ImageFormat::Png,
        Some("truncated"),
    ),
    (
        "png-idat-checksum-wrong.png",
        ImageFormat::Png,
        Some("does not decode as PNG"),
    ),
    (
        "png-idat-deflate-stream-garbled.png",
        ImageFormat::Png,
        Some("does not decode as PNG"),
    ),
    (
        "png-bomb-8192x8192-decodes-to-192mib.png",
        ImageFormat::Png,
        Some("pipeline.limits.max_frame_pixels"),
    ),
];

/// `CreateInteraction` data files: (file, expected message part), all INVALID_ARGUMENT.
const DATA_CASES: &[(&str, &str)] = &[
    (
        "data-json-nested-10000-deep.json",
        "pipeline.limits.max_data_depth",
    ),
    (
        "data-json-nested-20-deep.json",
        "pipeline.limits.max_data_depth",
    ),
    ("data-json-truncated.json", "not valid JSON"),
    ("data-json-top-level-array.json", "must be a JSON object"),
    ("data-json-duplicate-keys-and-nul.json", "not valid JSON"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hostile_corpus_is_refused_cleanly_and_nothing_stored_is_harmed() {
    let h = Hostile::start().await;

    // What is stored before: CCTV records of six real frames, and three web events.
    let jpegs = common::jpeg_frames("vtest.avi", 2.0, 6);
    let baseline: Vec<Frame> = jpegs
        .iter()
        .enumerate()
        .map(|(i, (_, data))| {
            frame(
                "baseline-cam",
                "",
                i as u64,
                data.clone(),
                ImageFormat::Jpeg,
            )
        })
        .collect();
    let (acks, end) = h.stream(baseline).await;
    assert!(end.is_none(), "{end:?}");
    let baseline_session = acks[0].session_id.clone();
    common::close_session(&h.url, ORG, &baseline_session).await;
    for n in 0..3 {
        h.interactions()
            .await
            .create_interaction(CreateInteractionRequest {
                organization_id: ORG.into(),
                source_type: SourceType::Web as i32,
                data_json: format!(r#"{{"page": "/shoes/{n}"}}"#),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let cctv = acks
        .iter()
        .filter(|a| a.outcome == FrameOutcome::Accepted as i32)
        .count();
    let before = common::wait_for_interactions(&h.url, ORG, 3 + cctv.div_ceil(2) as u64).await;
    assert!(before.len() >= 4, "baseline stored: {}", before.len());
    let session_before = h
        .ingest()
        .await
        .get_session(GetSessionRequest {
            organization_id: ORG.into(),
            session_id: baseline_session.clone(),
        })
        .await
        .unwrap()
        .into_inner();

    // Frame files, one stream each.
    for (n, (file, format, expected)) in FRAME_CASES.iter().enumerate() {
        let data = corpus(file);
        let (acks, end) = h
            .stream(vec![frame(
                "hostile-cam",
                "",
                100 + n as u64,
                data,
                *format,
            )])
            .await;
        assert!(end.is_none(), "{file}: the stream must go on: {end:?}");
        let ack = &acks[0];
        match expected {
            None => assert_eq!(
                ack.outcome,
                FrameOutcome::Accepted as i32,
                "{file}: {ack:?}"
            ),
            Some(part) => {
                assert_eq!(
                    ack.outcome,
                    FrameOutcome::Rejected as i32,
                    "{file}: {ack:?}"
                );
                assert_eq!(ack.status_code, Code::InvalidArgument as i32, "{file}");
                assert!(
                    ack.reason.contains(part),
                    "{file}: {:?} lacks {part:?}",
                    ack.reason
                );
                assert_sanitized(file, &ack.reason);
            }
        }
        h.still_serves(file).await;
    }

    // A frame over max_frame_bytes but within the message limit is rejected; one over the message
    // limit ends its stream with RESOURCE_EXHAUSTED naming the setting.
    let over_frame = vec![0xFFu8; 8 * 1024 * 1024 + 1];
    let (acks, end) = h
        .stream(vec![frame(
            "hostile-cam",
            "",
            200,
            over_frame,
            ImageFormat::Jpeg,
        )])
        .await;
    assert!(end.is_none());
    assert!(
        acks[0].reason.contains("pipeline.limits.max_frame_bytes"),
        "{acks:?}"
    );
    let over_message = vec![0xFFu8; 9 * 1024 * 1024];
    let (_, end) = h
        .stream(vec![frame(
            "hostile-cam",
            "",
            201,
            over_message,
            ImageFormat::Jpeg,
        )])
        .await;
    let end = end.expect("an oversize message ends the stream");
    assert_eq!(end.code(), Code::ResourceExhausted, "{end:?}");
    assert!(end.message().contains("max_message_bytes"), "{end:?}");
    h.still_serves("an oversize frame message").await;

    // Sessions: unknown and foreign ids are the same NOT_FOUND; closed sessions refuse frames.
    let valid = corpus("valid-happy-fish.jpg");
    let unknown = uuid::Uuid::new_v4().to_string();
    let (_, end) = h
        .stream(vec![frame(
            "hostile-cam",
            &unknown,
            300,
            valid.clone(),
            ImageFormat::Jpeg,
        )])
        .await;
    let unknown_status = end.expect("an unknown session ends the stream");
    assert_eq!(unknown_status.code(), Code::NotFound);
    let foreign = h
        .ingest()
        .await
        .create_session(CreateSessionRequest {
            organization_id: "other-org".into(),
            camera_id: "cam".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .session_id;
    let (_, end) = h
        .stream(vec![frame(
            "hostile-cam",
            &foreign,
            301,
            valid.clone(),
            ImageFormat::Jpeg,
        )])
        .await;
    let foreign_status = end.expect("a foreign session ends the stream");
    assert_eq!(foreign_status.code(), Code::NotFound);
    assert_eq!(
        foreign_status.message().replace(&foreign, "ID"),
        unknown_status.message().replace(&unknown, "ID"),
        "a foreign session is indistinguishable from an unknown one"
    );
    let closed = h
        .ingest()
        .await
        .create_session(CreateSessionRequest {
            organization_id: ORG.into(),
            camera_id: "closed-cam".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .session_id;
    h.ingest()
        .await
        .close_session(CloseSessionRequest {
            organization_id: ORG.into(),
            session_id: closed.clone(),
        })
        .await
        .unwrap();
    let (acks, end) = h
        .stream(vec![frame(
            "closed-cam",
            &closed,
            0,
            valid.clone(),
            ImageFormat::Jpeg,
        )])
        .await;
    assert!(end.is_none());
    assert_eq!(acks[0].outcome, FrameOutcome::Rejected as i32);
    assert_eq!(acks[0].status_code, Code::FailedPrecondition as i32);
    h.still_serves("frames for unknown, foreign and closed sessions")
        .await;

    // Duplicated and out-of-order frame indexes.
    let order: Vec<Frame> = [(400, 0), (400, 1), (401, 2), (399, 3)]
        .iter()
        .map(|&(index, t)| {
            let mut f = frame(
                "order-cam",
                "",
                index,
                jpegs[t].1.clone(),
                ImageFormat::Jpeg,
            );
            f.captured_at_ms = 1_700_000_000_000 + t as i64 * 100;
            f
        })
        .collect();
    let (acks, end) = h.stream(order).await;
    assert!(end.is_none(), "{end:?}");
    assert_eq!(acks[0].outcome, FrameOutcome::Accepted as i32);
    assert!(
        acks[1].replayed && acks[1].outcome == acks[0].outcome,
        "a resend repeats: {:?}",
        acks[1]
    );
    assert_eq!(acks[2].outcome, FrameOutcome::Accepted as i32);
    assert_eq!(acks[3].outcome, FrameOutcome::Rejected as i32);
    assert!(acks[3].reason.contains("behind"), "{:?}", acks[3]);

    // Frame rate: beyond a second's burst at 30 frames/s, frames are refused and not recorded.
    let burst: Vec<Frame> = (0..90)
        .map(|i| frame("fast-cam", "", i, valid.clone(), ImageFormat::Jpeg))
        .collect();
    let (acks, end) = h.stream(burst).await;
    assert!(end.is_none(), "{end:?}");
    let throttled: Vec<&FrameAck> = acks
        .iter()
        .filter(|a| a.status_code == Code::ResourceExhausted as i32)
        .collect();
    assert!(
        !throttled.is_empty(),
        "90 frames at once exceed 30 frames/s"
    );
    assert!(throttled
        .iter()
        .all(|a| a.outcome == FrameOutcome::Rejected as i32
            && a.reason.contains("pipeline.limits.max_fps_per_session")));
    let recorded = acks
        .iter()
        .find(|a| !a.session_id.is_empty() && a.status_code == 0)
        .unwrap();
    let fast = h
        .ingest()
        .await
        .get_session(GetSessionRequest {
            organization_id: ORG.into(),
            session_id: recorded.session_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        fast.frames_received as usize,
        acks.len() - throttled.len(),
        "refused frames are not recorded"
    );

    // crow's client paces itself to the rate the server announces, so it is never refused.
    let (tx, rx) = mpsc::channel(90);
    for i in 0..90 {
        tx.try_send(frame("paced-cam", "", i, valid.clone(), ImageFormat::Jpeg))
            .unwrap();
    }
    drop(tx);
    let mut paced = crow::client::connect(&h.url).await.unwrap();
    let (_, acks) = crow::client::stream_frames(&mut paced, rx, |_| {})
        .await
        .unwrap();
    assert_eq!(acks.len(), 90);
    assert!(
        acks.iter()
            .all(|a| a.status_code != Code::ResourceExhausted as i32),
        "a paced client is never throttled"
    );

    // Streams per organization: the fourth concurrent stream is refused; closing one frees a slot.
    let mut open = Vec::new();
    for n in 0..3 {
        let (tx, rx) = mpsc::channel(4);
        tx.send(StreamFramesRequest {
            frame: Some(frame(
                &format!("slot-cam-{n}"),
                "",
                0,
                valid.clone(),
                ImageFormat::Jpeg,
            )),
        })
        .await
        .unwrap();
        let mut response = h
            .ingest()
            .await
            .stream_frames(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        // Credits, then the ack: the stream holds its slot.
        response.message().await.unwrap().unwrap();
        response.message().await.unwrap().unwrap();
        open.push((tx, response));
    }
    let (_, end) = h
        .stream(vec![frame(
            "slot-cam-3",
            "",
            0,
            valid.clone(),
            ImageFormat::Jpeg,
        )])
        .await;
    let end = end.expect("a fourth stream is refused");
    assert_eq!(end.code(), Code::ResourceExhausted);
    assert!(
        end.message()
            .contains("pipeline.limits.max_streams_per_org"),
        "{end:?}"
    );
    open.clear();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (acks, end) = h
        .stream(vec![frame(
            "slot-cam-3",
            "",
            1,
            valid.clone(),
            ImageFormat::Jpeg,
        )])
        .await;
    assert!(
        end.is_none() && acks.len() == 1,
        "a slot is free again: {end:?}"
    );

    // Pattern subscriptions per organization: the third is refused until one ends.
    let watch = || async {
        AnalysisServiceClient::connect(h.url.clone())
            .await
            .unwrap()
            .watch_patterns(WatchPatternsRequest {
                organization_id: ORG.into(),
                camera_id: String::new(),
            })
            .await
    };
    let first = watch().await.unwrap();
    let _second = watch().await.unwrap();
    let refused = watch().await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused
            .message()
            .contains("pipeline.limits.max_watchers_per_org"),
        "{refused:?}"
    );
    drop(first);
    let mut again = None;
    for _ in 0..50 {
        // The server notices the closed stream asynchronously.
        if let Ok(w) = watch().await {
            again = Some(w);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "a slot is free once a subscriber leaves");
    drop(again);
    drop(_second);

    // CreateInteraction payloads.
    let create = |data_json: String, summary: String| CreateInteractionRequest {
        organization_id: ORG.into(),
        source_type: SourceType::Web as i32,
        data_json,
        summary,
        ..Default::default()
    };
    for (file, part) in DATA_CASES {
        let data = String::from_utf8(corpus(file)).unwrap();
        let status = h
            .interactions()
            .await
            .create_interaction(create(data, String::new()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{file}: {status:?}");
        assert!(status.message().contains(part), "{file}: {status:?}");
        assert_sanitized(file, status.message());
        h.still_serves(file).await;
    }
    let cases: Vec<(&str, CreateInteractionRequest, Code, &str)> = vec![
        (
            "a 10 MiB summary",
            create("{}".into(), "A".repeat(10 << 20)),
            Code::ResourceExhausted,
            "pipeline.limits.max_message_bytes",
        ),
        (
            "a 3 MiB summary",
            create("{}".into(), "A".repeat(3 << 20)),
            Code::InvalidArgument,
            "pipeline.limits.max_summary_chars",
        ),
        (
            "1 MiB of data_json",
            create(
                format!(r#"{{"a":"{}"}}"#, "x".repeat(1 << 20)),
                String::new(),
            ),
            Code::InvalidArgument,
            "pipeline.limits.max_data_bytes",
        ),
        (
            "a 10 KiB organization id",
            CreateInteractionRequest {
                organization_id: "o".repeat(10 << 10),
                ..create("{}".into(), String::new())
            },
            Code::InvalidArgument,
            "organization_id is longer than 128",
        ),
    ];
    for (what, request, code, part) in cases {
        let status = h
            .interactions()
            .await
            .create_interaction(request)
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{what}: {status:?}");
        assert!(status.message().contains(part), "{what}: {status:?}");
        assert_sanitized(what, status.message());
        h.still_serves(what).await;
    }
    for (what, request, part) in [
        (
            "a 10 MiB search query",
            ListInteractionsRequest {
                organization_id: ORG.into(),
                q: "a ".repeat(5 << 20),
                ..Default::default()
            },
            "pipeline.limits.max_message_bytes",
        ),
        (
            "a 1 KiB search query",
            ListInteractionsRequest {
                organization_id: ORG.into(),
                q: "a".repeat(1 << 10),
                ..Default::default()
            },
            "pipeline.limits.max_query_bytes",
        ),
        (
            "a page of 100000",
            ListInteractionsRequest {
                organization_id: ORG.into(),
                page_size: 100_000,
                ..Default::default()
            },
            "pipeline.limits.max_page_size",
        ),
        (
            "a forged page token",
            ListInteractionsRequest {
                organization_id: ORG.into(),
                page_token: "AAAA//8=".into(),
                ..Default::default()
            },
            "page_token",
        ),
    ] {
        let status = h
            .interactions()
            .await
            .list_interactions(request)
            .await
            .unwrap_err();
        assert!(
            matches!(
                status.code(),
                Code::InvalidArgument | Code::ResourceExhausted
            ),
            "{what}: {status:?}"
        );
        assert!(status.message().contains(part), "{what}: {status:?}");
        assert_sanitized(what, status.message());
        h.still_serves(what).await;
    }

    // A string field that is not UTF-8, sent as raw protobuf.
    let status = raw_create_interaction(&h.url, corpus("string-invalid-utf8.bin")).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_sanitized("string-invalid-utf8.bin", status.message());
    h.still_serves("string-invalid-utf8.bin").await;

    // Everything stored before is still there, unchanged.
    let after = common::list_all(&h.url, ORG, 100).await;
    for record in &before {
        assert!(
            after.contains(record),
            "record {} changed or vanished",
            record.id
        );
    }
    let session_after = h
        .ingest()
        .await
        .get_session(GetSessionRequest {
            organization_id: ORG.into(),
            session_id: baseline_session,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(session_after, session_before);

    // And the database, read directly after shutdown, is consistent throughout.
    let dir = h.stop().await;
    let store = common::open_when_released(dir.path().join("db")).await;
    let report = store.verify().unwrap();
    assert!(report.is_sound(), "{:#?}", report.problems);
    assert!(
        report.interactions as usize >= before.len() && report.frames > 0,
        "{report:?}"
    );
}

/// Sends `CreateInteraction` with `data_json` replaced by arbitrary bytes (protobuf's `string` and
/// `bytes` share a wire type, so a lookalike message can carry what a real client cannot).
async fn raw_create_interaction(url: &str, data_json: Vec<u8>) -> tonic::Status {
    #[derive(Clone, PartialEq, prost::Message)]
    struct RawCreateInteraction {
        #[prost(string, tag = "1")]
        organization_id: String,
        #[prost(int32, tag = "2")]
        source_type: i32,
        #[prost(bytes = "vec", tag = "3")]
        data_json: Vec<u8>,
    }
    let channel = Channel::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let request = RawCreateInteraction {
        organization_id: ORG.into(),
        source_type: SourceType::Web as i32,
        data_json,
    };
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/crow.v1.InteractionService/CreateInteraction",
    );
    let codec = tonic_prost::ProstCodec::<
        RawCreateInteraction,
        crow::proto::CreateInteractionResponse,
    >::default();
    grpc.unary(tonic::Request::new(request), path, codec)
        .await
        .unwrap_err()
}
