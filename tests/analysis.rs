//! The text model at work in the service: product matching of CCTV batches against a catalog (with live
//! pattern events to a subscriber that did not send the stream), and analyses on a pool of 2.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crow::client::{self, StreamOptions};
use crow::proto::analysis_service_client::AnalysisServiceClient;
use crow::proto::catalog_service_client::CatalogServiceClient;
use crow::proto::interaction_service_client::InteractionServiceClient;
use crow::proto::{
    AnalysisStatus, AnalyzeRequest, CreateInteractionRequest, DeleteProductRequest,
    GetAnalysisRequest, GetSummaryRequest, ListProductsRequest, Product, SourceType,
    UpsertProductsRequest, WatchPatternsRequest,
};
use crow::PipelineConfig;

use crate::common::{self, TestServer};

fn product(id: &str, name: &str, category: &str) -> Product {
    Product {
        id: id.into(),
        name: name.into(),
        category: category.into(),
        description: format!("{name} sold in the {category} aisle"),
        tags: vec![category.into()],
        aliases: vec![],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cctv_batches_are_matched_against_the_catalog_and_streamed_to_watchers() {
    assert!(
        common::text_model().exists(),
        "run scripts/setup-models.sh first"
    );
    let mut config = PipelineConfig::default();
    // 40 products; the prefilter would show the model at most 8 of those a description could name.
    config.analysis.catalog_top_k = 8;
    // The gate describes a few of the 10 frames (new people): two per batch.
    config.batch_size = 2;
    let t = TestServer::start(config).await;
    assert!(t.crow.pipeline().record_services().has_text_model());

    let mut catalog = CatalogServiceClient::connect(t.url.clone()).await.unwrap();
    let mut products: Vec<Product> = (0..38)
        .map(|i| product(&format!("sku-{i:03}"), &format!("article {i}"), "misc"))
        .collect();
    products.push(product(
        "walk-shoes",
        "walking shoes for people on the move",
        "shoes",
    ));
    products.push(product("door-mat", "entrance door mat", "home"));
    let upserted = catalog
        .upsert_products(UpsertProductsRequest {
            organization_id: "acme".into(),
            products: products.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(upserted.upserted, 40);
    // A product of another organization's catalog, with a name the descriptions will share.
    catalog
        .upsert_products(UpsertProductsRequest {
            organization_id: "rival".into(),
            products: vec![product(
                "rival-walk",
                "people walking moving person",
                "shoes",
            )],
        })
        .await
        .unwrap();
    let deleted = catalog
        .delete_product(DeleteProductRequest {
            organization_id: "acme".into(),
            product_id: "sku-000".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(deleted.deleted);
    let listed = catalog
        .list_products(ListProductsRequest {
            organization_id: "acme".into(),
            page_size: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .products;
    assert_eq!(listed.len(), 39);
    let catalog_ids: HashSet<String> = listed.iter().map(|p| p.id.clone()).collect();

    // A subscriber that is not the camera: it sees the batches of a stream someone else sends.
    let mut watcher = AnalysisServiceClient::connect(t.url.clone()).await.unwrap();
    let mut events = watcher
        .watch_patterns(WatchPatternsRequest {
            organization_id: "acme".into(),
            camera_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut rival_events = watcher
        .watch_patterns(WatchPatternsRequest {
            organization_id: "rival".into(),
            camera_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();

    let mut options = StreamOptions::new("acme", "aisle-1");
    options.sample_fps = Some(2.0);
    options.max_frames = Some(10);
    options.start_ms = 1_763_000_000_000;
    let report = client::stream_media(&t.url, common::data("vtest.avi"), &options, |_| {})
        .await
        .unwrap();
    let session_id = report.session_ids[0].clone();
    let closed = common::close_session(&t.url, "acme", &session_id).await;
    assert!(closed.batches_emitted >= 2, "{closed:?}");

    let mut seen = Vec::new();
    while (seen.len() as u64) < closed.batches_emitted {
        let event = tokio::time::timeout(Duration::from_secs(120), events.message())
            .await
            .expect("a pattern event within 2 minutes")
            .unwrap()
            .expect("the stream stays open");
        seen.push(event);
    }
    let interactions = common::list_all(&t.url, "acme", 50).await;
    assert_eq!(interactions.len(), seen.len());
    let mut matched = 0;
    for event in &seen {
        assert_eq!(event.session_id, session_id);
        assert_eq!(event.camera_id, "aisle-1");
        let interaction = interactions
            .iter()
            .find(|i| i.id == event.interaction_id)
            .expect("each event names a stored interaction");
        let data: serde_json::Value = serde_json::from_str(&interaction.data_json).unwrap();
        let frames: HashSet<u64> = data["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["frame_index"].as_u64().unwrap())
            .collect();
        // The descriptions say "people", a word of the walking shoes' name, but no description names
        // the product: the model is not even asked (nothing it said could be verified), and the record
        // claims no product.
        assert_eq!(
            data["matching"]["model"], "not needed: no description names a catalog product",
            "{data}"
        );
        assert_eq!(data["matching"]["candidates"], 0);
        assert!(interaction.product_ids.is_empty(), "{data}");
        assert_eq!(
            (event.first_frame_index, event.last_frame_index),
            (
                data["frame_range"][0].as_u64().unwrap(),
                data["frame_range"][1].as_u64().unwrap()
            )
        );
        let ids: Vec<&String> = event.products.iter().map(|p| &p.product_id).collect();
        assert_eq!(
            ids,
            interaction.product_ids.iter().collect::<Vec<_>>(),
            "the event carries the record's products"
        );
        for p in &event.products {
            matched += 1;
            assert!(
                catalog_ids.contains(&p.product_id),
                "{p:?} is not in the catalog"
            );
            assert!((0.0..=1.0).contains(&p.confidence));
            assert!(!p.evidence_frames.is_empty(), "{p:?} has no evidence");
            assert!(
                p.evidence_frames.iter().all(|f| frames.contains(f)),
                "evidence {:?} outside the batch's frames {frames:?}",
                p.evidence_frames
            );
        }
        assert_eq!(
            data["products"].as_array().unwrap().len(),
            event.products.len()
        );
        // Whatever was kept has evidence crow checked: a quote found in a cited description.
        let texts: Vec<String> = data["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["text"].as_str().unwrap().to_lowercase())
            .collect();
        for finding in data["products"].as_array().unwrap() {
            for e in finding["evidence"].as_array().unwrap() {
                if e["kind"] == "quote" {
                    let quote = e["quote"].as_str().unwrap().to_lowercase();
                    let words: Vec<&str> = quote.split_whitespace().collect();
                    assert!(
                        texts.iter().any(|t| words.iter().all(|w| t.contains(w))),
                        "quote {quote:?} is not in the descriptions {texts:?}"
                    );
                }
            }
        }
    }
    eprintln!("{matched} product matches over {} batches", seen.len());
    // Nothing of acme's reached the other organization's subscriber.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rival_events.message())
            .await
            .is_err(),
        "another organization's watcher saw acme's events"
    );
    t.stop().await;
}

/// Stores `n` web and social events for the analyses to read.
async fn seed(url: &str, org: &str, n: usize) {
    let mut c = InteractionServiceClient::connect(url.to_owned())
        .await
        .unwrap();
    for i in 0..n {
        let (source, what) = if i % 2 == 0 {
            (SourceType::Web, "added running shoes to the cart")
        } else {
            (SourceType::Social, "praised the coffee on social media")
        };
        c.create_interaction(CreateInteractionRequest {
            organization_id: org.into(),
            source_type: source as i32,
            data_json: format!("{{\"event\": \"e{}\"}}", i % 3),
            summary: format!("Customer {i} {what}"),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = c
            .get_summary(GetSummaryRequest {
                organization_id: org.into(),
            })
            .await
            .unwrap()
            .into_inner();
        if s.total == n as u64 {
            return;
        }
        assert!(Instant::now() < deadline, "events not processed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn analysis_config(queue: usize) -> PipelineConfig {
    let mut c = PipelineConfig::default();
    c.interactions.outbox_batch_timeout_ms = 50;
    c.analysis.slots = 2;
    c.analysis.queue = queue;
    c.analysis.max_records = 8;
    c
}

fn analyze_request(org: &str, wait: bool) -> AnalyzeRequest {
    AnalyzeRequest {
        organization_id: org.into(),
        wait,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_concurrent_analyses_run_two_at_a_time_and_are_retrievable() {
    let t = TestServer::start(analysis_config(1)).await;
    seed(&t.url, "shop", 12).await;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let url = t.url.clone();
        calls.spawn(async move {
            let mut c = AnalysisServiceClient::connect(url).await.unwrap();
            c.analyze(analyze_request("shop", true))
                .await
                .unwrap()
                .into_inner()
        });
    }
    let mut done = Vec::new();
    while let Some(a) = calls.join_next().await {
        done.push(a.unwrap());
    }
    done.sort_by_key(|a| a.started_at_ms);
    for a in &done {
        assert_eq!(a.status, AnalysisStatus::Done as i32, "{a:?}");
        assert_eq!(a.records, 12);
        let counts = a.counts.unwrap();
        assert_eq!((counts.web, counts.social), (6, 6));
        // The records the facts cite: the newest of each theme quoted.
        assert!((1..=12).contains(&a.records_used), "{a:?}");
        assert!(a.facts.iter().all(|f| !f.text.is_empty()), "{a:?}");
        assert!(!a.summary.is_empty() || !a.insights.is_empty() || !a.recommendations.is_empty());
        assert!(a.started_at_ms >= a.created_at_ms && a.finished_at_ms >= a.started_at_ms);
    }
    // The third started only once one of the first two had finished: never 3 at once.
    let first_free = done[0].finished_at_ms.min(done[1].finished_at_ms);
    assert!(
        done[2].started_at_ms >= first_free,
        "third started at {} before a slot was free at {first_free}",
        done[2].started_at_ms
    );
    let mut c = AnalysisServiceClient::connect(t.url.clone()).await.unwrap();
    for a in &done {
        let fetched = c
            .get_analysis(GetAnalysisRequest {
                organization_id: "shop".into(),
                analysis_id: a.id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(&fetched, a);
        // Another organization gets the same answer as for an id that does not exist.
        let foreign = c
            .get_analysis(GetAnalysisRequest {
                organization_id: "other".into(),
                analysis_id: a.id.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(foreign.code(), tonic::Code::NotFound);
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_queue_the_third_analysis_is_refused_and_the_others_fetched_later() {
    let t = TestServer::start(analysis_config(0)).await;
    seed(&t.url, "shop", 6).await;
    let mut c = AnalysisServiceClient::connect(t.url.clone()).await.unwrap();
    // Fire and forget: two take the slots, the third finds no slot and no queue.
    let first = c
        .analyze(analyze_request("shop", false))
        .await
        .unwrap()
        .into_inner();
    let second = c
        .analyze(analyze_request("shop", false))
        .await
        .unwrap()
        .into_inner();
    let third = c.analyze(analyze_request("shop", false)).await.unwrap_err();
    assert_eq!(third.code(), tonic::Code::ResourceExhausted, "{third:?}");
    assert!(third.message().contains("analysis.queue"), "{third:?}");
    for a in [&first, &second] {
        assert!(
            [
                AnalysisStatus::Queued as i32,
                AnalysisStatus::Running as i32
            ]
            .contains(&a.status),
            "{a:?}"
        );
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let now = c
                .get_analysis(GetAnalysisRequest {
                    organization_id: "shop".into(),
                    analysis_id: a.id.clone(),
                })
                .await
                .unwrap()
                .into_inner();
            if now.status == AnalysisStatus::Done as i32 {
                assert_eq!(now.records, 6);
                break;
            }
            assert_ne!(now.status, AnalysisStatus::Failed as i32, "{now:?}");
            assert!(Instant::now() < deadline, "analysis did not finish");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // With the slots free again a new request is accepted.
    let again = c
        .analyze(analyze_request("shop", true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.status, AnalysisStatus::Done as i32);
    t.stop().await;
}
