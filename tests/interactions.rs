//! `CreateInteraction` through the outbox, listing with filters, dead letters, idempotency, and an
//! acknowledged event surviving a SIGKILL before it was processed. The first three run on sled and on
//! PostgreSQL.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crow::proto::interaction_service_client::InteractionServiceClient;
use crow::proto::{
    CreateInteractionRequest, GetInteractionRequest, GetSummaryRequest, InteractionState,
    ListDeadLettersRequest, ListInteractionsRequest, RetryDeadLetterRequest, SourceType,
};
use crow::PipelineConfig;
use tonic::transport::Channel;

use crate::common::{self, on_both_backends, Backend, TestServer};

on_both_backends!(
    a_thousand_events_are_counted_filtered_and_paged_exactly,
    a_failing_event_is_retried_three_times_then_dead_lettered_and_replayed_once,
    idempotency_keys_and_bad_requests,
);

const BASE_MS: i64 = 1_700_000_000_000;
const SOURCES: [SourceType; 3] = [SourceType::Web, SourceType::Social, SourceType::Cctv];
const WORDS: [&str; 5] = ["alpha", "bravo", "charlie", "delta", "echo"];

/// Outbox settings that make tests quick: batches after 50 ms, retries 100 ms apart.
fn quick_config() -> PipelineConfig {
    let mut c = PipelineConfig::default();
    c.interactions.outbox_batch_timeout_ms = 50;
    c.interactions.retry_delay_ms = 100;
    c
}

async fn client(url: &str) -> InteractionServiceClient<Channel> {
    InteractionServiceClient::connect(url.to_owned())
        .await
        .unwrap()
}

/// The n-th generated event: source, summary words and time all derived from n.
fn event(org: &str, n: usize) -> CreateInteractionRequest {
    CreateInteractionRequest {
        organization_id: org.into(),
        source_type: SOURCES[n % 3] as i32,
        data_json: serde_json::json!({"event": "visit", "n": n, "note": format!("item{n}")})
            .to_string(),
        summary: format!("customer {} at shelf {}", WORDS[n % 5], n % 7),
        timestamp_ms: BASE_MS + n as i64 * 1_000,
        ..Default::default()
    }
}

async fn summary_total(c: &mut InteractionServiceClient<Channel>, org: &str) -> u64 {
    c.get_summary(GetSummaryRequest {
        organization_id: org.into(),
    })
    .await
    .unwrap()
    .into_inner()
    .total
}

/// Every page of a listing; returns the ids in order.
async fn list_ids(
    c: &mut InteractionServiceClient<Channel>,
    mut request: ListInteractionsRequest,
) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let page = c
            .list_interactions(request.clone())
            .await
            .unwrap()
            .into_inner();
        assert!(page.interactions.len() <= request.page_size as usize);
        ids.extend(page.interactions.into_iter().map(|i| i.id));
        if page.next_page_token.is_empty() {
            return ids;
        }
        request.page_token = page.next_page_token;
    }
}

async fn wait_for_state(
    c: &mut InteractionServiceClient<Channel>,
    org: &str,
    id: &str,
    state: InteractionState,
) -> crow::proto::GetInteractionResponse {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = c
            .get_interaction(GetInteractionRequest {
                organization_id: org.into(),
                id: id.into(),
            })
            .await
            .unwrap()
            .into_inner();
        if r.state == state as i32 {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "{id} never reached {state:?}: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn a_thousand_events_are_counted_filtered_and_paged_exactly(backend: Backend) {
    let t = TestServer::start_on(backend, quick_config()).await;
    let org = "mall";
    // 1,000 events over 8 concurrent clients; each acknowledged only once durable.
    let mut ids = vec![String::new(); 1_000];
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..8 {
        let url = t.url.clone();
        tasks.spawn(async move {
            let mut c = client(&url).await;
            let mut out = Vec::new();
            for n in (lane..1_000).step_by(8) {
                let r = c
                    .create_interaction(event(org, n))
                    .await
                    .unwrap()
                    .into_inner();
                assert!(!r.duplicate);
                out.push((n, r.id));
            }
            out
        });
    }
    while let Some(done) = tasks.join_next().await {
        for (n, id) in done.unwrap() {
            ids[n] = id;
        }
    }
    let mut c = client(&t.url).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while summary_total(&mut c, org).await < 1_000 {
        assert!(Instant::now() < deadline, "outbox not drained");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = c
        .get_summary(GetSummaryRequest {
            organization_id: org.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((s.web, s.social, s.cctv, s.total), (334, 333, 333, 1_000));

    // What each filter must return, computed from what was sent: newest first.
    let expect = |pred: &dyn Fn(usize) -> bool| -> Vec<String> {
        (0..1_000)
            .rev()
            .filter(|n| pred(*n))
            .map(|n| ids[n].clone())
            .collect()
    };
    let request = |source: SourceType, q: &str, from_ms: i64, to_ms: i64| ListInteractionsRequest {
        organization_id: org.into(),
        page_size: 37,
        source_type: source as i32,
        q: q.into(),
        from_ms,
        to_ms,
        ..Default::default()
    };
    let window = (BASE_MS + 100_000, BASE_MS + 300_000);
    let in_window = |n: usize| (100..300).contains(&n);
    let cases: Vec<(&str, ListInteractionsRequest, Vec<String>)> = vec![
        (
            "everything",
            request(SourceType::Unspecified, "", 0, 0),
            expect(&|_| true),
        ),
        (
            "source",
            request(SourceType::Social, "", 0, 0),
            expect(&|n| n % 3 == 1),
        ),
        (
            "word",
            request(SourceType::Unspecified, "BRAVO", 0, 0),
            expect(&|n| n % 5 == 1),
        ),
        (
            "two words",
            request(SourceType::Unspecified, "bravo shelf 3", 0, 0),
            expect(&|n| n % 5 == 1 && n % 7 == 3),
        ),
        (
            "data",
            request(SourceType::Unspecified, "item417", 0, 0),
            expect(&|n| n == 417),
        ),
        (
            "source tag",
            request(SourceType::Unspecified, "cctv", 0, 0),
            expect(&|n| n % 3 == 2),
        ),
        (
            "time range",
            request(SourceType::Unspecified, "", window.0, window.1),
            expect(&in_window),
        ),
        (
            "source + word + range",
            request(SourceType::Web, "delta", window.0, window.1),
            expect(&|n| n % 3 == 0 && n % 5 == 3 && in_window(n)),
        ),
        (
            "no match",
            request(SourceType::Unspecified, "zulu", 0, 0),
            vec![],
        ),
    ];
    for (name, req, expected) in cases {
        assert!(
            !expected.is_empty() || name == "no match",
            "{name}: empty case"
        );
        assert_eq!(list_ids(&mut c, req).await, expected, "filter: {name}");
    }

    // Paging while a writer keeps inserting, both newer records and records between the old ones: every
    // old record is seen exactly once, in order.
    let writer = {
        let url = t.url.clone();
        tokio::spawn(async move {
            let mut c = client(&url).await;
            for n in 0..150 {
                let mut e = event(org, n * 7 % 1_000);
                e.summary = format!("late customer {}", WORDS[n % 5]);
                e.timestamp_ms = if n % 2 == 0 {
                    storage_now_ms()
                } else {
                    BASE_MS + (n as i64 * 7 % 1_000) * 1_000 + 500
                };
                c.create_interaction(e).await.unwrap();
            }
        })
    };
    let old: HashSet<&String> = ids.iter().collect();
    let mut seen = Vec::new();
    let mut req = request(SourceType::Unspecified, "", 0, 0);
    req.page_size = 20;
    loop {
        let page = c.list_interactions(req.clone()).await.unwrap().into_inner();
        seen.extend(page.interactions.into_iter().map(|i| i.id));
        if page.next_page_token.is_empty() {
            break;
        }
        req.page_token = page.next_page_token;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    writer.await.unwrap();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no record is listed twice");
    let old_seen: Vec<String> = seen.into_iter().filter(|id| old.contains(id)).collect();
    assert_eq!(
        old_seen,
        expect(&|_| true),
        "every old record once, in order"
    );
    t.stop().await;
}

fn storage_now_ms() -> i64 {
    crow::storage::now_ms()
}

async fn a_failing_event_is_retried_three_times_then_dead_lettered_and_replayed_once(
    backend: Backend,
) {
    let t = TestServer::start_on(backend, quick_config()).await;
    let mut c = client(&t.url).await;
    // Fault injection (named as such): the processor fails every event whose summary holds the marker.
    t.crow
        .pipeline()
        .record_services()
        .inject_processing_failure(Some("poison"));
    let mut bad = event("shop", 1);
    bad.summary = "poison pill".into();
    let bad_id = c.create_interaction(bad).await.unwrap().into_inner().id;
    let good_id = c
        .create_interaction(event("shop", 2))
        .await
        .unwrap()
        .into_inner()
        .id;

    wait_for_state(&mut c, "shop", &good_id, InteractionState::Stored).await;
    let dead = wait_for_state(&mut c, "shop", &bad_id, InteractionState::DeadLetter).await;
    assert_eq!(dead.attempts, 4, "the first attempt and 3 retries");
    assert!(dead.last_error.contains("fault injection"), "{dead:?}");
    let letters = c
        .list_dead_letters(ListDeadLettersRequest {
            organization_id: "shop".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .dead_letters;
    assert_eq!(letters.len(), 1);
    assert_eq!(
        (letters[0].id.as_str(), letters[0].attempts),
        (bad_id.as_str(), 4)
    );
    assert_eq!(summary_total(&mut c, "shop").await, 1);

    // Another organization cannot see or replay it.
    let foreign = c
        .retry_dead_letter(RetryDeadLetterRequest {
            organization_id: "other".into(),
            id: bad_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), tonic::Code::NotFound);

    // Fixed: replay it; it is stored once, and a second replay finds nothing to replay.
    t.crow
        .pipeline()
        .record_services()
        .inject_processing_failure(None);
    let replayed = c
        .retry_dead_letter(RetryDeadLetterRequest {
            organization_id: "shop".into(),
            id: bad_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replayed.id, bad_id);
    let stored = wait_for_state(&mut c, "shop", &bad_id, InteractionState::Stored).await;
    assert_eq!(stored.interaction.unwrap().summary, "poison pill");
    let again = c
        .retry_dead_letter(RetryDeadLetterRequest {
            organization_id: "shop".into(),
            id: bad_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::NotFound);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(summary_total(&mut c, "shop").await, 2);
    let listed = list_ids(
        &mut c,
        ListInteractionsRequest {
            organization_id: "shop".into(),
            page_size: 50,
            q: "poison".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(listed, vec![bad_id]);
    assert!(c
        .list_dead_letters(ListDeadLettersRequest {
            organization_id: "shop".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .dead_letters
        .is_empty());
    t.stop().await;
}

async fn idempotency_keys_and_bad_requests(backend: Backend) {
    let t = TestServer::start_on(backend, quick_config()).await;
    let mut c = client(&t.url).await;
    let mut e = event("shop", 5);
    e.idempotency_key = "order-42".into();
    let first = c.create_interaction(e.clone()).await.unwrap().into_inner();
    let second = c.create_interaction(e.clone()).await.unwrap().into_inner();
    assert!(!first.duplicate && second.duplicate);
    assert_eq!(first.id, second.id);
    // The same key in another organization is another request.
    e.organization_id = "other".into();
    let other = c.create_interaction(e).await.unwrap().into_inner();
    assert!(!other.duplicate);
    wait_for_state(&mut c, "shop", &first.id, InteractionState::Stored).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(summary_total(&mut c, "shop").await, 1);

    let cases: Vec<(CreateInteractionRequest, tonic::Code, &str)> = vec![
        (
            CreateInteractionRequest {
                data_json: "[1, 2]".into(),
                ..event("shop", 1)
            },
            tonic::Code::InvalidArgument,
            "data_json must be a JSON object",
        ),
        (
            CreateInteractionRequest {
                data_json: "{\"a\": tru".into(),
                ..event("shop", 1)
            },
            tonic::Code::InvalidArgument,
            "data_json is not valid JSON",
        ),
        (
            CreateInteractionRequest {
                source_type: 0,
                ..event("shop", 1)
            },
            tonic::Code::InvalidArgument,
            "source_type is required",
        ),
        (
            CreateInteractionRequest {
                source_type: 9,
                ..event("shop", 1)
            },
            tonic::Code::InvalidArgument,
            "source_type must be",
        ),
        (
            CreateInteractionRequest {
                session_id: "no-such-session".into(),
                ..event("shop", 1)
            },
            tonic::Code::NotFound,
            "session",
        ),
        (
            CreateInteractionRequest {
                data_json: format!("{{\"a\":\"{}\"}}", "x".repeat(100_000)),
                ..event("shop", 1)
            },
            tonic::Code::InvalidArgument,
            "max_data_bytes",
        ),
    ];
    for (req, code, needle) in cases {
        let err = c.create_interaction(req).await.unwrap_err();
        assert_eq!(err.code(), code, "{err:?}");
        assert!(err.message().contains(needle), "{needle:?} in {err:?}");
    }
    let bad_q = c
        .list_interactions(ListInteractionsRequest {
            organization_id: "shop".into(),
            q: "!!".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_q.code(), tonic::Code::InvalidArgument);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        summary_total(&mut c, "shop").await,
        1,
        "nothing stored by bad requests"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_event_survives_a_kill_before_processing_and_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    // The processor would wait 10 minutes for a batch: the event is acknowledged but not processed when
    // the process is killed.
    let slow = [(
        "CROW_PIPELINE__INTERACTIONS__OUTBOX_BATCH_TIMEOUT_MS",
        "600000",
    )];
    let mut server = common::start_server_process(&db, &slow);
    let mut c = client(&server.url).await;
    let mut e = event("acme", 3);
    e.idempotency_key = "evt-3".into();
    let id = c
        .create_interaction(e.clone())
        .await
        .unwrap()
        .into_inner()
        .id;
    let pending = c
        .get_interaction(GetInteractionRequest {
            organization_id: "acme".into(),
            id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pending.state, InteractionState::Pending as i32);
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    // Restarted (with the same slow batching): the outbox is drained at start.
    let server = common::start_server_process(&db, &slow);
    let mut c = client(&server.url).await;
    wait_for_state(&mut c, "acme", &id, InteractionState::Stored).await;
    // The client did not hear back and retries with its idempotency key: still one record.
    let retried = c.create_interaction(e).await.unwrap().into_inner();
    assert!(retried.duplicate);
    assert_eq!(retried.id, id);
    assert_eq!(summary_total(&mut c, "acme").await, 1);
    assert_eq!(common::list_all(&server.url, "acme", 50).await.len(), 1);
}
