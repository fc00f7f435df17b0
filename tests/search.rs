//! Search by meaning through the real server: records stored through `CreateInteraction` are embedded
//! by all-MiniLM-L6-v2 on llama.cpp, and `ListInteractions` with `meaning` ranks them, over gRPC, HTTP
//! and the CLI, with the word, source and time filters, cursors and organizations; with the records in
//! sled and in PostgreSQL.

use std::collections::HashSet;
use std::process::Command;

use crow::proto::interaction_service_client::InteractionServiceClient;
use crow::proto::{
    CreateInteractionRequest, GetSummaryRequest, ListInteractionsRequest, ListInteractionsResponse,
    SourceType,
};
use crow::PipelineConfig;
use tonic::transport::Channel;

use crate::common::{on_both_backends, wait_for_interactions, Backend, TestServer};

on_both_backends!(records_are_ranked_by_meaning_and_unrelated_questions_find_nothing);

const BASE_MS: i64 = 1_780_000_000_000;

/// Records whose meaning we know: (topic, source, summary).
const RECORDS: &[(&str, SourceType, &str)] = &[
    (
        "shoes",
        SourceType::Cctv,
        "A customer lingered at the sneaker display for two minutes and walked away without buying",
    ),
    (
        "shoes",
        SourceType::Cctv,
        "A shopper tried on running shoes and put them back on the shelf",
    ),
    (
        "checkout",
        SourceType::Cctv,
        "Long queue at the checkout; two customers left their baskets",
    ),
    (
        "checkout",
        SourceType::Web,
        "A woman paid for her groceries at the till with a card",
    ),
    (
        "entrance",
        SourceType::Cctv,
        "Three people walked in through the front door at opening time",
    ),
    (
        "coffee",
        SourceType::Web,
        "A visitor added an espresso machine to the cart on the website",
    ),
    (
        "bread",
        SourceType::Social,
        "Instagram comment asking whether the store sells gluten-free bread",
    ),
    (
        "dairy",
        SourceType::Cctv,
        "Staff restocked the fridge with milk and yoghurt",
    ),
];

fn config() -> PipelineConfig {
    let mut config = PipelineConfig::default();
    config.search.model =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/all-minilm-l6-v2.gguf");
    // Events are stored at once rather than in batches of ten.
    config.interactions.outbox_batch_timeout_ms = 20;
    config
}

/// A server holding [`RECORDS`] for `acme` (and a shoe record for `other`), all embedded.
async fn server(backend: Backend) -> TestServer {
    let server = TestServer::start_on(backend, config()).await;
    let mut c = client(&server).await;
    for (n, (_, source, summary)) in RECORDS.iter().enumerate() {
        c.create_interaction(CreateInteractionRequest {
            organization_id: "acme".into(),
            source_type: *source as i32,
            summary: (*summary).into(),
            data_json: "{}".into(),
            timestamp_ms: BASE_MS + n as i64 * 60_000,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    c.create_interaction(CreateInteractionRequest {
        organization_id: "other".into(),
        source_type: SourceType::Cctv as i32,
        summary: "A customer hesitated in front of the shoe shelf".into(),
        data_json: "{}".into(),
        timestamp_ms: BASE_MS,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        wait_for_interactions(&server.url, "acme", RECORDS.len() as u64)
            .await
            .len(),
        RECORDS.len()
    );
    assert_eq!(
        wait_for_interactions(&server.url, "other", 1).await.len(),
        1
    );
    let search = server
        .crow
        .pipeline()
        .search()
        .expect("search by meaning is on");
    search.embed_all().await.unwrap();
    server
}

async fn client(server: &TestServer) -> InteractionServiceClient<Channel> {
    InteractionServiceClient::connect(server.url.clone())
        .await
        .unwrap()
}

fn by_meaning(org: &str, meaning: &str) -> ListInteractionsRequest {
    ListInteractionsRequest {
        organization_id: org.into(),
        meaning: meaning.into(),
        page_size: 10,
        ..Default::default()
    }
}

/// The topics of a page, in order.
fn topics(page: &ListInteractionsResponse) -> Vec<&'static str> {
    page.interactions
        .iter()
        .map(|i| {
            RECORDS
                .iter()
                .find(|(_, _, s)| *s == i.summary)
                .map(|(t, _, _)| *t)
                .unwrap_or("?")
        })
        .collect()
}

async fn records_are_ranked_by_meaning_and_unrelated_questions_find_nothing(backend: Backend) {
    let server = server(backend).await;
    let mut c = client(&server).await;
    let ask = |meaning: &str| by_meaning("acme", meaning);

    // Paraphrases: none of the question's words is in the best records.
    let page = c
        .list_interactions(ask("customers who hesitated at the shoe shelf"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(topics(&page)[..2], ["shoes", "shoes"], "{page:?}");
    assert_eq!(page.matches.len(), page.interactions.len());
    for (m, i) in page.matches.iter().zip(&page.interactions) {
        assert_eq!(m.interaction_id, i.id);
        assert_eq!(
            m.matched_text, i.summary,
            "the summary is the text that matched"
        );
        assert!(m.similarity >= 0.3 && m.score >= m.similarity);
    }
    assert!(
        page.matches.windows(2).all(|w| w[0].score >= w[1].score),
        "best first"
    );

    let page = c
        .list_interactions(ask("people paying at the cash register"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(topics(&page)[0], "checkout", "{page:?}");

    // Footage without the subject yields nothing, not the least bad records.
    for absent in [
        "a delivery truck parked at the loading dock",
        "the fire alarm went off in the car park",
    ] {
        let page = c.list_interactions(ask(absent)).await.unwrap().into_inner();
        assert!(page.interactions.is_empty(), "{absent}: {:?}", page.matches);
    }

    // Records holding every word of the question come first: nothing word search finds is lost.
    let page = c
        .list_interactions(ask("espresso machine"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(topics(&page)[0], "coffee", "{page:?}");
    assert!(page.matches[0].score >= 1.0, "{:?}", page.matches);
    assert!(page.matches[1..].iter().all(|m| m.score < 1.0));

    // The other filters narrow the ranked set: words, source, time.
    let mut hybrid = ask("someone buying something");
    hybrid.q = "groceries".into();
    let page = c.list_interactions(hybrid).await.unwrap().into_inner();
    assert_eq!(topics(&page), ["checkout"]);
    assert!(page.interactions[0].summary.contains("groceries"));

    let mut cctv = ask("people paying at the cash register");
    cctv.source_type = SourceType::Web as i32;
    let page = c.list_interactions(cctv).await.unwrap().into_inner();
    assert!(page
        .interactions
        .iter()
        .all(|i| i.source_type == SourceType::Web as i32));
    assert_eq!(topics(&page)[0], "checkout");

    let mut early = ask("customers who hesitated at the shoe shelf");
    early.from_ms = BASE_MS + 60_000;
    early.to_ms = BASE_MS + 120_000;
    let page = c.list_interactions(early).await.unwrap().into_inner();
    assert_eq!(topics(&page), ["shoes"]);
    assert_eq!(page.interactions[0].timestamp_ms, BASE_MS + 60_000);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_by_meaning_never_repeat_and_stay_in_their_organization() {
    let server = server(Backend::Sled).await;
    let mut c = client(&server).await;
    let question = "a customer looking at products in the shop";
    let whole = c
        .list_interactions(ListInteractionsRequest {
            page_size: 50,
            ..by_meaning("acme", question)
        })
        .await
        .unwrap()
        .into_inner();
    assert!(whole.interactions.len() >= 3, "{:?}", whole.matches);
    assert!(whole.next_page_token.is_empty());
    // One record per page: the same records in the same order, none twice.
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .list_interactions(ListInteractionsRequest {
                page_size: 1,
                page_token: token.clone(),
                ..by_meaning("acme", question)
            })
            .await
            .unwrap()
            .into_inner();
        paged.extend(page.interactions.into_iter().map(|i| i.id));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
        // A cursor is for its organization only.
        let err = c
            .list_interactions(ListInteractionsRequest {
                page_token: token.clone(),
                ..by_meaning("other", question)
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    }
    let whole_ids: Vec<String> = whole.interactions.iter().map(|i| i.id.clone()).collect();
    assert_eq!(paged, whole_ids);
    assert_eq!(paged.iter().collect::<HashSet<_>>().len(), paged.len());

    // `other` has one shoe record; `acme`'s never show up there, and the reverse.
    let page = c
        .list_interactions(by_meaning(
            "other",
            "customers who hesitated at the shoe shelf",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.interactions.len(), 1);
    assert_eq!(page.interactions[0].organization_id, "other");
    assert!(whole
        .interactions
        .iter()
        .all(|i| i.organization_id == "acme"));

    // Bad questions get typed errors.
    let long = "shoes ".repeat(2_000);
    for (request, code) in [
        (by_meaning("acme", &long), tonic::Code::InvalidArgument),
        (by_meaning("acme", "   "), tonic::Code::InvalidArgument),
        (
            ListInteractionsRequest {
                page_token: "garbage".into(),
                ..by_meaning("acme", question)
            },
            tonic::Code::InvalidArgument,
        ),
        (
            ListInteractionsRequest {
                q: "!!!".into(),
                ..by_meaning("acme", question)
            },
            tonic::Code::InvalidArgument,
        ),
    ] {
        let err = c.list_interactions(request).await.unwrap_err();
        assert_eq!(err.code(), code, "{err}");
    }
    // Searching stored nothing and changed nothing.
    let summary = c
        .get_summary(GetSummaryRequest {
            organization_id: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.total, RECORDS.len() as u64);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_by_meaning_over_http_and_the_cli() {
    let server = server(Backend::Sled).await;
    let response: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/interactions/organization/acme?meaning=customers%20who%20hesitated%20at%20the%20shoe%20shelf&pageSize=2",
            server.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let matches = response["matches"].as_array().unwrap();
    assert_eq!(matches.len(), 2, "{response}");
    assert_eq!(
        matches[0]["interactionId"],
        response["interactions"][0]["id"]
    );
    assert!(
        matches[0]["matchedText"]
            .as_str()
            .unwrap()
            .contains("sneaker")
            || matches[0]["matchedText"]
                .as_str()
                .unwrap()
                .contains("running shoes")
    );

    let url = server.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_crow"))
            .args([
                "interactions",
                "search",
                "people paying at the cash register",
                "--org",
                "acme",
                "--page-size",
                "1",
                "--server",
                &url,
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("score ") && stdout.contains("similarity "),
        "{stdout}"
    );
    assert!(
        stdout.contains("checkout") || stdout.contains("till"),
        "{stdout}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_search_off_a_meaning_query_is_a_failed_precondition() {
    let mut config = config();
    config.search.enabled = false;
    let server = TestServer::start(config).await;
    let err = client(&server)
        .await
        .list_interactions(by_meaning("acme", "anything"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err}");
    assert!(err.message().contains("pipeline.search"), "{err}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_cite_records_of_the_organization_or_say_none_was_found() {
    use crow::proto::analysis_service_client::AnalysisServiceClient;
    use crow::proto::{AskRequest, GetInteractionRequest, InteractionState};

    let server = server(Backend::Sled).await;
    let mut analysis = AnalysisServiceClient::connect(server.url.clone())
        .await
        .unwrap();
    let mut records = client(&server).await;
    let ask = |org: &str, question: &str| AskRequest {
        organization_id: org.into(),
        question: question.into(),
        ..Default::default()
    };

    // The Gemma 3 270M test model writes the answer; whatever it writes, what crow returns holds.
    let answer = analysis
        .ask(ask("acme", "Did customers hesitate at the shoe shelf?"))
        .await
        .unwrap()
        .into_inner();
    assert!(!answer.model.is_empty());
    let retrieved: Vec<&str> = answer
        .records
        .iter()
        .map(|m| m.interaction_id.as_str())
        .collect();
    assert!(!retrieved.is_empty(), "{answer:?}");
    let best = RECORDS
        .iter()
        .find(|(_, _, s)| answer.records[0].matched_text == *s)
        .map(|(t, _, _)| *t);
    assert_eq!(best, Some("shoes"), "{answer:?}");
    for id in &retrieved {
        let state = records
            .get_interaction(GetInteractionRequest {
                organization_id: "acme".into(),
                id: (*id).into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(state.state, InteractionState::Stored as i32, "{id}");
    }
    for s in &answer.statements {
        assert!(!s.interaction_ids.is_empty(), "{s:?}");
        assert!(
            s.interaction_ids
                .iter()
                .all(|id| retrieved.contains(&id.as_str())),
            "{s:?} cites only retrieved records"
        );
        assert!(s.support >= crow::actors::CITATION_MIN_SIMILARITY, "{s:?}");
    }
    let cited: HashSet<&str> = answer
        .statements
        .iter()
        .flat_map(|s| s.interaction_ids.iter().map(String::as_str))
        .collect();
    assert_eq!(
        cited,
        answer
            .citations
            .iter()
            .map(|c| c.interaction_id.as_str())
            .collect::<HashSet<_>>()
    );
    if answer.found {
        assert!(answer.answer.contains("[1]"), "{answer:?}");
    } else {
        assert!(answer.statements.is_empty());
        assert!(answer.answer.starts_with("No records"), "{answer:?}");
    }

    // Nothing about the subject: no record, no statement, and the answer says so.
    for (org, question, from_ms) in [
        (
            "acme",
            "Was a delivery truck unloading at the loading dock?",
            0,
        ),
        ("acme", "Did the fire alarm go off in the car park?", 0),
        // The shoe records are older than this window.
        (
            "acme",
            "Did customers hesitate at the shoe shelf?",
            BASE_MS + 3_600_000,
        ),
    ] {
        let answer = analysis
            .ask(AskRequest {
                from_ms,
                ..ask(org, question)
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!answer.found, "{question}: {answer:?}");
        assert!(answer.records.is_empty() && answer.citations.is_empty());
        assert!(answer.answer.starts_with("No records"), "{answer:?}");
    }

    // Another organization's records are never retrieved or cited.
    let answer = analysis
        .ask(ask("other", "Did customers hesitate at the shoe shelf?"))
        .await
        .unwrap()
        .into_inner();
    assert!(answer.records.len() <= 1);
    let acme: HashSet<String> = crate::common::list_all(&server.url, "acme", 50)
        .await
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert!(answer
        .records
        .iter()
        .all(|m| !acme.contains(&m.interaction_id)));

    for (request, code) in [
        (ask("acme", "  "), tonic::Code::InvalidArgument),
        (
            ask("acme", &"why ".repeat(500)),
            tonic::Code::InvalidArgument,
        ),
        (ask("bad org!", "why"), tonic::Code::InvalidArgument),
    ] {
        let err = analysis.ask(request).await.unwrap_err();
        assert_eq!(err.code(), code, "{err}");
    }
    server.stop().await;
}

/// The catalog of the labelled product set (`crow bench search` calibrates on it).
fn labelled_catalog(org: &str) -> Vec<crow::storage::Product> {
    let set: serde_json::Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/search/products.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    };
    set["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| crow::storage::Product {
            id: p["id"].as_str().unwrap().into(),
            organization_id: org.into(),
            name: p["name"].as_str().unwrap().into(),
            category: p["category"].as_str().unwrap_or_default().into(),
            description: p["description"].as_str().unwrap_or_default().into(),
            tags: Vec::new(),
            aliases: strings(&p["aliases"]),
            updated_at_ms: 1,
        })
        .collect()
}

/// Batches of described frames, recorded in sled as a camera session leaves them, are analysed when
/// the server starts: a description span that means a catalog product (an alias, a paraphrase) is
/// evidence for it, with the span, the text it matched and the similarity the embedding model
/// measured; a description that names the product word for word is named evidence instead; and
/// descriptions of a store without catalog products yield no product.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn descriptions_match_products_by_meaning_with_the_span_as_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let batches: [&[&str]; 3] = [
        &[
            "A teenager laces up a pair of trainers and walks a few steps.",
            "A customer puts a shoulder bag over her arm.",
            "A woman picks up a sturdy mountain boot from the display.",
        ],
        &[
            "A man waits in the queue at the till.",
            "2 people detected (centre); motion in 1 region",
            "A woman takes a carton of milk from the fridge.",
        ],
        &["A woman holds a leather handbag near the till."],
    ];
    {
        let store = crow::storage::Store::open(dir.path().join("db")).unwrap();
        store.upsert_products(&labelled_catalog("acme")).unwrap();
        let mut session = crow::storage::SessionRecord::new_open("acme", "aisle-2");
        let mut frame_index = 0;
        for (n, texts) in batches.iter().enumerate() {
            let frames: Vec<crow::storage::FrameAnalysis> = texts
                .iter()
                .map(|text| {
                    frame_index += 1;
                    crow::storage::FrameAnalysis {
                        frame_index,
                        captured_at_ms: BASE_MS + frame_index as i64 * 1_000,
                        describer: "vision".into(),
                        text: (*text).into(),
                        confidence: 0.9,
                        tags: vec![],
                        details: serde_json::Value::Null,
                    }
                })
                .collect();
            session.counters.batches += 1;
            let batch = crow::storage::BatchRecord {
                session_id: session.id.clone(),
                organization_id: "acme".into(),
                camera_id: "aisle-2".into(),
                batch_index: n as u64,
                frame_range: Some((frames[0].frame_index, frame_index)),
                frames,
                created_at_ms: BASE_MS,
                events: vec![],
                occupancy: vec![],
            };
            assert!(store.record_batch(&session, &batch).unwrap());
        }
    }
    let mut cfg = config();
    // No text model: what is found here is found by measurement (words, meaning) alone.
    cfg.analysis.model = None;
    let floor = cfg.search.product_min_similarity;
    let server = TestServer::start_in(
        dir,
        crow::Crow::builder(),
        cfg,
        crow::auth::Authenticator::disabled(),
    )
    .await;
    let records = wait_for_interactions(&server.url, "acme", 3).await;
    let batch = |n: usize| {
        records
            .iter()
            .map(|r| {
                let data: serde_json::Value = serde_json::from_str(&r.data_json).unwrap();
                (r.product_ids.clone(), data)
            })
            .find(|(_, data)| data["batch_index"] == n)
            .unwrap_or_else(|| panic!("batch {n} in {records:?}"))
    };
    let texts = |data: &serde_json::Value| -> Vec<String> {
        data["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["text"].as_str().unwrap().to_lowercase())
            .collect()
    };

    let (ids, data) = batch(0);
    assert_eq!(ids, ["handbag", "hike-boots", "run-shoes"], "{data:#}");
    for finding in data["products"].as_array().unwrap() {
        let evidence = finding["evidence"].as_array().unwrap();
        assert_eq!(evidence.len(), 1, "{finding:#}");
        let e = &evidence[0];
        assert_eq!(e["kind"], "meaning", "{finding:#}");
        let span = e["span"].as_str().unwrap();
        let similarity = e["similarity"].as_f64().unwrap() as f32;
        assert!(similarity >= floor && similarity <= 1.001, "{e}");
        // The span is words of the descriptions of the frames it cites.
        let frames: Vec<u64> = serde_json::from_value(e["frames"].clone()).unwrap();
        assert!(!frames.is_empty());
        let all = texts(&data);
        for f in &frames {
            let text = data["frames"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["frame_index"] == *f)
                .unwrap()["text"]
                .as_str()
                .unwrap()
                .to_lowercase();
            assert!(text.contains(span), "{span:?} not in {text:?}");
        }
        assert!(all.iter().any(|t| t.contains(span)));
        let confidence = finding["confidence"].as_f64().unwrap() as f32;
        assert!(
            confidence > 0.0 && confidence <= 0.7 * 0.9 + 1e-3,
            "{finding:#}"
        );
    }
    let shoes = &data["products"].as_array().unwrap()[2];
    assert!(
        shoes["evidence"][0]["span"]
            .as_str()
            .unwrap()
            .contains("trainers"),
        "{shoes:#}"
    );

    // The queue, a scene count, a carton of milk: nothing of the catalog.
    let (ids, data) = batch(1);
    assert!(ids.is_empty(), "{data:#}");
    assert_eq!(
        data["matching"]["model"],
        "not needed: no description names a catalog product"
    );

    // Named word for word: named evidence, and no second (meaning) evidence of the same fact.
    let (ids, data) = batch(2);
    assert_eq!(ids, ["handbag"], "{data:#}");
    let kinds: Vec<&str> = data["products"][0]["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["named"], "{data:#}");
    server.stop().await;
}
