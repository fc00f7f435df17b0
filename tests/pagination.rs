//! Cursor pagination over gRPC: pages hold every record once, newest first; cursors are checked (on
//! sled and on PostgreSQL).

use crow::proto::interaction_service_client::InteractionServiceClient;
use crow::proto::{GetSummaryRequest, ListInteractionsRequest};
use crow::storage::{Interaction, SourceType};
use crow::PipelineConfig;

use crate::common::{self, on_both_backends, Backend, TestServer};

fn record(org: &str, n: i64, source: SourceType) -> Interaction {
    Interaction {
        id: format!("00000000-0000-4000-8000-{n:012}"),
        organization_id: org.into(),
        source_type: source,
        session_id: None,
        data: serde_json::json!({ "n": n }),
        summary: format!("record {n}"),
        confidence: 0.5,
        tags: vec!["test".into()],
        product_ids: vec![],
        // Two records share each timestamp, so the id tie-break matters.
        timestamp_ms: 1_763_000_000_000 + (n / 2) * 1000,
        created_at_ms: 1_763_000_000_000,
    }
}

on_both_backends!(three_pages_hold_every_record_once_in_order);

async fn three_pages_hold_every_record_once_in_order(backend: Backend) {
    let t = TestServer::start_on(backend, PipelineConfig::default()).await;
    let store = t.crow.records();
    for n in 0..25 {
        let source = [SourceType::Web, SourceType::Social][n as usize % 2];
        assert!(store
            .insert_interaction(&record("shop", n, source))
            .await
            .unwrap());
    }
    assert!(
        !store
            .insert_interaction(&record("shop", 3, SourceType::Social))
            .await
            .unwrap(),
        "same id stored once"
    );
    store
        .insert_interaction(&record("elsewhere", 99, SourceType::Web))
        .await
        .unwrap();

    let mut c = InteractionServiceClient::connect(t.url.clone())
        .await
        .unwrap();
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .list_interactions(ListInteractionsRequest {
                organization_id: "shop".into(),
                page_size: 10,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages.push(page.interactions);
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
        // A cursor is bound to its organization.
        let err = c
            .list_interactions(ListInteractionsRequest {
                organization_id: "elsewhere".into(),
                page_size: 10,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    }
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![10, 10, 5]
    );
    let all: Vec<_> = pages.into_iter().flatten().collect();
    let mut ids: Vec<_> = all.iter().map(|i| i.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 25, "every record once");
    for pair in all.windows(2) {
        let key = |i: &crow::proto::Interaction| (std::cmp::Reverse(i.timestamp_ms), i.id.clone());
        assert!(key(&pair[0]) < key(&pair[1]), "newest first, then by id");
    }
    assert!(all.iter().all(|i| i.organization_id == "shop"));
    assert_eq!(common::list_all(&t.url, "shop", 500).await.len(), 25);

    let bad = c
        .list_interactions(ListInteractionsRequest {
            organization_id: "shop".into(),
            page_size: 10,
            page_token: "not-a-cursor!".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    let too_big = c
        .list_interactions(ListInteractionsRequest {
            organization_id: "shop".into(),
            page_size: 501,
            page_token: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(too_big.code(), tonic::Code::InvalidArgument);

    let s = c
        .get_summary(GetSummaryRequest {
            organization_id: "shop".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((s.web, s.social, s.cctv, s.total), (13, 12, 0, 25));
    t.stop().await;
}
