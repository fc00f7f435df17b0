//! Distributed mode with real servers: `crow serve` processes in the ingest, analyze and api roles,
//! nats-server with JetStream, PostgreSQL. Camera batches cross JetStream from the ingest node to the
//! analyze nodes, events go through the shared outbox; an analyze node is killed mid-stream and a NATS
//! server of a three-node cluster is killed, and every described frame and every acknowledged event still
//! ends in exactly one record.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crow::client;
use crow::proto::interaction_service_client::InteractionServiceClient;
use crow::proto::{CreateInteractionRequest, GetSummaryRequest, ImageFormat, SourceType};

use crate::common::{self, ServerProcess};
use crate::nats::{NatsCluster, NatsServer};
use crate::pg;

const ORG: &str = "chain";

/// A `crow serve --role ROLE` process of the cluster.
fn node(
    role: &str,
    nats_url: &str,
    postgres_url: &str,
    replicas: &str,
) -> (ServerProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = common::serve_command(
        &dir.path().join("db"),
        &[
            ("CROW_STORAGE__BACKEND", "postgres"),
            ("CROW_STORAGE__POSTGRES_URL", postgres_url),
            ("CROW_PIPELINE__CLUSTER__NATS_URL", nats_url),
            ("CROW_PIPELINE__CLUSTER__REPLICAS", replicas),
            ("CROW_PIPELINE__CLUSTER__ACK_WAIT_MS", "2000"),
            ("CROW_PIPELINE__CLUSTER__OUTBOX_POLL_MS", "100"),
            ("CROW_PIPELINE__BATCH_SIZE", "2"),
            ("CROW_PIPELINE__INTERACTIONS__OUTBOX_BATCH_TIMEOUT_MS", "50"),
            common::PIXELS_ONLY,
        ],
    );
    command.args(["--role", role]);
    (common::spawn_server(command), dir)
}

fn items(n: usize) -> Vec<(u64, i64, Vec<u8>, ImageFormat)> {
    common::jpeg_frames("vtest.avi", 4.0, n)
        .into_iter()
        .enumerate()
        .map(|(i, (pos, j))| (i as u64, pos, j, ImageFormat::Jpeg))
        .collect()
}

async fn summary(url: &str) -> crow::proto::Summary {
    let mut c = InteractionServiceClient::connect(url.to_owned())
        .await
        .unwrap();
    c.get_summary(GetSummaryRequest {
        organization_id: ORG.into(),
    })
    .await
    .unwrap()
    .into_inner()
}

/// Sends `count` web events with idempotency keys through `url`; returns their ids.
async fn send_events(url: &str, first: usize, count: usize) -> Vec<String> {
    let mut c = InteractionServiceClient::connect(url.to_owned())
        .await
        .unwrap();
    let mut ids = Vec::new();
    for n in first..first + count {
        let r = c
            .create_interaction(CreateInteractionRequest {
                organization_id: ORG.into(),
                source_type: SourceType::Web as i32,
                data_json: serde_json::json!({ "order": n }).to_string(),
                summary: format!("online order {n}"),
                timestamp_ms: 1_763_000_000_000 + n as i64,
                idempotency_key: format!("order-{n}"),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        ids.push(r.id);
    }
    ids
}

/// Waits until the api node counts `cctv` camera records and `web` events, then checks that the listing
/// holds each exactly once and every described frame is in exactly one batch record.
async fn expect_records(api: &str, cctv: u64, web: &[String], frames_described: u64) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let s = summary(api).await;
        if s.cctv >= cctv && s.web >= web.len() as u64 {
            assert_eq!((s.cctv, s.web), (cctv, web.len() as u64), "nothing twice");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {cctv} camera records and {} of {} events",
            s.cctv,
            s.web,
            web.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all = common::list_all(api, ORG, 500).await;
    let ids: HashSet<&str> = all.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids.len(), all.len(), "no record listed twice");
    for id in web {
        assert!(ids.contains(id.as_str()), "event {id} stored");
    }
    let camera: Vec<_> = all
        .into_iter()
        .filter(|i| i.source_type == SourceType::Cctv as i32)
        .collect();
    common::assert_each_frame_batched_once(&camera, frames_described);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_cross_jetstream_and_survive_an_analyze_node_killed_mid_stream() {
    let nats = tokio::task::spawn_blocking(NatsServer::start)
        .await
        .unwrap();
    let db = pg::shared().database();
    let (nats_url, pg_url) = (nats.url(), db.url.clone());
    let (ingest, _d1) = node("ingest", &nats_url, &pg_url, "1");
    let (mut analyze_a, _d2) = node("analyze", &nats_url, &pg_url, "1");
    let (analyze_b, _d3) = node("analyze", &nats_url, &pg_url, "1");
    let (api, _d4) = node("api", &nats_url, &pg_url, "1");

    // Roles are enforced: an api node takes no camera stream.
    let mut refused = client::connect(&api.url).await.unwrap();
    let err = client::stream_frames(
        &mut refused,
        common::frames(ORG, "entrance", 0, &items(1)),
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("role is api"), "{err:#}");

    let frames = items(60);
    let start_ms = 1_763_000_000_000;
    let ingest_url = ingest.url.clone();
    let first = frames[..30].to_vec();
    let acks = common::send(
        &ingest_url,
        common::frames(ORG, "entrance", start_ms, &first),
    )
    .await;
    let session_id = acks[0].session_id.clone();
    // Events through the api node and the ingest node alike.
    let mut events = send_events(&api.url, 0, 20).await;
    events.extend(send_events(&ingest_url, 20, 20).await);

    // Once analyze nodes are writing, kill one of them (SIGKILL: its unacknowledged batches are
    // delivered again, to the survivor) while the camera goes on streaming.
    let deadline = Instant::now() + Duration::from_secs(60);
    while summary(&api.url).await.cctv < 2 {
        assert!(Instant::now() < deadline, "no camera record written");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    analyze_a.child.kill().unwrap();
    analyze_a.child.wait().unwrap();
    let rest = frames[30..].to_vec();
    common::send(
        &ingest_url,
        common::frames(ORG, "entrance", start_ms, &rest),
    )
    .await;
    events.extend(send_events(&api.url, 40, 20).await);
    // A retried event (same idempotency key) is the same event.
    let again = send_events(&api.url, 5, 1).await;
    assert_eq!(again[0], events[5]);

    let closed = common::close_session(&ingest_url, ORG, &session_id).await;
    assert_eq!(closed.frames_received, 60);
    assert!(closed.batches_emitted >= 10, "{closed:?}");
    expect_records(
        &api.url,
        closed.batches_emitted,
        &events,
        closed.frames_described,
    )
    .await;
    drop((analyze_b, ingest, api));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_continues_when_one_of_three_nats_servers_is_killed() {
    let mut cluster = tokio::task::spawn_blocking(NatsCluster::start)
        .await
        .unwrap();
    let db = pg::shared().database();
    let (nats_url, pg_url) = (cluster.urls(), db.url.clone());
    let (ingest, _d1) = node("ingest", &nats_url, &pg_url, "3");
    let (analyze, _d2) = node("analyze", &nats_url, &pg_url, "3");

    let frames = items(40);
    let start_ms = 1_763_000_000_000;
    let acks = common::send(
        &ingest.url,
        common::frames(ORG, "aisle", start_ms, &frames[..20]),
    )
    .await;
    let session_id = acks[0].session_id.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    while summary(&ingest.url).await.cctv < 2 {
        assert!(Instant::now() < deadline, "no camera record written");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The first server is the one both nodes connected to first.
    cluster.servers[0].kill();
    common::send(
        &ingest.url,
        common::frames(ORG, "aisle", start_ms, &frames[20..]),
    )
    .await;
    let closed = common::close_session(&ingest.url, ORG, &session_id).await;
    assert_eq!(closed.frames_received, 40);
    expect_records(
        &ingest.url,
        closed.batches_emitted,
        &[],
        closed.frames_described,
    )
    .await;
    drop((analyze, ingest));
}
