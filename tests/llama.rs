//! Real llama.cpp inference: Gemma 3 270M (from PyPI) for grammar-constrained product matching, and the
//! multimodal path with the repository's small random-weight projector (meaningless text, real path).

use std::path::PathBuf;

use crow::inference::llama::{
    CatalogProduct, LlamaError, LlamaSettings, TextGenerator, TextModel, VisionModel,
};
use crow::inference::{decode_frame, ImageFormat};
use crow::proto::ImageFormat as WireFormat;
use crow::{DescriberKind, PipelineConfig};

use crate::common::{self, TestServer};

fn model(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(name);
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup.sh first",
        p.display()
    );
    p
}

const TEXT: &str = "gemma-3-270m-q4_k_m.gguf";
const MMPROJ: &str = "test-mmproj-gemma3-224.gguf";

fn settings() -> LlamaSettings {
    LlamaSettings {
        threads: 2,
        n_ctx: 2048,
        max_tokens: 24,
    }
}

#[test]
fn product_matching_answers_parseable_json_with_catalog_ids_only() {
    let text = TextModel::load(model(TEXT), settings()).unwrap();
    let catalog = vec![
        CatalogProduct {
            id: "sku-101".into(),
            name: "red running shoes".into(),
        },
        CatalogProduct {
            id: "sku-202".into(),
            name: "coffee beans 1 kg".into(),
        },
        CatalogProduct {
            id: "sku-303".into(),
            name: "winter jacket".into(),
        },
    ];
    let observations = [
        vec![(
            3,
            "A customer picks up red running shoes and tries them on.".to_owned(),
        )],
        vec![(
            7,
            "Two people look at the coffee shelf; one takes a bag of beans.".to_owned(),
        )],
        vec![(
            0,
            "A person walks past the entrance without stopping.".to_owned(),
        )],
        vec![
            (
                10,
                "Someone holds a winter jacket, then puts it back.".to_owned(),
            ),
            (12, "They leave.".to_owned()),
        ],
    ];
    let mut matched = 0;
    for obs in &observations {
        let (m, stats) = text.match_products(obs, &catalog).unwrap();
        matched += m.proposals.len();
        for found in &m.proposals {
            assert!(catalog.iter().any(|p| p.id == found.product_id), "{m:?}");
            assert!(
                found.frames.iter().all(|f| obs.iter().any(|(i, _)| i == f)),
                "citations only of the frames shown: {m:?}"
            );
            assert!(
                !found.frames.is_empty(),
                "a proposal names its frames: {m:?}"
            );
            assert!(
                found.frames.windows(2).all(|w| w[0] < w[1]),
                "distinct frames in order: {m:?}"
            );
            assert!(found.quote.chars().count() <= 60, "{m:?}");
        }
        let ids = m.product_ids();
        let mut distinct = ids.clone();
        distinct.dedup();
        assert_eq!(ids, distinct, "each product at most once: {m:?}");
        assert_eq!(
            m.unknown_ids_dropped, 0,
            "the grammar only allows catalog ids"
        );
        assert!(stats.generated_tokens > 0);
    }
    assert!(
        matched > 0,
        "observations naming catalog products match something"
    );
    // An empty catalog allows only an empty list.
    let (m, _) = text.match_products(&observations[0], &[]).unwrap();
    assert!(m.proposals.is_empty());
}

#[test]
fn the_test_projector_turns_a_real_image_into_image_tokens_and_text() {
    let vision = VisionModel::load(model(TEXT), model(MMPROJ), None, settings()).unwrap();
    let mut describer = vision.describer().unwrap();
    let bytes = std::fs::read(common::data("messi5.jpg")).unwrap();
    let image = decode_frame(
        &bytes,
        ImageFormat::Jpeg,
        crow::inference::FrameLimits::DEFAULT,
    )
    .unwrap()
    .image;
    let (_text, stats) = describer.describe_image(&image).unwrap();
    // Projector geometry: image_size 224 / patch 14 = 16 patches a side, pooled by 4 -> 4x4 = 16 tokens.
    assert_eq!(stats.image_tokens, 16);
    assert!(stats.prompt_tokens > stats.image_tokens);
    assert!(
        stats.generated_tokens > 0,
        "decoding after the image produced tokens"
    );
}

#[test]
fn bad_model_files_are_typed_errors_not_crashes() {
    let missing = VisionModel::load(
        model(TEXT).with_file_name("nope.gguf"),
        model(MMPROJ),
        None,
        settings(),
    )
    .unwrap_err();
    assert!(matches!(missing, LlamaError::Missing { .. }), "{missing}");
    let not_gguf = TextModel::load(common::data("messi5.jpg"), settings()).unwrap_err();
    assert!(matches!(not_gguf, LlamaError::NotGguf { .. }), "{not_gguf}");
    let swapped = VisionModel::load(model(MMPROJ), model(TEXT), None, settings()).unwrap_err();
    assert!(matches!(swapped, LlamaError::WrongKind { .. }), "{swapped}");
    let mismatch = VisionModel::load(
        model(TEXT),
        model("test-mmproj-mismatch.gguf"),
        None,
        settings(),
    )
    .unwrap_err();
    assert!(
        matches!(
            mismatch,
            LlamaError::ProjectorMismatch {
                projection_dim: 320,
                n_embd: 640,
                ..
            }
        ),
        "{mismatch}"
    );
    assert!(mismatch
        .to_string()
        .contains("use the mmproj made for this model"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_with_the_vision_describer_stores_llama_descriptions() {
    let mut config = PipelineConfig {
        describer: DescriberKind::Llama,
        describer_slots: 1,
        ..PipelineConfig::default()
    };
    config.llama.model = model(TEXT);
    config.llama.mmproj = model(MMPROJ);
    config.llama.max_tokens = 12;
    let t = TestServer::start(config).await;
    let jpegs = common::jpeg_frames("vtest.avi", 1.0, 5);
    let items: Vec<_> = jpegs
        .iter()
        .enumerate()
        .map(|(i, (pos, j))| (i as u64, *pos, j.clone(), WireFormat::Jpeg))
        .collect();
    let acks = common::send(
        &t.url,
        common::frames("acme", "shelf", 1_763_000_000_000, &items),
    )
    .await;
    let session = t
        .crow
        .pipeline()
        .sessions()
        .close_session("acme", &acks[0].session_id)
        .await
        .unwrap();
    assert_eq!(session.counters.described, session.counters.accepted);
    let interactions =
        common::wait_for_interactions(&t.url, "acme", session.counters.batches).await;
    assert_eq!(interactions.len() as u64, session.counters.batches);
    assert!(!interactions.is_empty());
    for i in &interactions {
        let data: serde_json::Value = serde_json::from_str(&i.data_json).unwrap();
        for f in data["frames"].as_array().unwrap() {
            assert!(
                f["describer"].as_str().unwrap().starts_with("llama-mtmd:"),
                "{f}"
            );
            assert_eq!(f["details"]["image_tokens"], 16);
        }
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_calls_than_slots_wait_counted_and_stopped_sessions_jobs_are_skipped() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use crow::actors::{DescribeJob, DescriberFactory, DescriberPool};

    let vision = VisionModel::load(
        model(TEXT),
        model(MMPROJ),
        None,
        LlamaSettings {
            max_tokens: 4,
            ..settings()
        },
    )
    .unwrap();
    let factory: DescriberFactory = Arc::new(move || Ok(Box::new(vision.describer()?) as _));
    // One slot and room for one waiting frame: of 5 simultaneous submissions, at least 3 must wait.
    let pool = DescriberPool::start(factory, 1, 1).unwrap();
    let bytes = std::fs::read(common::data("messi5.jpg")).unwrap();
    let image = Arc::new(
        decode_frame(
            &bytes,
            ImageFormat::Jpeg,
            crow::inference::FrameLimits::DEFAULT,
        )
        .unwrap()
        .image,
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let job = |i: u64, cancelled: Arc<AtomicBool>| {
        let tx = tx.clone();
        DescribeJob {
            image: Arc::clone(&image),
            previous: None,
            people: None,
            frame_index: i,
            captured_at_ms: 0,
            cancelled,
            done: Box::new(move |r| {
                let _ = tx.send((i, r));
            }),
        }
    };
    let live = Arc::new(AtomicBool::new(false));
    let submissions: Vec<_> = (0..5)
        .map(|i| {
            let (pool, job) = (pool.clone(), job(i, Arc::clone(&live)));
            tokio::spawn(async move { pool.submit(job).await.unwrap() })
        })
        .collect();
    for s in submissions {
        s.await.unwrap();
    }
    let mut done = Vec::new();
    for _ in 0..5 {
        let (i, r) = rx.recv().await.unwrap();
        assert!(r.is_ok(), "frame {i}: {r:?}");
        done.push(i);
    }
    assert!(
        pool.stats().waits() >= 3,
        "waits counted: {}",
        pool.stats().waits()
    );
    assert_eq!(pool.stats().described(), 5);

    // A stopped session's queued jobs are skipped, not described.
    let stopped = Arc::new(AtomicBool::new(false));
    pool.submit(job(10, Arc::clone(&live))).await.unwrap();
    pool.submit(job(11, Arc::clone(&stopped))).await.unwrap();
    stopped.store(true, Ordering::Release);
    let mut results = Vec::new();
    for _ in 0..2 {
        results.push(rx.recv().await.unwrap());
    }
    results.sort_by_key(|(i, _)| *i);
    assert!(results[0].1.is_ok());
    assert!(
        results[1]
            .1
            .as_ref()
            .is_err_and(|e| e.contains("cancelled")),
        "{:?}",
        results[1]
    );
    assert_eq!(pool.stats().cancelled(), 1);
    assert_eq!(pool.stats().described(), 6);
}

#[test]
fn the_phrasing_of_an_analysis_answers_json_of_the_expected_shape() {
    let text = TextModel::load(model(TEXT), settings()).unwrap();
    let facts = [
        "The window holds 3 records: 1 web, 2 CCTV and 0 social.".to_owned(),
        "Cameras counted 12 people in and 9 out through the tripwires, and first saw 14 people."
            .to_owned(),
        "The busiest hour was 2025-11-25 16:00 to 17:00 UTC: 7 people came in.".to_owned(),
    ];
    let (phrasing, stats) = text.phrase_analysis(&facts).unwrap();
    assert!(!phrasing.statements.is_empty() && phrasing.statements.len() <= 4);
    for s in &phrasing.statements {
        assert!(s.text.chars().count() <= 200);
        assert!(
            !s.facts.is_empty() && s.facts.iter().all(|f| (1..=3).contains(f)),
            "{s:?}"
        );
    }
    assert!(stats.generated_tokens > 0);
}
