//! Distributed mode with real servers: `crow serve` processes in the ingest, analyze and api roles,
//! nats-server with JetStream, PostgreSQL. Camera batches cross JetStream from the ingest nodes to the
//! analyze nodes, events go through the shared outbox; an ingest node and an analyze node are killed
//! mid-stream (the camera moves to the surviving ingest node and its session goes on there), a NATS
//! server of a three-node cluster is killed, and every described frame and every acknowledged event still
//! ends in exactly one record; the dead letters hold exactly the events made to fail.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crow::client;
use crow::proto::interaction_service_client::InteractionServiceClient;
use crow::proto::{
    CreateInteractionRequest, FrameOutcome, GetSummaryRequest, ImageFormat, ListDeadLettersRequest,
    SourceType,
};

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
    node_with(role, nats_url, postgres_url, replicas, &[])
}

/// [`node`] with more settings.
fn node_with(
    role: &str,
    nats_url: &str,
    postgres_url: &str,
    replicas: &str,
    more: &[(&str, &str)],
) -> (ServerProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut envs = vec![
        ("CROW_STORAGE__BACKEND", "postgres"),
        ("CROW_STORAGE__POSTGRES_URL", postgres_url),
        ("CROW_PIPELINE__CLUSTER__NATS_URL", nats_url),
        ("CROW_PIPELINE__CLUSTER__REPLICAS", replicas),
        ("CROW_PIPELINE__CLUSTER__ACK_WAIT_MS", "2000"),
        ("CROW_PIPELINE__CLUSTER__OUTBOX_POLL_MS", "100"),
        ("CROW_PIPELINE__BATCH_SIZE", "2"),
        ("CROW_PIPELINE__INTERACTIONS__OUTBOX_BATCH_TIMEOUT_MS", "50"),
        common::PIXELS_ONLY,
    ];
    envs.extend_from_slice(more);
    let mut command = common::serve_command(&dir.path().join("db"), &envs);
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
    send_events_named(url, "online order", first, count).await
}

/// [`send_events`] with summaries `"{what} {n}"`.
async fn send_events_named(url: &str, what: &str, first: usize, count: usize) -> Vec<String> {
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
                summary: format!("{what} {n}"),
                timestamp_ms: 1_763_000_000_000 + n as i64,
                idempotency_key: format!("{}-{n}", what.replace(' ', "-")),
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
/// holds each exactly once and every described frame is in exactly one batch record; returns the frame
/// indexes the camera records hold.
async fn expect_records(
    api: &str,
    cctv: u64,
    web: &[String],
    frames_described: u64,
) -> BTreeSet<u64> {
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
    common::assert_each_frame_batched_once(&camera, frames_described)
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

/// Every event in the organization's dead letters, by id.
async fn dead_letters(url: &str) -> BTreeSet<String> {
    let mut c = InteractionServiceClient::connect(url.to_owned())
        .await
        .unwrap();
    let page = c
        .list_dead_letters(ListDeadLettersRequest {
            organization_id: ORG.into(),
            page_size: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    page.dead_letters.into_iter().map(|d| d.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_moves_to_the_surviving_ingest_node_when_its_node_is_killed() {
    let nats = tokio::task::spawn_blocking(NatsServer::start)
        .await
        .unwrap();
    let db = pg::shared().database();
    let (nats_url, pg_url) = (nats.url(), db.url.clone());
    // Events whose summary says "poison" fail every processing attempt (fault injection in the analyze
    // nodes' processors): they, and only they, must end in the dead letters.
    let settings = [
        ("CROW_FAULT_INJECTION_EVENT_MARKER", "poison"),
        ("CROW_PIPELINE__INTERACTIONS__MAX_RETRIES", "2"),
        ("CROW_PIPELINE__INTERACTIONS__RETRY_DELAY_MS", "100"),
        // One describer slot: descriptions lag behind the stream, so the kill finds work in flight.
        ("CROW_PIPELINE__DESCRIBER_SLOTS", "1"),
    ];
    let start = |role| node_with(role, &nats_url, &pg_url, "1", &settings);
    let (mut ingest_a, _d1) = start("ingest");
    let (ingest_b, _d2) = start("ingest");
    let (mut analyze_a, _d3) = start("analyze");
    let (analyze_b, _d4) = start("analyze");
    let (api, _d5) = start("api");

    let frames = items(80);
    let start_ms = 1_763_000_000_000;
    // The camera streams to ingest node A; events arrive through both ingest nodes and the api node.
    let acked = Arc::new(Mutex::new(Vec::<crow::proto::FrameAck>::new()));
    let stream_a = {
        let (url, acked, all) = (ingest_a.url.clone(), Arc::clone(&acked), frames.clone());
        tokio::spawn(async move {
            let mut c = client::connect(&url).await.unwrap();
            client::stream_frames(
                &mut c,
                common::frames(ORG, "entrance", start_ms, &all),
                |ack| acked.lock().unwrap().push(ack.clone()),
            )
            .await
        })
    };
    let mut events = send_events(&ingest_a.url, 0, 15).await;
    let mut poison = send_events_named(&ingest_a.url, "poison", 0, 2).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 30 || summary(&api.url).await.cctv < 2 {
        assert!(Instant::now() < deadline, "the stream did not get going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // SIGKILL ingest node A mid-stream, and analyze node A (its unacknowledged batches go to B).
    ingest_a.child.kill().unwrap();
    ingest_a.child.wait().unwrap();
    analyze_a.child.kill().unwrap();
    analyze_a.child.wait().unwrap();
    assert!(
        stream_a.await.unwrap().is_err(),
        "the stream broke with its node"
    );
    let acks_a = acked.lock().unwrap().clone();
    assert!(acks_a.len() < frames.len(), "killed before the end");
    let session_id = acks_a[0].session_id.clone();
    assert!(acks_a.iter().all(|a| a.session_id == session_id));

    // The camera reconnects to node B without naming its session and resends what was not acked.
    let resume = acks_a.iter().map(|a| a.frame_index).max().unwrap() + 1;
    let acks_b = common::send(
        &ingest_b.url,
        common::frames(ORG, "entrance", start_ms, &frames[resume as usize..]),
    )
    .await;
    assert!(
        acks_b.iter().all(|a| a.session_id == session_id),
        "the session goes on on node B"
    );
    eprintln!(
        "node A acked {} frames before SIGKILL; node B took the session over and answered {} of the {} resent frames from the journal",
        acks_a.len(),
        acks_b.iter().filter(|a| a.replayed).count(),
        acks_b.len()
    );
    events.extend(send_events(&ingest_b.url, 15, 15).await);
    events.extend(send_events(&api.url, 30, 15).await);
    poison.extend(send_events_named(&ingest_b.url, "poison", 2, 1).await);
    poison.extend(send_events_named(&api.url, "poison", 3, 1).await);

    let closed = common::close_session(&ingest_b.url, ORG, &session_id).await;
    assert_eq!(closed.frames_received, frames.len() as u64, "{closed:?}");
    assert_eq!(
        closed.frames_accepted, closed.frames_described,
        "{closed:?}"
    );
    // Every frame acknowledged as accepted, by either node, is in exactly one record.
    let recorded = expect_records(
        &api.url,
        closed.batches_emitted,
        &events,
        closed.frames_described,
    )
    .await;
    let accepted: BTreeSet<u64> = acks_a
        .iter()
        .chain(&acks_b)
        .filter(|a| a.outcome == FrameOutcome::Accepted as i32)
        .map(|a| a.frame_index)
        .collect();
    assert!(
        accepted.is_subset(&recorded),
        "acknowledged frames missing from the records: {:?}",
        accepted.difference(&recorded).collect::<Vec<_>>()
    );
    assert_eq!(recorded.len() as u64, closed.frames_accepted);

    // Closed, every batch handed on: the session's journal is deleted.
    let js = async_nats::jetstream::new(async_nats::connect(nats_url.as_str()).await.unwrap());
    let journal = js.get_stream("CROW_SESSIONS").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while journal
        .get_last_raw_message_by_subject(&format!("crow.sessions.{session_id}"))
        .await
        .is_ok()
    {
        assert!(Instant::now() < deadline, "journal of {session_id} kept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The dead letters hold the poisoned events and nothing else.
    let deadline = Instant::now() + Duration::from_secs(30);
    let expected: BTreeSet<String> = poison.into_iter().collect();
    loop {
        let dead = dead_letters(&api.url).await;
        if dead == expected {
            break;
        }
        assert!(
            dead.is_subset(&expected) && Instant::now() < deadline,
            "dead letters {dead:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop((ingest_b, analyze_b, api));
}

/// The session as `url` reports it.
async fn get_session(url: &str, session_id: &str) -> crow::proto::Session {
    try_get_session(url, session_id).await.unwrap()
}

/// The session as the node at `url` knows it (`NOT_FOUND` while it does not).
async fn try_get_session(
    url: &str,
    session_id: &str,
) -> Result<crow::proto::Session, tonic::Status> {
    let mut c = client::connect(url).await.unwrap();
    c.get_session(crow::proto::GetSessionRequest {
        organization_id: ORG.into(),
        session_id: session_id.into(),
    })
    .await
    .map(tonic::Response::into_inner)
}

/// An ingest node dies and its camera never comes back: once the node has been silent for
/// `orphan_after_ms`, the surviving ingest node takes the session over and closes it, and every frame the
/// dead node acknowledged as accepted is in exactly one record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_session_whose_camera_never_returns_is_closed_by_a_survivor() {
    let nats = tokio::task::spawn_blocking(NatsServer::start)
        .await
        .unwrap();
    let db = pg::shared().database();
    let (nats_url, pg_url) = (nats.url(), db.url.clone());
    // No batch timeout: the descriptions node A had not batched yet reach a record only through the
    // takeover.
    let settings = [
        ("CROW_PIPELINE__BATCH_TIMEOUT_MS", "600000"),
        ("CROW_PIPELINE__BATCH_SIZE", "4"),
        ("CROW_PIPELINE__CLUSTER__ORPHAN_AFTER_MS", "2000"),
    ];
    let start = |role| node_with(role, &nats_url, &pg_url, "1", &settings);
    let (mut ingest_a, _d1) = start("ingest");
    let (ingest_b, _d2) = start("ingest");
    let (analyze, _d3) = start("analyze");

    let acks = common::send(
        &ingest_a.url,
        common::frames(ORG, "back-door", 1_763_000_000_000, &items(18)),
    )
    .await;
    let session_id = acks[0].session_id.clone();
    let accepted: BTreeSet<u64> = acks
        .iter()
        .filter(|a| a.outcome == FrameOutcome::Accepted as i32)
        .map(|a| a.frame_index)
        .collect();
    assert!(accepted.len() >= 3, "{acks:?}");
    ingest_a.child.kill().unwrap();
    ingest_a.child.wait().unwrap();

    // Node B notices the silence and closes the session; nobody streams to it meanwhile.
    let deadline = Instant::now() + Duration::from_secs(60);
    let closed = loop {
        if let Ok(s) = try_get_session(&ingest_b.url, &session_id).await {
            if s.status == crow::proto::SessionStatus::Closed as i32 {
                break s;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node B never took over the dead node's session"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(closed.frames_received, 18);
    let recorded = expect_records(
        &ingest_b.url,
        closed.batches_emitted,
        &[],
        closed.frames_described,
    )
    .await;
    assert_eq!(accepted, recorded, "every accepted frame in one record");
    drop((ingest_b, analyze));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_camera_moved_away_cannot_write_its_session_any_more() {
    let nats = tokio::task::spawn_blocking(NatsServer::start)
        .await
        .unwrap();
    let db = pg::shared().database();
    let (nats_url, pg_url) = (nats.url(), db.url.clone());
    // No batch timeout during the test: node A's session actor writes nothing unless it gets a frame.
    let settings = [("CROW_PIPELINE__BATCH_TIMEOUT_MS", "600000")];
    let start = |role| node_with(role, &nats_url, &pg_url, "1", &settings);
    let (ingest_a, _d1) = start("ingest");
    let (ingest_b, _d2) = start("ingest");
    let (analyze, _d3) = start("analyze");
    let frames = items(31);
    let start_ms = 1_763_000_000_000;

    let acks_a = common::send(
        &ingest_a.url,
        common::frames(ORG, "till", start_ms, &frames[..20]),
    )
    .await;
    let session_id = acks_a[0].session_id.clone();
    // Node A has described everything it accepted: its session actor is idle, and still running.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = get_session(&ingest_a.url, &session_id).await;
        if s.frames_described == s.frames_accepted {
            break;
        }
        assert!(Instant::now() < deadline, "node A never caught up: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Both nodes are alive; the camera's load balancer sends it to node B, which takes the session.
    let acks_b = common::send(
        &ingest_b.url,
        common::frames(ORG, "till", start_ms, &frames[20..30]),
    )
    .await;
    assert!(acks_b.iter().all(|a| a.session_id == session_id));
    // A stale connection to node A: A's next write to the session is refused by the journal.
    let mut stale = client::connect(&ingest_a.url).await.unwrap();
    let err = client::stream_frames(
        &mut stale,
        common::frames(ORG, "till", start_ms, &frames[30..]),
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("moved to another ingest node"),
        "{err:#}"
    );

    let closed = common::close_session(&ingest_b.url, ORG, &session_id).await;
    assert_eq!(
        closed.frames_received, 30,
        "the refused frame is not counted"
    );
    let recorded = expect_records(
        &ingest_b.url,
        closed.batches_emitted,
        &[],
        closed.frames_described,
    )
    .await;
    let accepted: BTreeSet<u64> = acks_a
        .iter()
        .chain(&acks_b)
        .filter(|a| a.outcome == FrameOutcome::Accepted as i32)
        .map(|a| a.frame_index)
        .collect();
    assert_eq!(accepted, recorded);
    drop((ingest_a, ingest_b, analyze));
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
