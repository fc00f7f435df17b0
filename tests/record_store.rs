//! The record-store behaviour suite, run against both stores: sled (a temporary database) and
//! PostgreSQL (a real server on loopback, a fresh database per test, see `pg.rs`). Every behaviour the
//! API relies on — listing, filters, paging, summary, organization isolation, the outbox, dead letters,
//! idempotency, catalogs, cameras, analyses — is checked on each, and one test feeds both stores the same
//! records and compares every answer.

use std::collections::BTreeSet;
use std::sync::Arc;

use crow::storage::{
    AnalysisRecord, AnalysisStatus, CameraConfig, Interaction, InteractionFilter, InteractionState,
    NewInteraction, OutboxFailure, PgStore, Product, Records, SourceType, StorageError, Store,
    ZoneConfig,
};

use crate::pg;

async fn sled_store() -> Records {
    Arc::new(Store::temporary().unwrap())
}

async fn postgres_store() -> Records {
    let options = pg::shared().database();
    Arc::new(PgStore::connect(&options).await.unwrap())
}

/// Every behaviour, as a test on each store.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sled {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::sled_store().await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::postgres_store().await).await
                }
            )*
        }
    };
}

on_both_stores!(
    pages_hold_every_record_once_newest_first,
    a_repeated_id_is_stored_and_counted_once,
    filters_select_by_source_time_and_whole_words,
    organizations_see_only_their_own,
    the_outbox_retries_then_dead_letters_and_replays,
    idempotency_keys_are_per_organization,
    catalogs_cameras_and_analyses_round_trip,
    metrics_are_kept_as_records_are_stored,
);

const T0: i64 = 1_763_000_000_000;

fn record(org: &str, n: i64, source: SourceType) -> Interaction {
    Interaction {
        id: format!("00000000-0000-4000-8000-{n:012}"),
        organization_id: org.into(),
        source_type: source,
        session_id: (source == SourceType::Cctv).then(|| format!("session-{}", n / 10)),
        data: serde_json::json!({ "n": n, "page": format!("/p/{n}"), "nested": { "list": ["x", n] } }),
        summary: format!("record {n}"),
        confidence: 0.5,
        tags: vec!["test".into()],
        product_ids: vec![],
        // Two records share each timestamp, so the id tie-break matters.
        timestamp_ms: T0 + (n / 2) * 1000,
        created_at_ms: T0,
    }
}

/// Every page of a listing, concatenated, and the number of pages.
async fn list_all(
    store: &Records,
    org: &str,
    filter: &InteractionFilter,
    page_size: usize,
) -> (Vec<Interaction>, usize) {
    let (mut all, mut pages, mut token) = (Vec::new(), 0, None::<String>);
    loop {
        let page = store
            .list_interactions(org, filter, page_size, token.as_deref())
            .await
            .unwrap();
        assert!(page.interactions.len() <= page_size);
        pages += 1;
        all.extend(page.interactions);
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => return (all, pages),
        }
        assert!(pages < 10_000, "paging does not end");
    }
}

fn ids(records: &[Interaction]) -> Vec<String> {
    records.iter().map(|i| i.id.clone()).collect()
}

fn newest_first(records: &[Interaction]) -> bool {
    records
        .windows(2)
        .all(|w| (-w[0].timestamp_ms, &w[0].id) < (-w[1].timestamp_ms, &w[1].id))
}

async fn pages_hold_every_record_once_newest_first(store: Records) {
    let mut stored = Vec::new();
    for n in 0..25 {
        let r = record(
            "shop",
            n,
            [SourceType::Web, SourceType::Social][n as usize % 2],
        );
        assert!(store.insert_interaction(&r).await.unwrap());
        stored.push(r);
    }
    let mut sizes = Vec::new();
    let mut token = None::<String>;
    let mut all = Vec::new();
    loop {
        let page = store
            .list_interactions("shop", &InteractionFilter::default(), 10, token.as_deref())
            .await
            .unwrap();
        sizes.push(page.interactions.len());
        all.extend(page.interactions);
        let Some(t) = page.next_page_token else { break };
        // A cursor is bound to its organization.
        let err = store
            .list_interactions("elsewhere", &InteractionFilter::default(), 10, Some(&t))
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::InvalidPageToken), "{err:?}");
        token = Some(t);
    }
    assert_eq!(sizes, [10, 10, 5]);
    assert!(newest_first(&all));
    // Exactly what was stored, every field (the data JSON included).
    stored.sort_by(|a, b| (-a.timestamp_ms, &a.id).cmp(&(-b.timestamp_ms, &b.id)));
    assert_eq!(all, stored);
    assert_eq!(
        store.get_interaction(&stored[3].id).await.unwrap().as_ref(),
        Some(&stored[3])
    );
    assert_eq!(store.get_interaction("no-such-id").await.unwrap(), None);

    // A record stored while a client pages, newer than the cursor, is not repeated nor does it shift
    // the rest; an older one shows up where it belongs.
    let first = store
        .list_interactions("shop", &InteractionFilter::default(), 10, None)
        .await
        .unwrap();
    let mut newer = record("shop", 1000, SourceType::Web);
    newer.timestamp_ms = T0 + 10_000_000;
    let mut older = record("shop", 1001, SourceType::Web);
    older.timestamp_ms = T0 - 1;
    store.insert_interaction(&newer).await.unwrap();
    store.insert_interaction(&older).await.unwrap();
    let mut rest = Vec::new();
    let mut token = first.next_page_token.clone();
    while let Some(t) = token {
        let page = store
            .list_interactions("shop", &InteractionFilter::default(), 10, Some(&t))
            .await
            .unwrap();
        rest.extend(page.interactions);
        token = page.next_page_token;
    }
    assert_eq!(rest.len(), 16);
    assert_eq!(rest.last().unwrap().id, older.id);
    assert!(!ids(&rest).contains(&newer.id));

    for bad in ["not-a-cursor!", "", "AAAA"] {
        let err = store
            .list_interactions("shop", &InteractionFilter::default(), 10, Some(bad))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidPageToken),
            "{bad:?}: {err:?}"
        );
    }
    // Page sizes are clamped to 1..=500.
    let one = store
        .list_interactions("shop", &InteractionFilter::default(), 0, None)
        .await
        .unwrap();
    assert_eq!(one.interactions.len(), 1);
}

async fn a_repeated_id_is_stored_and_counted_once(store: Records) {
    let r = record("shop", 1, SourceType::Web);
    assert!(store.insert_interaction(&r).await.unwrap());
    let mut changed = r.clone();
    changed.summary = "a different summary".into();
    assert!(!store.insert_interaction(&changed).await.unwrap());
    assert_eq!(
        store.get_interaction(&r.id).await.unwrap().unwrap().summary,
        r.summary,
        "the first write stays"
    );
    // A bulk insert that overlaps what is stored (and itself) counts only what is new.
    let batch: Vec<Interaction> = [1, 2, 3, 3, 4]
        .iter()
        .map(|&n| record("shop", n, SourceType::Cctv))
        .collect();
    assert_eq!(store.insert_interactions(&batch).await.unwrap(), 3);
    assert_eq!(store.insert_interactions(&batch).await.unwrap(), 0);
    let s = store.summary("shop").await.unwrap();
    assert_eq!((s.web, s.cctv, s.social, s.total()), (1, 3, 0, 4));
    let (all, _) = list_all(&store, "shop", &InteractionFilter::default(), 500).await;
    assert_eq!(all.len(), 4);
    assert_eq!(store.summary("nobody").await.unwrap().total(), 0);
}

async fn filters_select_by_source_time_and_whole_words(store: Records) {
    let sources = [SourceType::Web, SourceType::Cctv, SourceType::Social];
    let mut stored = Vec::new();
    for n in 0..60 {
        let mut r = record("shop", n, sources[n as usize % 3]);
        r.summary = match n % 4 {
            0 => format!("Customer picked up the Red-Shoes {n}"),
            1 => format!("browsed red scarves {n}"),
            2 => format!("asked about shoes {n}"),
            _ => format!("walked past {n}"),
        };
        if n % 5 == 0 {
            r.tags.push("VIP".into());
            r.product_ids.push("sku-101".into());
        }
        stored.push(r);
    }
    assert_eq!(store.insert_interactions(&stored).await.unwrap(), 60);

    let expect = |pred: &dyn Fn(&Interaction) -> bool| -> Vec<String> {
        let mut v: Vec<&Interaction> = stored.iter().filter(|i| pred(i)).collect();
        v.sort_by(|a, b| (-a.timestamp_ms, &a.id).cmp(&(-b.timestamp_ms, &b.id)));
        v.iter().map(|i| i.id.clone()).collect()
    };
    let has_word = |i: &Interaction, w: &str| {
        let text = format!(
            "{} {} {} {}",
            i.summary,
            i.tags.join(" "),
            i.product_ids.join(" "),
            i.data
        );
        text.split(|c: char| !c.is_alphanumeric())
            .any(|x| x.eq_ignore_ascii_case(w))
    };
    let cases: Vec<(InteractionFilter, Vec<String>)> = vec![
        (
            InteractionFilter {
                source: Some(SourceType::Cctv),
                ..Default::default()
            },
            expect(&|i| i.source_type == SourceType::Cctv),
        ),
        (
            InteractionFilter {
                from_ms: Some(T0 + 5_000),
                to_ms: Some(T0 + 12_000),
                ..Default::default()
            },
            expect(&|i| i.timestamp_ms >= T0 + 5_000 && i.timestamp_ms < T0 + 12_000),
        ),
        (
            InteractionFilter {
                query: Some("RED shoes".into()),
                ..Default::default()
            },
            expect(&|i| has_word(i, "red") && has_word(i, "shoes")),
        ),
        (
            // Whole words: "shoe" is not "shoes".
            InteractionFilter {
                query: Some("shoe".into()),
                ..Default::default()
            },
            vec![],
        ),
        (
            InteractionFilter {
                query: Some("vip sku".into()),
                source: Some(SourceType::Web),
                from_ms: Some(T0 + 10_000),
                ..Default::default()
            },
            expect(&|i| {
                has_word(i, "vip")
                    && i.source_type == SourceType::Web
                    && i.timestamp_ms >= T0 + 10_000
            }),
        ),
        (
            // Strings inside the data JSON are searchable too.
            InteractionFilter {
                query: Some("p 7".into()),
                ..Default::default()
            },
            expect(&|i| i.data["page"] == "/p/7"),
        ),
    ];
    for (filter, expected) in cases {
        for page_size in [1, 7, 500] {
            let (got, _) = list_all(&store, "shop", &filter, page_size).await;
            assert_eq!(ids(&got), expected, "{filter:?}, pages of {page_size}");
        }
    }
    let empty = store
        .list_interactions(
            "shop",
            &InteractionFilter {
                from_ms: Some(T0),
                to_ms: Some(T0),
                ..Default::default()
            },
            10,
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(empty, StorageError::InvalidFilter(_)), "{empty:?}");
}

async fn organizations_see_only_their_own(store: Records) {
    for n in 0..10 {
        store
            .insert_interaction(&record("a", n, SourceType::Web))
            .await
            .unwrap();
    }
    let mut b = record("b", 100, SourceType::Social);
    b.summary = "record 3".into();
    store.insert_interaction(&b).await.unwrap();
    let (a_all, _) = list_all(&store, "a", &InteractionFilter::default(), 3).await;
    assert_eq!(a_all.len(), 10);
    assert!(a_all.iter().all(|i| i.organization_id == "a"));
    let query = InteractionFilter {
        query: Some("record 3".into()),
        ..Default::default()
    };
    let (b_found, _) = list_all(&store, "b", &query, 10).await;
    assert_eq!(ids(&b_found), [b.id.clone()]);
    let (a_found, _) = list_all(&store, "a", &query, 10).await;
    assert_eq!(a_found.len(), 1);
    assert_eq!(a_found[0].organization_id, "a");
    assert_eq!(store.summary("a").await.unwrap().web, 10);
    assert_eq!(store.summary("b").await.unwrap().total(), 1);
    // Another organization's id is answered exactly like a missing one.
    assert!(store.interaction_state("a", &b.id).await.unwrap().is_none());
    assert!(matches!(
        store.interaction_state("b", &b.id).await.unwrap(),
        Some(InteractionState::Stored(_))
    ));
    // Prefixes do not leak: organization "a" is not a prefix match of "ab".
    store
        .insert_interaction(&record("ab", 200, SourceType::Web))
        .await
        .unwrap();
    assert_eq!(
        list_all(&store, "a", &InteractionFilter::default(), 500)
            .await
            .0
            .len(),
        10
    );
}

fn event(org: &str, n: i64, key: Option<&str>) -> NewInteraction {
    NewInteraction {
        id: format!("01900000-0000-7000-8000-{n:012}"),
        organization_id: org.into(),
        source_type: SourceType::Web,
        session_id: None,
        data: serde_json::json!({ "page": format!("/e/{n}") }),
        summary: Some(format!("event {n}")),
        product_ids: vec![],
        timestamp_ms: T0 + n,
        received_at_ms: T0 + n,
        idempotency_key: key.map(str::to_owned),
    }
}

fn stored_from(entry: &NewInteraction) -> Interaction {
    Interaction {
        id: entry.id.clone(),
        organization_id: entry.organization_id.clone(),
        source_type: entry.source_type,
        session_id: None,
        data: entry.data.clone(),
        summary: entry.summary.clone().unwrap_or_default(),
        confidence: 1.0,
        tags: vec![],
        product_ids: vec![],
        timestamp_ms: entry.timestamp_ms,
        created_at_ms: entry.received_at_ms,
    }
}

async fn the_outbox_retries_then_dead_letters_and_replays(store: Records) {
    for n in 0..5 {
        let e = store
            .enqueue_interaction(&event("shop", n, None))
            .await
            .unwrap();
        assert!(!e.duplicate);
    }
    store.sync().await.unwrap();
    assert_eq!(store.outbox_status().await.unwrap().0, 5);
    let due = store.outbox_due(T0 + 100, 3).await.unwrap();
    assert_eq!(due.len(), 3);
    assert!(due.windows(2).all(|w| w[0].seq < w[1].seq), "oldest first");
    assert_eq!(due[0].record, event("shop", 0, None));

    // Entry 0 is processed; entry 1 fails until it is a dead letter.
    assert!(store
        .complete_outbox(&due[0], &stored_from(&due[0].record))
        .await
        .unwrap());
    assert!(matches!(
        store
            .interaction_state("shop", &due[0].record.id)
            .await
            .unwrap(),
        Some(InteractionState::Stored(_))
    ));
    let mut entry = due[1].clone();
    let later = T0 + 60_000;
    for attempt in 1..=2 {
        let f = store
            .fail_outbox(&entry, "model timed out", 2, later)
            .await
            .unwrap();
        assert_eq!(f, OutboxFailure::Retry { attempts: attempt });
        // Not due before its retry time.
        assert!(!ids_of(&store.outbox_due(later - 1, 10).await.unwrap()).contains(&entry.record.id));
        let pending = store
            .interaction_state("shop", &entry.record.id)
            .await
            .unwrap();
        let Some(InteractionState::Pending(p)) = pending else {
            panic!("{pending:?}")
        };
        assert_eq!(
            (p.attempts, p.last_error.as_deref()),
            (attempt, Some("model timed out"))
        );
        entry = p;
    }
    assert_eq!(store.outbox_status().await.unwrap(), (4, Some(T0 + 2)));
    let f = store
        .fail_outbox(&entry, "still failing", 2, later)
        .await
        .unwrap();
    assert_eq!(f, OutboxFailure::DeadLettered { attempts: 3 });
    let dead = store.list_dead_letters("shop", 10, None).await.unwrap();
    assert_eq!(dead.dead_letters.len(), 1);
    assert_eq!(dead.dead_letters[0].record, entry.record);
    assert_eq!(dead.dead_letters[0].last_error, "still failing");
    assert_eq!(dead.dead_letters[0].attempts, 3);
    assert!(store
        .list_dead_letters("other", 10, None)
        .await
        .unwrap()
        .dead_letters
        .is_empty());
    assert!(matches!(
        store
            .interaction_state("shop", &entry.record.id)
            .await
            .unwrap(),
        Some(InteractionState::DeadLetter(_))
    ));
    assert_eq!(store.outbox_status().await.unwrap().0, 3);

    // Replaying it is for its organization only, and resets its attempts.
    assert!(store
        .retry_dead_letter("other", &entry.record.id)
        .await
        .unwrap()
        .is_none());
    let back = store
        .retry_dead_letter("shop", &entry.record.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.attempts, 0);
    assert!(store
        .list_dead_letters("shop", 10, None)
        .await
        .unwrap()
        .dead_letters
        .is_empty());
    // It is due at once (the replay time is now).
    assert!(ids_of(&store.outbox_due(i64::MAX, 10).await.unwrap()).contains(&entry.record.id));
    assert!(store
        .complete_outbox(&back, &stored_from(&back.record))
        .await
        .unwrap());
    // Completing an entry twice (a retry after a lost reply) stores nothing new.
    assert!(!store
        .complete_outbox(&back, &stored_from(&back.record))
        .await
        .unwrap());
    assert_eq!(store.outbox_status().await.unwrap().0, 3);
    assert_eq!(store.summary("shop").await.unwrap().web, 2);

    // Dead letters page by id.
    for n in 10..15 {
        store
            .enqueue_interaction(&event("paged", n, None))
            .await
            .unwrap();
    }
    for e in store.outbox_due(T0 + 100, 100).await.unwrap() {
        if e.record.organization_id == "paged" {
            store.fail_outbox(&e, "x", 0, later).await.unwrap();
        }
    }
    let p1 = store.list_dead_letters("paged", 3, None).await.unwrap();
    let p2 = store
        .list_dead_letters("paged", 3, p1.next_page_token.as_deref())
        .await
        .unwrap();
    assert_eq!((p1.dead_letters.len(), p2.dead_letters.len()), (3, 2));
    assert!(p2.next_page_token.is_none());
    let all: Vec<String> = p1
        .dead_letters
        .iter()
        .chain(&p2.dead_letters)
        .map(|d| d.record.id.clone())
        .collect();
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted);
    assert_eq!(all.len(), 5);
}

fn ids_of(entries: &[crow::storage::OutboxEntry]) -> Vec<String> {
    entries.iter().map(|e| e.record.id.clone()).collect()
}

async fn idempotency_keys_are_per_organization(store: Records) {
    let first = store
        .enqueue_interaction(&event("shop", 1, Some("order-77")))
        .await
        .unwrap();
    assert!(!first.duplicate);
    let again = store
        .enqueue_interaction(&event("shop", 2, Some("order-77")))
        .await
        .unwrap();
    assert_eq!(
        (again.id.as_str(), again.duplicate),
        (first.id.as_str(), true)
    );
    let other = store
        .enqueue_interaction(&event("other", 3, Some("order-77")))
        .await
        .unwrap();
    assert!(!other.duplicate);
    assert_ne!(other.id, first.id);
    assert_eq!(store.outbox_status().await.unwrap().0, 2);
    // The key still holds once the event was processed.
    let due = store.outbox_due(T0 + 100, 10).await.unwrap();
    for e in &due {
        store
            .complete_outbox(e, &stored_from(&e.record))
            .await
            .unwrap();
    }
    let later = store
        .enqueue_interaction(&event("shop", 4, Some("order-77")))
        .await
        .unwrap();
    assert_eq!((later.id, later.duplicate), (first.id, true));
    assert_eq!(store.outbox_status().await.unwrap().0, 0);
    assert_eq!(store.summary("shop").await.unwrap().total(), 1);
}

fn product(org: &str, id: &str, name: &str) -> Product {
    Product {
        id: id.into(),
        organization_id: org.into(),
        name: name.into(),
        category: "shoes".into(),
        description: "leather, size 42".into(),
        tags: vec!["footwear".into()],
        aliases: vec![],
        updated_at_ms: T0,
    }
}

async fn catalogs_cameras_and_analyses_round_trip(store: Records) {
    let products: Vec<Product> = (0..7)
        .map(|n| product("shop", &format!("sku-{n:03}"), &format!("Shoe {n}")))
        .collect();
    store.upsert_products(&products).await.unwrap();
    store
        .upsert_products(&[product("other", "sku-000", "Other's shoe")])
        .await
        .unwrap();
    let mut renamed = products[2].clone();
    renamed.name = "Renamed".into();
    store.upsert_products(&[renamed.clone()]).await.unwrap();
    let p1 = store.list_products("shop", 4, None).await.unwrap();
    let p2 = store
        .list_products("shop", 4, p1.next_page_token.as_deref())
        .await
        .unwrap();
    assert_eq!((p1.products.len(), p2.products.len()), (4, 3));
    assert!(p2.next_page_token.is_none());
    assert_eq!(p1.products[2], renamed);
    assert_eq!(p1.products[0], products[0]);
    assert_eq!(store.catalog("shop", 3).await.unwrap().len(), 3);
    assert_eq!(
        store.catalog("other", 100).await.unwrap()[0].name,
        "Other's shoe"
    );
    assert!(store.delete_product("shop", "sku-001").await.unwrap());
    assert!(!store.delete_product("shop", "sku-001").await.unwrap());
    assert!(!store.delete_product("nobody", "sku-000").await.unwrap());
    assert_eq!(store.catalog("shop", 100).await.unwrap().len(), 6);

    let camera = CameraConfig {
        organization_id: "shop".into(),
        camera_id: "entrance".into(),
        zones: vec![ZoneConfig {
            id: "shelf".into(),
            polygon: vec![[0.0, 0.0], [0.5, 0.0], [0.5, 0.5]],
            product_ids: vec!["sku-000".into()],
            min_dwell_ms: 2500,
        }],
        lines: vec![],
        masks: vec![vec![[0.75, 0.75], [1.0, 0.75], [1.0, 1.0]]],
        detector_input: Some([640, 480]),
        detector_tiles: Some([2, 2]),
        updated_at_ms: T0,
    };
    store.upsert_camera(&camera).await.unwrap();
    for id in ["aisle-1", "aisle-2"] {
        let mut c = camera.clone();
        c.camera_id = id.into();
        store.upsert_camera(&c).await.unwrap();
    }
    assert_eq!(
        store.get_camera("shop", "entrance").await.unwrap(),
        Some(camera.clone())
    );
    assert_eq!(store.get_camera("other", "entrance").await.unwrap(), None);
    let (first, token) = store.list_cameras("shop", 2, None).await.unwrap();
    let (rest, end) = store
        .list_cameras("shop", 2, token.as_deref())
        .await
        .unwrap();
    let names: Vec<&str> = first
        .iter()
        .chain(&rest)
        .map(|c| c.camera_id.as_str())
        .collect();
    assert_eq!(names, ["aisle-1", "aisle-2", "entrance"]);
    assert!(end.is_none());
    assert!(store.delete_camera("shop", "aisle-1").await.unwrap());
    assert!(!store.delete_camera("shop", "aisle-1").await.unwrap());

    let analysis = analysis_record;
    let done = AnalysisRecord {
        finished_at_ms: Some(T0 + 9),
        ..analysis(1, AnalysisStatus::Done)
    };
    for a in [
        analysis(3, AnalysisStatus::Running),
        done.clone(),
        analysis(2, AnalysisStatus::Queued),
    ] {
        store.put_analysis(&a).await.unwrap();
    }
    assert_eq!(
        store.get_analysis(&done.id).await.unwrap(),
        Some(done.clone())
    );
    let unfinished: Vec<String> = store
        .claim_analyses(crow::storage::now_ms())
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(
        unfinished,
        [
            analysis(2, AnalysisStatus::Queued).id,
            analysis(3, AnalysisStatus::Running).id
        ]
    );
    store
        .put_analysis(&analysis(2, AnalysisStatus::Done))
        .await
        .unwrap();
    store
        .delete_analysis(&analysis(3, AnalysisStatus::Running).id)
        .await
        .unwrap();
    assert!(store
        .claim_analyses(crow::storage::now_ms())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.get_analysis("missing").await.unwrap(), None);
}

/// The same records fed to both stores give the same answers to the same questions, page for page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_stores_give_identical_answers() {
    let stores = [sled_store().await, postgres_store().await];
    // A deterministic mix: three organizations, three sources, timestamps with ties, a small vocabulary.
    let vocabulary = [
        "shoes",
        "red",
        "scarf",
        "entrance",
        "hesitated",
        "vip",
        "returned",
        "gift",
    ];
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |m: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % m
    };
    let mut records = Vec::new();
    for n in 0..600 {
        let org = ["north", "south", "south-east"][next(3) as usize];
        let source = [SourceType::Web, SourceType::Cctv, SourceType::Social][next(3) as usize];
        let words: Vec<&str> = (0..1 + next(4))
            .map(|_| vocabulary[next(vocabulary.len() as u64) as usize])
            .collect();
        let mut r = record(org, n, source);
        r.summary = words.join(" ");
        r.timestamp_ms = T0 + next(200) as i64 * 1000;
        records.push(r);
    }
    for store in &stores {
        for chunk in records.chunks(97) {
            store.insert_interactions(chunk).await.unwrap();
        }
    }
    let mut filters = vec![InteractionFilter::default()];
    for source in [None, Some(SourceType::Cctv)] {
        for query in [None, Some("red"), Some("shoes vip"), Some("absent")] {
            for (from, to) in [(None, None), (Some(T0 + 50_000), Some(T0 + 120_000))] {
                filters.push(InteractionFilter {
                    source,
                    query: query.map(str::to_owned),
                    from_ms: from,
                    to_ms: to,
                });
            }
        }
    }
    let mut compared = 0;
    for org in ["north", "south", "south-east", "none"] {
        let summaries = [
            stores[0].summary(org).await.unwrap(),
            stores[1].summary(org).await.unwrap(),
        ];
        assert_eq!(summaries[0], summaries[1], "{org}");
        for filter in &filters {
            for page_size in [9, 500] {
                let a = list_all(&stores[0], org, filter, page_size).await.0;
                let b = list_all(&stores[1], org, filter, page_size).await.0;
                assert_eq!(a, b, "{org} {filter:?} pages of {page_size}");
                assert!(newest_first(&a));
                compared += a.len();
            }
        }
    }
    assert!(compared > 2000, "the questions found records ({compared})");
    let distinct: BTreeSet<_> = records.iter().map(|r| r.organization_id.clone()).collect();
    assert_eq!(distinct.len(), 3);
}

/// Several processes drain one PostgreSQL outbox: what one claimed, the other skips until the claim
/// ends; completing or failing an entry ends its claim; a process takes its own claims again at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sharing_a_postgres_outbox_claim_different_entries() {
    let options = pg::shared().database();
    let a: Records = Arc::new(PgStore::connect(&options).await.unwrap());
    let b: Records = Arc::new(PgStore::connect(&options).await.unwrap());
    for n in 0..6 {
        a.enqueue_interaction(&event("shop", n, None))
            .await
            .unwrap();
    }
    let now = T0 + 100;
    let lease = crow::storage::OUTBOX_CLAIM_MS;
    let mine = a.claim_outbox(now, 4).await.unwrap();
    let theirs = b.claim_outbox(now, 10).await.unwrap();
    assert_eq!(ids_of(&mine).len(), 4);
    assert_eq!(theirs.len(), 2, "only what A did not claim");
    let overlap: Vec<_> = ids_of(&mine)
        .into_iter()
        .filter(|id| ids_of(&theirs).contains(id))
        .collect();
    assert!(overlap.is_empty(), "{overlap:?}");
    // Claiming again, each gets its own and none of the other's.
    assert_eq!(
        ids_of(&b.claim_outbox(now, 10).await.unwrap()),
        ids_of(&theirs)
    );
    // A's own claims are A's again at once (after an outage mid-drain, say).
    assert_eq!(
        ids_of(&a.claim_outbox(now, 10).await.unwrap()),
        ids_of(&mine)
    );
    // Outbox status tells B when A's claims end, not that they are due now.
    assert_eq!(b.outbox_status().await.unwrap(), (6, Some(now + lease)));
    // A fails one: the claim ends with it and the entry is due at its retry time, for anyone.
    a.fail_outbox(&mine[0], "x", 3, now + 10).await.unwrap();
    let mut retried = b.claim_outbox(now + 10, 10).await.unwrap();
    retried.retain(|e| ids_of(&mine).contains(&e.record.id));
    assert_eq!(ids_of(&retried), [mine[0].record.id.clone()]);
    // A dies holding the rest: once the lease ends, B takes them.
    let before_end = b.claim_outbox(now + lease - 1, 10).await.unwrap();
    assert!(ids_of(&before_end)
        .iter()
        .all(|id| !ids_of(&mine[1..]).contains(id)));
    let mut taken = b.claim_outbox(now + 2 * lease, 10).await.unwrap();
    taken.retain(|e| ids_of(&mine[1..]).contains(&e.record.id));
    assert_eq!(ids_of(&taken), ids_of(&mine[1..]));
    for e in taken.iter().chain(&theirs).chain(&retried) {
        assert!(b.complete_outbox(e, &stored_from(&e.record)).await.unwrap());
    }
    assert_eq!(a.outbox_status().await.unwrap(), (0, None));
    assert_eq!(a.summary("shop").await.unwrap().web, 6);
}

/// Several processes serve `Analyze` on one PostgreSQL: an analysis a process stored unfinished is its
/// own, another process claims only what nobody holds, a live process keeps its claims, and a dead
/// process's analyses are claimed by another once its claims expire — so none runs twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sharing_postgres_analyses_run_each_once() {
    let options = pg::shared().database();
    let a: Records = Arc::new(PgStore::connect(&options).await.unwrap());
    let b: Records = Arc::new(PgStore::connect(&options).await.unwrap());
    let analysis = analysis_record;
    for n in 0..3 {
        a.put_analysis(&analysis(n, AnalysisStatus::Queued))
            .await
            .unwrap();
    }
    let lease = crow::storage::ANALYSIS_CLAIM_MS;
    let now = crow::storage::now_ms();
    let ids = |v: Vec<AnalysisRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert!(
        b.claim_analyses(now).await.unwrap().is_empty(),
        "A's analyses are A's"
    );
    assert_eq!(ids(a.claim_analyses(now).await.unwrap()).len(), 3);
    // A keeps working past its first lease: renewed, its claims still hold.
    a.renew_analysis_claims(now + lease - 1).await.unwrap();
    assert!(b.claim_analyses(now + lease + 1).await.unwrap().is_empty());
    // A finishes one and dies holding two: once their claims end, B takes exactly those two.
    a.put_analysis(&AnalysisRecord {
        finished_at_ms: Some(now),
        ..analysis(0, AnalysisStatus::Done)
    })
    .await
    .unwrap();
    let taken = ids(b.claim_analyses(now + 3 * lease).await.unwrap());
    assert_eq!(
        taken,
        [1, 2]
            .map(|n| analysis(n, AnalysisStatus::Queued).id)
            .to_vec()
    );
    assert!(
        a.claim_analyses(now + 3 * lease).await.unwrap().is_empty(),
        "and A, back, does not run them again"
    );
}

/// Analysis `n` of organization `shop`, over camera records since `T0`.
fn analysis_record(n: i64, status: AnalysisStatus) -> AnalysisRecord {
    AnalysisRecord {
        id: format!("01900000-0000-7000-9000-{n:012}"),
        organization_id: "shop".into(),
        from_ms: Some(T0),
        to_ms: None,
        source: Some(SourceType::Cctv),
        status,
        stats: Default::default(),
        records_used: 0,
        result: None,
        error: None,
        created_at_ms: T0 + n,
        started_at_ms: None,
        finished_at_ms: None,
    }
}

/// A `cctv` record of `camera` whose events are one crossing of the door, in or out, at `at_ms`.
fn crossing(n: i64, camera: &str, at_ms: i64, inward: bool) -> Interaction {
    let mut r = record("shop", n, SourceType::Cctv);
    r.data = serde_json::json!({
        "camera_id": camera,
        "events": [{
            "kind": if inward { "line_in" } else { "line_out" },
            "track_id": n, "frame_index": n, "at_ms": at_ms, "place": "door", "score": 0.9,
        }],
        "occupancy": [{ "frame_index": n, "at_ms": at_ms, "people": u32::from(inward) }],
    });
    r
}

async fn metrics_are_kept_as_records_are_stored(store: Records) {
    use crow::storage::metrics::BucketWidth;
    let hour = BucketWidth::Hour.ms();
    let base = T0 - T0.rem_euclid(hour);
    assert!(store
        .insert_interaction(&crossing(1, "front", base + 1_000, true))
        .await
        .unwrap());
    // A bulk insert repeating a record, and one already stored: each counts once.
    let batch = [
        crossing(1, "front", base + 1_000, true),
        crossing(2, "front", base + 61_000, false),
        crossing(2, "front", base + 61_000, false),
        crossing(3, "back", base + hour + 5, true),
    ];
    assert_eq!(store.insert_interactions(&batch).await.unwrap(), 2);
    let buckets = store
        .metric_buckets("shop", None, BucketWidth::Hour, base, base + 2 * hour)
        .await
        .unwrap();
    let seen: Vec<(&str, i64, u64, u64, u64)> = buckets
        .iter()
        .map(|b| {
            let door = &b.bucket.lines["door"];
            (
                b.camera_id.as_str(),
                b.start_ms - base,
                door.people_in,
                door.people_out,
                b.bucket.people_ms,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [("back", hour, 1, 0, 0), ("front", 0, 1, 1, 60_000)],
        "one person in view for the minute between the crossings"
    );
    let one = store
        .metric_buckets(
            "shop",
            Some("front"),
            BucketWidth::FiveMinutes,
            base,
            base + hour,
        )
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert!(store
        .metric_buckets("other", None, BucketWidth::Hour, base, base + hour)
        .await
        .unwrap()
        .is_empty());
}
