//! `crow bench list`: ListInteractions and GetSummary latency over gRPC with a large organization, against
//! a full scan of that organization in sled; with `--postgres URL`, the same calls with the records in
//! PostgreSQL, side by side.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use crow::proto::interaction_service_client::InteractionServiceClient;
use crow::proto::{GetSummaryRequest, ListInteractionsRequest, SourceType as ProtoSource};
use crow::storage::{Interaction, InteractionRecords, PgOptions, PgStore, SourceType, Store};
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
    /// Also measure with the records in this PostgreSQL database (empty, or holding exactly these
    /// records from an earlier run), e.g. postgres://crow@127.0.0.1:5432/bench.
    #[arg(long)]
    postgres: Option<String>,
}

/// p50 and p99 of each call, in ms.
struct Measured {
    /// (name, p50, p99, records returned).
    lists: Vec<(&'static str, f64, f64, usize)>,
    summary: (f64, f64),
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

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
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

    let sled = measure(Crow::builder().data_dir(&dir), &args).await?;
    println!("full scan of the organization in sled: {scanned} records in {scan_ms:.1} ms");
    report("sled", &sled, &args, scan_ms);

    let Some(url) = &args.postgres else {
        return Ok(());
    };
    let options = PgOptions::new(url.clone());
    let pg = PgStore::connect(&options)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let have = pg.summary(ORG).await?.total() as usize;
    if have != args.records {
        anyhow::ensure!(
            have == 0,
            "{url} holds {have} records of {ORG}; use an empty database"
        );
        let start = Instant::now();
        for first in (0..args.records).step_by(1_000) {
            let batch: Vec<Interaction> = (first..(first + 1_000).min(args.records))
                .map(record)
                .collect();
            pg.insert_interactions(&batch).await?;
        }
        // Fresh statistics, as autovacuum would gather them on a live database.
        pg.analyze().await?;
        println!(
            "generated {} records in PostgreSQL in {:.1} s",
            args.records,
            start.elapsed().as_secs_f64()
        );
    }
    drop(pg);
    let node_dir = tempfile::tempdir()?;
    let postgres = measure(
        Crow::builder().data_dir(node_dir.path()).postgres(options),
        &args,
    )
    .await?;
    report("postgres", &postgres, &args, scan_ms);
    for (s, p) in sled.lists.iter().zip(&postgres.lists) {
        println!("{:<30} postgres p99 / sled p99 = {:.2}", s.0, p.2 / s.2);
    }
    println!(
        "{:<30} postgres p99 / sled p99 = {:.2}",
        "summary",
        postgres.summary.1 / sled.summary.1
    );
    Ok(())
}

/// Serves `builder`'s records and times the calls.
async fn measure(builder: crow::CrowBuilder, args: &ListBenchArgs) -> Result<Measured> {
    let mut config = PipelineConfig {
        describer: DescriberKind::Off,
        ..Default::default()
    };
    config.analysis.model = None;
    // Search by meaning would embed the generated records (~120 a second) on the cores the measured
    // calls need: what is measured is listing and counting, as on a server that is done embedding.
    config.search.enabled = false;
    let crow = builder.pipeline_config(config).build().await?;
    let (auth, credentials) = super::auth::bench_auth(ORG)?;
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
    let mut lists = Vec::new();
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
        lists.push((name, p50, p99, records));
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
    let summary = stats(times);
    server.shutdown().await;
    tokio::time::timeout(Duration::from_secs(10), crow.shutdown())
        .await
        .ok();
    Ok(Measured { lists, summary })
}

fn report(store: &str, m: &Measured, args: &ListBenchArgs, scan_ms: f64) {
    for (name, p50, p99, records) in &m.lists {
        println!(
            "{store:<8} {name:<30} p50 {p50:.3} ms  p99 {p99:.3} ms  ({records} records over {} pages)  full scan / p99 = {:.0}x",
            args.calls,
            scan_ms / p99
        );
    }
    let (summary_p50, summary_p99) = m.summary;
    println!(
        "{store:<8} {:<30} p50 {summary_p50:.3} ms  p99 {summary_p99:.3} ms  full scan / p99 = {:.0}x",
        "summary",
        scan_ms / summary_p99
    );
    let list_p99 = m.lists.iter().map(|r| r.2).fold(0.0, f64::max);
    println!(
        "{store:<8} goal: list p99 < 5 ms -> {list_p99:.3} ms ({}); summary < 1 ms -> p99 {summary_p99:.3} ms ({})",
        if list_p99 < 5.0 { "met" } else { "NOT met" },
        if summary_p99 < 1.0 { "met" } else { "NOT met" }
    );
}
