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

pub(crate) const ORG: &str = "chain";

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
    let node = node_in(dir.path(), role, nats_url, postgres_url, replicas, more);
    (node, dir)
}

/// [`node_with`] on a data directory of the caller's (a node restarted on its data).
pub(crate) fn node_in(
    dir: &std::path::Path,
    role: &str,
    nats_url: &str,
    postgres_url: &str,
    replicas: &str,
    more: &[(&str, &str)],
) -> ServerProcess {
    let mut envs = vec![
        ("CROW_STORAGE__BACKEND", "postgres"),
        ("CROW_STORAGE__POSTGRES_URL", postgres_url),
        ("CROW_PIPELINE__CLUSTER__NATS_URL", nats_url),
        ("CROW_PIPELINE__CLUSTER__REPLICAS", replicas),
        ("CROW_PIPELINE__CLUSTER__ACK_WAIT_MS", "2000"),
        ("CROW_PIPELINE__CLUSTER__OUTBOX_POLL_MS", "100"),
        ("CROW_PIPELINE__BATCH_SIZE", "2"),
        ("CROW_PIPELINE__INTERACTIONS__OUTBOX_BATCH_TIMEOUT_MS", "50"),
        // Frames travel in the session journal: within NATS's default 1 MiB message.
        ("CROW_PIPELINE__LIMITS__MAX_FRAME_BYTES", "983040"),
        common::PIXELS_ONLY,
    ];
    envs.extend_from_slice(more);
    let mut command = common::serve_command(&dir.join("db"), &envs);
    command.args(["--role", role]);
    common::spawn_server(command)
}

/// Stops a node gracefully (SIGTERM, as a service manager does) and waits for it to exit.
fn stop_gracefully(node: &mut ServerProcess) {
    let term = std::process::Command::new("kill")
        .args(["-TERM", &node.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = node.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// The accepted frames among acks.
pub(crate) fn accepted<'a>(
    acks: impl IntoIterator<Item = &'a crow::proto::FrameAck>,
) -> BTreeSet<u64> {
    acks.into_iter()
        .filter(|a| a.outcome == FrameOutcome::Accepted as i32)
        .map(|a| a.frame_index)
        .collect()
}

/// Asserts that every ack names `session_id` and none says its session was closed.
pub(crate) fn assert_one_session(acks: &[crow::proto::FrameAck], session_id: &str) {
    for a in acks {
        assert_eq!(a.session_id, session_id, "{a:?}");
        assert!(!a.reason.contains("closed"), "{a:?}");
    }
}

pub(crate) fn items(n: usize) -> Vec<(u64, i64, Vec<u8>, ImageFormat)> {
    common::jpeg_frames("vtest.avi", 4.0, n)
        .into_iter()
        .enumerate()
        .map(|(i, (pos, j))| (i as u64, pos, j, ImageFormat::Jpeg))
        .collect()
}

pub(crate) async fn summary(url: &str) -> crow::proto::Summary {
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
pub(crate) async fn expect_records(
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
        // Node A counts as dead 2 s after the kill: node B must not take the session it serves from
        // under its camera.
        ("CROW_PIPELINE__CLUSTER__ORPHAN_AFTER_MS", "2000"),
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

    // The camera reconnects to node B without naming its session and resends what was not acked;
    // halfway it pauses for longer than A's lease (its stream reconnects), and goes on.
    let resume = acks_a.iter().map(|a| a.frame_index).max().unwrap() as usize + 1;
    let half = resume + (frames.len() - resume) / 2;
    let mut acks_b = common::send(
        &ingest_b.url,
        common::frames(ORG, "entrance", start_ms, &frames[resume..half]),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    acks_b.extend(
        common::send(
            &ingest_b.url,
            common::frames(ORG, "entrance", start_ms, &frames[half..]),
        )
        .await,
    );
    // The session goes on on node B: nobody closed it under its camera.
    assert_one_session(&acks_b, &session_id);
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

    // Closed, every batch handed on: the session's journal is deleted but its close, the tombstone.
    let js = async_nats::jetstream::new(async_nats::connect(nats_url.as_str()).await.unwrap());
    let journal = js.get_stream("CROW_SESSIONS").await.unwrap();
    let subject = format!("crow.sessions.{session_id}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let first = journal
            .get_first_raw_message_by_subject(&subject, 1)
            .await
            .unwrap();
        let last = journal
            .get_last_raw_message_by_subject(&subject)
            .await
            .unwrap();
        if first.sequence == last.sequence {
            let head = String::from_utf8_lossy(&last.payload);
            assert!(head.contains(r#""op":"closed""#), "{head}");
            break;
        }
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

/// An ingest node dies and its camera stays away: once the node has been silent for `orphan_after_ms`,
/// the surviving ingest node adopts the session — every frame the dead node acknowledged as accepted is
/// described and in exactly one record — and keeps it open, so that the camera, coming back within its
/// hour, continues the same session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_session_is_adopted_by_a_survivor_and_continues_when_its_camera_returns() {
    let nats = tokio::task::spawn_blocking(NatsServer::start)
        .await
        .unwrap();
    let db = pg::shared().database();
    let (nats_url, pg_url) = (nats.url(), db.url.clone());
    // No batch timeout: the descriptions node A had not batched yet reach a record only through the
    // adoption.
    let settings = [
        ("CROW_PIPELINE__BATCH_TIMEOUT_MS", "600000"),
        ("CROW_PIPELINE__BATCH_SIZE", "4"),
        ("CROW_PIPELINE__CLUSTER__ORPHAN_AFTER_MS", "2000"),
    ];
    let start = |role| node_with(role, &nats_url, &pg_url, "1", &settings);
    let (mut ingest_a, _d1) = start("ingest");
    let (ingest_b, _d2) = start("ingest");
    let (analyze, _d3) = start("analyze");
    let frames = items(26);
    let start_ms = 1_763_000_000_000;

    let acks_a = common::send(
        &ingest_a.url,
        common::frames(ORG, "back-door", start_ms, &frames[..18]),
    )
    .await;
    let session_id = acks_a[0].session_id.clone();
    let accepted_a = accepted(&acks_a);
    assert!(accepted_a.len() >= 3, "{acks_a:?}");
    ingest_a.child.kill().unwrap();
    ingest_a.child.wait().unwrap();

    // Node B notices the silence and adopts the session; nobody streams to it meanwhile.
    let deadline = Instant::now() + Duration::from_secs(60);
    let adopted = loop {
        if let Ok(s) = try_get_session(&ingest_b.url, &session_id).await {
            if s.frames_described == s.frames_accepted
                && summary(&ingest_b.url).await.cctv == s.batches_emitted
                && s.batches_emitted > 0
            {
                break s;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node B never adopted the dead node's session"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(adopted.status, crow::proto::SessionStatus::Open as i32);
    assert_eq!(adopted.frames_received, 18);
    // Every frame node A accepted is recorded, before anyone closed the session.
    let all = common::list_all(&ingest_b.url, ORG, 500).await;
    let recorded = common::assert_each_frame_batched_once(&all, adopted.frames_described);
    assert_eq!(accepted_a, recorded, "every accepted frame in one record");

    // The camera comes back (to node B) within its hour: the same session goes on.
    let acks_b = common::send(
        &ingest_b.url,
        common::frames(ORG, "back-door", start_ms, &frames[18..]),
    )
    .await;
    assert_one_session(&acks_b, &session_id);
    let closed = common::close_session(&ingest_b.url, ORG, &session_id).await;
    assert_eq!(closed.frames_received, 26);
    let recorded = expect_records(
        &ingest_b.url,
        closed.batches_emitted,
        &[],
        closed.frames_described,
    )
    .await;
    assert_eq!(accepted(acks_a.iter().chain(&acks_b)), recorded);
    drop((ingest_b, analyze));
}

/// A rolling restart: ingest node A is stopped (SIGTERM) while its camera streams and started again on
/// its data directory; the camera reconnects to it. A is the same node after the restart (its id is
/// kept in its data directory), so node B, which sees A silent for longer than `orphan_after_ms`
/// around the restart, takes nothing: one session for the camera-hour, every accepted frame in exactly
/// one record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_an_ingest_node_keeps_its_sessions_and_every_acknowledged_frame() {
    let nats = tokio::task::spawn_blocking(NatsServer::start)
        .await
        .unwrap();
    let db = pg::shared().database();
    let (nats_url, pg_url) = (nats.url(), db.url.clone());
    let settings = [("CROW_PIPELINE__CLUSTER__ORPHAN_AFTER_MS", "2000")];
    let dir_a = tempfile::tempdir().unwrap();
    let mut ingest_a = node_in(dir_a.path(), "ingest", &nats_url, &pg_url, "1", &settings);
    let (ingest_b, _d2) = node_with("ingest", &nats_url, &pg_url, "1", &settings);
    let (analyze, _d3) = node_with("analyze", &nats_url, &pg_url, "1", &settings);
    let frames = items(50);
    let start_ms = 1_763_000_000_000;

    let mut acks = common::send(
        &ingest_a.url,
        common::frames(ORG, "door", start_ms, &frames[..20]),
    )
    .await;
    let session_id = acks[0].session_id.clone();
    stop_gracefully(&mut ingest_a);
    // Down for longer than orphan_after_ms: B may judge A dead meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ingest_a = node_in(dir_a.path(), "ingest", &nats_url, &pg_url, "1", &settings);
    acks.extend(
        common::send(
            &ingest_a.url,
            common::frames(ORG, "door", start_ms, &frames[20..35]),
        )
        .await,
    );
    // Several orphan periods with both nodes up: nobody closes or takes the session.
    tokio::time::sleep(Duration::from_secs(6)).await;
    acks.extend(
        common::send(
            &ingest_a.url,
            common::frames(ORG, "door", start_ms, &frames[35..]),
        )
        .await,
    );
    assert_one_session(&acks, &session_id);
    let closed = common::close_session(&ingest_a.url, ORG, &session_id).await;
    assert_eq!(closed.frames_received, 50, "{closed:?}");
    let recorded = expect_records(
        &ingest_a.url,
        closed.batches_emitted,
        &[],
        closed.frames_described,
    )
    .await;
    assert_eq!(
        accepted(&acks),
        recorded,
        "every accepted frame in one record"
    );
    drop((ingest_a, ingest_b, analyze));
}

/// Fencing: while the camera's stream to node A is still open, the camera reaches node B (its balancer
/// moved it), which takes the session over. The next frame on the old stream is refused with
/// `UNAVAILABLE` (moved: reconnect and resend), is not counted, and node A does not take the session
/// back; every accepted frame of both nodes is in exactly one record.
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
    let dir_a = tempfile::tempdir().unwrap();
    let mut ingest_a = node_in(dir_a.path(), "ingest", &nats_url, &pg_url, "1", &settings);
    let (ingest_b, _d2) = start("ingest");
    let (analyze, _d3) = start("analyze");
    let frames = items(31);
    let start_ms = 1_763_000_000_000;

    // The camera's stream to node A stays open throughout.
    let (to_a, from_camera) = tokio::sync::mpsc::channel(4);
    let acked_a = Arc::new(Mutex::new(Vec::<crow::proto::FrameAck>::new()));
    let stream_a = {
        let (url, acked) = (ingest_a.url.clone(), Arc::clone(&acked_a));
        tokio::spawn(async move {
            let mut c = client::connect(&url).await.unwrap();
            client::stream_frames(&mut c, from_camera, |ack| {
                acked.lock().unwrap().push(ack.clone())
            })
            .await
        })
    };
    let mut camera = common::frames(ORG, "till", start_ms, &frames[..20]);
    for _ in 0..20 {
        to_a.send(camera.recv().await.unwrap()).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked_a.lock().unwrap().len() < 20 {
        assert!(Instant::now() < deadline, "node A did not answer");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let session_id = acked_a.lock().unwrap()[0].session_id.clone();
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
    assert_one_session(&acks_b, &session_id);
    // A frame still in flight on the old stream: refused as moved, and the stream ends.
    let mut late = common::frames(ORG, "till", start_ms, &frames[30..]);
    to_a.send(late.recv().await.unwrap()).await.unwrap();
    drop(to_a);
    let err = stream_a.await.unwrap().unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("moved to another ingest node"), "{text}");
    assert!(
        matches!(&err, client::ClientError::Status(s) if s.code() == tonic::Code::Unavailable),
        "{text}"
    );
    let acks_a = acked_a.lock().unwrap().clone();
    assert_eq!(acks_a.len(), 20, "the refused frame has no ack");

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
    assert_eq!(accepted(acks_a.iter().chain(&acks_b)), recorded);

    // Node A restarts with its stale view (the session open, 20 frames): it neither resumes nor revives
    // the session; asked to close it, it answers what node B closed.
    stop_gracefully(&mut ingest_a);
    let ingest_a = node_in(dir_a.path(), "ingest", &nats_url, &pg_url, "1", &settings);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = common::close_session(&ingest_a.url, ORG, &session_id).await;
    assert_eq!(
        (again.frames_received, again.batches_emitted, again.status),
        (
            30,
            closed.batches_emitted,
            crow::proto::SessionStatus::Closed as i32
        ),
        "{again:?}"
    );
    assert_eq!(
        summary(&ingest_a.url).await.cctv,
        closed.batches_emitted,
        "no second history"
    );
    drop((ingest_a, ingest_b, analyze));
}

/// An ingest node whose frames would not fit a journal entry refuses to start, and says what to set.
#[test]
fn an_ingest_node_refuses_frames_larger_than_nats_carries() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut command = common::serve_command(
        &dir.path().join("db"),
        &[
            ("CROW_STORAGE__BACKEND", "postgres"),
            ("CROW_STORAGE__POSTGRES_URL", &pg::shared().database().url),
            ("CROW_PIPELINE__CLUSTER__NATS_URL", &nats.url()),
            common::PIXELS_ONLY,
        ],
    );
    let out = command
        .args(["--role", "ingest"])
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("max_payload")
            && stderr.contains("CROW_PIPELINE__LIMITS__MAX_FRAME_BYTES=983040"),
        "{stderr}"
    );
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
