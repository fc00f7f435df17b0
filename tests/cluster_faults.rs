//! Faults under a streaming camera: a PostgreSQL outage much longer than the analyzers' redelivery
//! budget (`max_deliver` deliveries, `ack_wait_ms` apart), and a camera whose connections a balancer
//! cuts and moves between ingest nodes. Nothing acknowledged is lost, nothing is stored twice, no batch
//! becomes a dead letter for the outage, and a camera-hour stays one session.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use std::sync::{Arc, Mutex};

use crow::client::{self, StreamOptions};

use crate::balancer::Balancer;
use crate::cluster::{self, accepted, assert_one_session, expect_records, items, node_in, ORG};
use crate::common;
use crate::nats::NatsServer;
use crate::pg::PgServer;

/// Orders for the thread that owns a private PostgreSQL server.
pub(crate) enum PgOrder {
    Kill,
    Start(mpsc::Sender<()>),
}

/// A private PostgreSQL server on its own thread (its processes die with the thread that started them,
/// so that thread lives as long as the test); returns the database URL and the order channel.
pub(crate) fn private_postgres() -> (String, mpsc::Sender<PgOrder>) {
    let (url_tx, url_rx) = mpsc::channel();
    let (orders, inbox) = mpsc::channel::<PgOrder>();
    std::thread::spawn(move || {
        let mut pg = PgServer::start();
        url_tx.send(pg.database().url.clone()).unwrap();
        // Ends (and the server with it) when the test drops its sender.
        for order in inbox {
            match order {
                PgOrder::Kill => pg.kill(),
                PgOrder::Start(done) => {
                    pg.spawn();
                    let _ = done.send(());
                }
            }
        }
    });
    (url_rx.recv().unwrap(), orders)
}

/// Messages in a JetStream stream.
pub(crate) async fn messages_in(nats_url: &str, stream: &str) -> u64 {
    let js = async_nats::jetstream::new(async_nats::connect(nats_url).await.unwrap());
    js.get_stream(stream)
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap()
        .state
        .messages
}

/// PostgreSQL is down for many times the analyzers' redelivery budget (3 deliveries, 2 s apart) while
/// a camera streams: the analyze node keeps each batch it holds, telling JetStream it is still working
/// on it, and says it is not ready; once PostgreSQL is back every accepted frame is in exactly one
/// record and `CROW_DEAD_BATCHES` is empty. (Before, every 1 s re-queue spent a delivery and batches
/// went to the dead letters after 3 s.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_postgresql_outage_spends_no_delivery_and_dead_letters_nothing() {
    let nats = tokio::task::spawn_blocking(NatsServer::start)
        .await
        .unwrap();
    let (pg_url, postgres) = tokio::task::spawn_blocking(private_postgres).await.unwrap();
    let nats_url = nats.url();
    let settings = [
        ("CROW_PIPELINE__CLUSTER__MAX_DELIVER", "3"),
        ("CROW_STORAGE__POSTGRES_ACQUIRE_TIMEOUT_MS", "500"),
    ];
    let (dir_i, dir_a) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ingest = node_in(dir_i.path(), "ingest", &nats_url, &pg_url, "1", &settings);
    let analyze = node_in(dir_a.path(), "analyze", &nats_url, &pg_url, "1", &settings);
    let frames = items(40);
    let start_ms = 1_763_000_000_000;

    let mut acks = common::send(
        &ingest.url,
        common::frames(ORG, "outage", start_ms, &frames[..16]),
    )
    .await;
    let session_id = acks[0].session_id.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    while cluster::summary(&analyze.url).await.cctv == 0 {
        assert!(Instant::now() < deadline, "no record before the outage");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    postgres.send(PgOrder::Kill).unwrap();
    // Frames go on arriving; their batches reach JetStream and wait there.
    acks.extend(
        common::send(
            &ingest.url,
            common::frames(ORG, "outage", start_ms, &frames[16..]),
        )
        .await,
    );
    let health = format!("{}/api/v1/health", analyze.url);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = http.get(&health).send().await.unwrap().status();
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "analyze node still ready: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Five times the redelivery budget.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(messages_in(&nats_url, "CROW_DEAD_BATCHES").await, 0);
    let (done, started) = mpsc::channel();
    postgres.send(PgOrder::Start(done)).unwrap();
    tokio::task::spawn_blocking(move || started.recv().unwrap())
        .await
        .unwrap();

    assert_one_session(&acks, &session_id);
    let closed = common::close_session(&ingest.url, ORG, &session_id).await;
    assert_eq!(closed.frames_received, 40);
    let recorded = expect_records(
        &analyze.url,
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
    assert_eq!(messages_in(&nats_url, "CROW_DEAD_BATCHES").await, 0);
    drop((ingest, analyze, postgres));
}

/// `crow stream`'s client behind a balancer: its connection is cut twice mid-stream and the balancer
/// sends it to the other ingest node each time. The client reconnects and resends what was not acked;
/// each node takes the session over where the other stopped (the second move takes it back from a
/// node whose actor is still running). One session, one ack per frame, every accepted frame in exactly
/// one record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_behind_a_balancer_rides_out_cut_connections_and_node_changes() {
    let nats = tokio::task::spawn_blocking(NatsServer::start)
        .await
        .unwrap();
    let db = crate::pg::shared().database();
    let (nats_url, pg_url) = (nats.url(), db.url.clone());
    let dirs = [(); 3].map(|()| tempfile::tempdir().unwrap());
    let ingest_a = node_in(dirs[0].path(), "ingest", &nats_url, &pg_url, "1", &[]);
    let ingest_b = node_in(dirs[1].path(), "ingest", &nats_url, &pg_url, "1", &[]);
    let analyze = node_in(dirs[2].path(), "analyze", &nats_url, &pg_url, "1", &[]);
    let balancer = Balancer::start(&ingest_a.url).await;

    let mut options = StreamOptions::new(ORG, "gate");
    options.sample_fps = Some(4.0);
    options.max_frames = Some(40);
    options.start_ms = 1_763_000_000_000;
    let acks = Arc::new(Mutex::new(Vec::<crow::proto::FrameAck>::new()));
    let report = client::stream_media_with(
        &balancer.url,
        client::Credentials::default(),
        common::data("vtest.avi"),
        &options,
        |ack| {
            let mut acks = acks.lock().unwrap();
            acks.push(ack.clone());
            match acks.len() {
                12 => {
                    balancer.point_to(&ingest_b.url);
                    balancer.cut();
                }
                28 => {
                    balancer.point_to(&ingest_a.url);
                    balancer.cut();
                }
                _ => {}
            }
        },
    )
    .await
    .unwrap();
    let acks = acks.lock().unwrap().clone();
    eprintln!("{report:?}");
    assert_eq!(report.frames_sent, 40);
    assert_eq!(report.acked, 40, "one ack per frame");
    assert!(report.reconnects >= 2, "{report:?}");
    let mut indexes: Vec<u64> = acks.iter().map(|a| a.frame_index).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, (0..40).collect::<Vec<_>>());
    let session_id = acks[0].session_id.clone();
    assert_one_session(&acks, &session_id);

    let closed = common::close_session(&balancer.url, ORG, &session_id).await;
    assert_eq!(closed.frames_received, 40, "{closed:?}");
    let recorded = expect_records(
        &analyze.url,
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
    drop((ingest_a, ingest_b, analyze, balancer));
}
