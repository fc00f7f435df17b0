//! PostgreSQL killed and restarted under load: clients that were refused retry with their idempotency
//! keys, writes resume once the server is back, health says what happened, and every acknowledged event
//! is stored exactly once.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crow::proto::interaction_service_client::InteractionServiceClient;
use crow::proto::{CreateInteractionRequest, GetSummaryRequest, SourceType};
use crow::PipelineConfig;

use crate::common::{self, TestServer};
use crate::pg::PgServer;

const EVENTS_PER_CLIENT: usize = 120;
const CLIENTS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_resume_after_a_postgres_crash_and_nothing_acknowledged_is_lost() {
    let mut pg = tokio::task::spawn_blocking(PgServer::start).await.unwrap();
    let mut options = pg.database();
    options.acquire_timeout = Duration::from_millis(500);
    let mut config = PipelineConfig::default();
    config.interactions.outbox_batch_timeout_ms = 20;
    config.interactions.retry_delay_ms = 100;
    let t = TestServer::start_with(
        crow::Crow::builder().postgres(options),
        config,
        crow::auth::Authenticator::disabled(),
    )
    .await;

    // Clients send events with idempotency keys, as a gateway would, retrying what is refused.
    let refused = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let url = t.url.clone();
        let refused = refused.clone();
        tasks.spawn(async move {
            let mut c = InteractionServiceClient::connect(url).await.unwrap();
            let mut acked = Vec::new();
            for n in 0..EVENTS_PER_CLIENT {
                let request = CreateInteractionRequest {
                    organization_id: "chain".into(),
                    source_type: SourceType::Web as i32,
                    data_json: serde_json::json!({ "client": client, "n": n }).to_string(),
                    summary: format!("order {client} {n}"),
                    timestamp_ms: 1_763_000_000_000 + n as i64,
                    idempotency_key: format!("order-{client}-{n}"),
                    ..Default::default()
                };
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    match c.create_interaction(request.clone()).await {
                        Ok(r) => {
                            acked.push(r.into_inner().id);
                            break;
                        }
                        Err(status) => {
                            // Only a retryable refusal, with a message that leaks nothing.
                            assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                            assert!(!status.message().contains("postgres://"), "{status:?}");
                            refused.fetch_add(1, Ordering::Relaxed);
                            assert!(Instant::now() < deadline, "never accepted again");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            acked
        });
    }

    // Let load build up, then crash the database in the middle of it.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let http = reqwest::Client::new();
    let health = format!("{}/api/v1/health", t.url);
    assert_eq!(http.get(&health).send().await.unwrap().status(), 200);
    pg.kill();
    let down = http.get(&health).send().await.unwrap();
    assert_eq!(down.status(), 503);
    let body: serde_json::Value = down.json().await.unwrap();
    assert_eq!(body["status"], "storage unavailable");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pg = tokio::task::spawn_blocking(move || {
        pg.spawn();
        pg
    })
    .await
    .unwrap();

    let mut acked = HashSet::new();
    while let Some(ids) = tasks.join_next().await {
        for id in ids.unwrap() {
            assert!(acked.insert(id), "one id per idempotency key");
        }
    }
    assert_eq!(acked.len(), CLIENTS * EVENTS_PER_CLIENT);
    assert!(
        refused.load(Ordering::Relaxed) > 0,
        "the crash happened while clients were writing"
    );
    assert_eq!(http.get(&health).send().await.unwrap().status(), 200);

    // Every acknowledged event is processed into exactly one record.
    let mut c = InteractionServiceClient::connect(t.url.clone())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // A pooled connection from before the crash may fail once more after health is back: that read
        // answers UNAVAILABLE ("retry shortly"), and the client does.
        let total = match c
            .get_summary(GetSummaryRequest {
                organization_id: "chain".into(),
            })
            .await
        {
            Ok(r) => r.into_inner().total,
            Err(s) if s.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(s) => panic!("{s:?}"),
        };
        if total as usize >= acked.len() {
            assert_eq!(total as usize, acked.len(), "nothing counted twice");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {total} of {} stored",
            acked.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listed = common::list_all(&t.url, "chain", 500).await;
    let listed_ids: HashSet<String> = listed.iter().map(|i| i.id.clone()).collect();
    assert_eq!(listed.len(), listed_ids.len(), "no record twice");
    assert_eq!(listed_ids, acked);

    t.stop().await;
    drop(pg);
}
