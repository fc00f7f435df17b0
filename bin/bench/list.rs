//! `crow bench list`: ListInteractions and GetSummary latency over gRPC with a large organization, against
//! a full scan of that organization in sled.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use crow::proto::interaction_service_client::InteractionServiceClient;
use crow::proto::{GetSummaryRequest, ListInteractionsRequest, SourceType as ProtoSource};
use crow::storage::{Interaction, SourceType, Store};
use crow::{Crow, DescriberKind, PipelineConfig};

#[derive(Args)]
pub(crate) struct ListBenchArgs {
    /// Interactions generated in the organization.
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    /// Timed calls per measurement.
    #[arg(long, default_value_t = 2_000)]
    calls: usize,
    /// Records per page.
    #[arg(long, default_value_t = 50)]
    page_size: u32,
    /// Keep the database here (reused when it already holds the records) instead of a temporary one.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

const ORG: &str = "bench-org";
const WORDS: [&str; 8] = [
    "entrance", "checkout", "shoes", "coffee", "jacket", "browse", "return", "promo",
];

fn record(n: usize) -> Interaction {
    let source = SourceType::ALL[n % 3];
    Interaction {
        id: format!("{n:012}"),
        organization_id: ORG.into(),
        source_type: source,
        session_id: None,
        data: serde_json::json!({"n": n, "page": format!("/p/{}", n % 1000)}),
        summary: format!(
            "{} visitor {} near {} aisle {}",
            source.as_str(),
            WORDS[n % 8],
            WORDS[(n / 8) % 8],
            n % 40
        ),
        confidence: 1.0,
        tags: vec![source.as_str().into(), WORDS[n % 8].into()],
        product_ids: vec![format!("sku-{}", n % 500)],
        // One record a second, newest last.
        timestamp_ms: 1_700_000_000_000 + n as i64 * 1_000,
        created_at_ms: 1_700_000_000_000,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// (p50, p99) in ms.
fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (percentile(&v, 0.5), percentile(&v, 0.99))
}

pub(crate) async fn run(args: ListBenchArgs) -> Result<()> {
    let temp = tempfile::tempdir()?;
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.path().join("db"));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "crow bench list: {} interactions in one organization, pages of {}, {} calls, {cores} cores",
        args.records, args.page_size, args.calls
    );

    // Generate (outside the clock), in transactions of 1,000 records.
    let store = Store::open(&dir).with_context(|| format!("opening {}", dir.display()))?;
    let have = store.summary(ORG)?.total() as usize;
    if have != args.records {
        anyhow::ensure!(
            have == 0,
            "{} holds {have} records; use an empty directory",
            dir.display()
        );
        let start = Instant::now();
        let chunk = 1_000;
        for first in (0..args.records).step_by(chunk) {
            let batch: Vec<Interaction> = (first..(first + chunk).min(args.records))
                .map(record)
                .collect();
            store.insert_interactions(&batch)?;
            if first % 100_000 == 0 && first > 0 {
                eprintln!(
                    "  generated {first} records ({:.0} s)",
                    start.elapsed().as_secs_f64()
                );
            }
        }
        store.sync().await?;
        println!(
            "generated {} records in {:.1} s",
            args.records,
            start.elapsed().as_secs_f64()
        );
    }

    // The floor: a full scan of the organization in sled (the cost a page would have without an index).
    let start = Instant::now();
    let mut scanned = 0usize;
    store.scan_interactions(ORG, None, None, |_| {
        scanned += 1;
        true
    })?;
    let scan_ms = start.elapsed().as_secs_f64() * 1000.0;
    drop(store);

    let mut config = PipelineConfig {
        describer: DescriberKind::Off,
        ..Default::default()
    };
    config.analysis.model = None;
    let crow = Crow::builder()
        .data_dir(&dir)
        .pipeline_config(config)
        .build()
        .await?;
    let (auth, credentials) = super::bench_auth(ORG)?;
    let server = crow::server::spawn(crow.pipeline().clone(), "127.0.0.1:0".parse()?, auth).await?;
    let mut client =
        InteractionServiceClient::new(crow::client::channel(&server.url(), credentials).await?);

    let list = |source: ProtoSource, q: &str, token: String| ListInteractionsRequest {
        organization_id: ORG.into(),
        page_size: args.page_size,
        page_token: token,
        source_type: source as i32,
        q: q.into(),
        ..Default::default()
    };
    // Warm-up.
    for _ in 0..50 {
        client
            .list_interactions(list(ProtoSource::Unspecified, "", String::new()))
            .await?;
        client
            .get_summary(GetSummaryRequest {
                organization_id: ORG.into(),
            })
            .await?;
    }
    let mut results = Vec::new();
    for (name, source, q) in [
        ("list, no filter", ProtoSource::Unspecified, ""),
        ("list, source = social", ProtoSource::Social, ""),
        (
            "list, q = \"shoes checkout\"",
            ProtoSource::Unspecified,
            "shoes checkout",
        ),
    ] {
        // Walk pages from the newest, so later calls page deep with a cursor.
        let mut times = Vec::with_capacity(args.calls);
        let mut token = String::new();
        let mut records = 0usize;
        for _ in 0..args.calls {
            let start = Instant::now();
            let page = client
                .list_interactions(list(source, q, token))
                .await?
                .into_inner();
            times.push(start.elapsed().as_secs_f64() * 1000.0);
            records += page.interactions.len();
            token = page.next_page_token;
        }
        let (p50, p99) = stats(times);
        results.push((name, p50, p99, records));
    }
    let mut times = Vec::with_capacity(args.calls);
    for _ in 0..args.calls {
        let start = Instant::now();
        let s = client
            .get_summary(GetSummaryRequest {
                organization_id: ORG.into(),
            })
            .await?
            .into_inner();
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            s.total as usize == args.records,
            "summary counts {}",
            s.total
        );
    }
    let (summary_p50, summary_p99) = stats(times);

    println!("full scan of the organization in sled: {scanned} records in {scan_ms:.1} ms");
    for (name, p50, p99, records) in &results {
        println!(
            "{name:<30} p50 {p50:.3} ms  p99 {p99:.3} ms  ({records} records over {} pages)  full scan / p99 = {:.0}x",
            args.calls,
            scan_ms / p99
        );
    }
    println!(
        "{:<30} p50 {summary_p50:.3} ms  p99 {summary_p99:.3} ms  full scan / p99 = {:.0}x",
        "summary",
        scan_ms / summary_p99
    );
    let list_p99 = results.iter().map(|r| r.2).fold(0.0, f64::max);
    println!(
        "goal: list p99 < 5 ms -> {list_p99:.3} ms ({}); summary < 1 ms -> p99 {summary_p99:.3} ms ({})",
        if list_p99 < 5.0 { "met" } else { "NOT met" },
        if summary_p99 < 1.0 { "met" } else { "NOT met" }
    );
    server.shutdown().await;
    tokio::time::timeout(Duration::from_secs(10), crow.shutdown())
        .await
        .ok();
    Ok(())
}
