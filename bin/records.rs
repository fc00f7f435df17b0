//! Client commands of the interaction, catalog and analysis services.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use crow::client::AuthChannel as Channel;
use crow::proto::analysis_service_client::AnalysisServiceClient;
use crow::proto::catalog_service_client::CatalogServiceClient;
use crow::proto::interaction_service_client::InteractionServiceClient;
use crow::proto::{
    self, AnalyzeRequest, CreateInteractionRequest, GetAnalysisRequest, GetInteractionRequest,
    GetSummaryRequest, ListDeadLettersRequest, ListInteractionsRequest, ListProductsRequest,
    RetryDeadLetterRequest, UpsertProductsRequest, WatchPatternsRequest,
};
use serde_json::json;

use crate::ServerArg;

/// A source as the CLI spells it.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Source {
    Web,
    Cctv,
    Social,
}

impl Source {
    fn proto(self) -> i32 {
        (match self {
            Source::Web => proto::SourceType::Web,
            Source::Cctv => proto::SourceType::Cctv,
            Source::Social => proto::SourceType::Social,
        }) as i32
    }
}

fn source_of(s: Option<Source>) -> i32 {
    s.map_or(proto::SourceType::Unspecified as i32, Source::proto)
}

#[derive(Subcommand)]
pub(crate) enum InteractionsCommand {
    /// Submit a web, social or CCTV event; prints its id once it is durably accepted.
    Create(CreateArgs),
    /// Show one interaction, or where it stands if it is not processed yet.
    Get(GetArgs),
    /// List interactions, newest first, optionally filtered.
    List(ListArgs),
    /// Search interactions by meaning, best first: `crow interactions search "customers who hesitated
    /// at the shoe shelf" --org acme`. The list filters narrow the ranked set.
    Search(SearchArgs),
}

#[derive(Args)]
pub(crate) struct SearchArgs {
    /// What to look for, in words.
    meaning: String,
    #[command(flatten)]
    list: ListArgs,
}

#[derive(Args)]
pub(crate) struct CreateArgs {
    /// Organization id.
    #[arg(long)]
    org: String,
    /// Where the event comes from.
    #[arg(long, value_enum)]
    source: Source,
    /// The event's details as a JSON object, e.g. '{"event":"add_to_cart","product_id":"sku-1"}'.
    #[arg(long, default_value = "{}")]
    data: String,
    /// Read the JSON object from a file instead.
    #[arg(long, conflicts_with = "data")]
    data_file: Option<PathBuf>,
    /// Summary (generated from the data when omitted).
    #[arg(long)]
    summary: Option<String>,
    /// When it happened, ms since the Unix epoch [default: now].
    #[arg(long)]
    timestamp_ms: Option<i64>,
    /// Catalog product id the event is about (repeatable).
    #[arg(long = "product")]
    products: Vec<String>,
    /// CCTV session it belongs to.
    #[arg(long)]
    session: Option<String>,
    /// Resending with the same key stores one record.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Wait until the record is processed and print it.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    server: ServerArg,
}

#[derive(Args)]
pub(crate) struct GetArgs {
    /// Interaction id.
    id: String,
    /// Organization id.
    #[arg(long)]
    org: String,
    #[command(flatten)]
    server: ServerArg,
}

#[derive(Args)]
pub(crate) struct ListArgs {
    /// Organization id.
    #[arg(long)]
    org: String,
    /// Only this source.
    #[arg(long, value_enum)]
    source: Option<Source>,
    /// Only records containing every word of this text (summary, tags, products, data).
    #[arg(long, short)]
    q: Option<String>,
    /// Only records at or after this time, ms since the Unix epoch.
    #[arg(long)]
    from_ms: Option<i64>,
    /// Only records before this time, ms since the Unix epoch.
    #[arg(long)]
    to_ms: Option<i64>,
    /// Records per page (1-500).
    #[arg(long, default_value_t = 50)]
    page_size: u32,
    /// Cursor from a previous page.
    #[arg(long)]
    page_token: Option<String>,
    /// Follow cursors and print every record.
    #[arg(long)]
    all: bool,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArg,
}

#[derive(Args)]
pub(crate) struct SummaryArgs {
    /// Organization id.
    #[arg(long)]
    org: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArg,
}

#[derive(Subcommand)]
pub(crate) enum DeadLettersCommand {
    /// List dead letters, oldest first.
    List {
        /// Organization id.
        #[arg(long)]
        org: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Put a dead letter back into the outbox.
    Retry {
        /// Interaction id.
        id: String,
        /// Organization id.
        #[arg(long)]
        org: String,
        #[command(flatten)]
        server: ServerArg,
    },
}

#[derive(Subcommand)]
pub(crate) enum ProductsCommand {
    /// Insert or replace products from a JSON file: an array of {"id", "name", "category",
    /// "description", "tags"} (or an object with a "products" array).
    Upsert {
        /// The JSON file.
        file: PathBuf,
        /// Organization id.
        #[arg(long)]
        org: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// List products by id.
    List {
        /// Organization id.
        #[arg(long)]
        org: String,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Remove a product.
    Delete {
        /// Product id.
        id: String,
        /// Organization id.
        #[arg(long)]
        org: String,
        #[command(flatten)]
        server: ServerArg,
    },
}

#[derive(Args)]
pub(crate) struct AnalyzeArgs {
    /// Organization id.
    #[arg(long)]
    org: String,
    #[command(flatten)]
    window: RecordWindow,
    /// Queue it and print its id without waiting (fetch it later with --id).
    #[arg(long)]
    no_wait: bool,
    /// Fetch an earlier analysis instead of starting one.
    #[arg(long, conflicts_with_all = ["from_ms", "to_ms", "source", "no_wait"])]
    id: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArg,
}

/// The records an analysis or a question covers.
#[derive(Args)]
pub(crate) struct RecordWindow {
    /// Only records at or after this time, ms since the Unix epoch [default: the first record].
    #[arg(long)]
    from_ms: Option<i64>,
    /// Only records before this time, ms since the Unix epoch [default: now].
    #[arg(long)]
    to_ms: Option<i64>,
    /// Only this source.
    #[arg(long, value_enum)]
    source: Option<Source>,
}

#[derive(Args)]
pub(crate) struct AskArgs {
    /// The question, in words.
    question: String,
    /// Organization id.
    #[arg(long)]
    org: String,
    #[command(flatten)]
    window: RecordWindow,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArg,
}

#[derive(Args)]
pub(crate) struct WatchArgs {
    /// Organization id.
    #[arg(long)]
    org: String,
    /// Only this camera.
    #[arg(long)]
    camera: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArg,
}

/// A channel to the server presenting `CROW_TOKEN` (and `CROW_GATEWAY_KEY`), over TLS for `https://`.
pub(crate) async fn channel(server: &ServerArg) -> Result<Channel> {
    Ok(crow::client::channel(&server.server, server.credentials()?).await?)
}

async fn interaction_client(server: &ServerArg) -> Result<InteractionServiceClient<Channel>> {
    Ok(InteractionServiceClient::new(channel(server).await?))
}

fn source_name(value: i32) -> &'static str {
    match proto::SourceType::try_from(value) {
        Ok(proto::SourceType::Web) => "web",
        Ok(proto::SourceType::Cctv) => "cctv",
        Ok(proto::SourceType::Social) => "social",
        _ => "unspecified",
    }
}

/// A UTC timestamp from ms since the epoch, without a date crate.
pub(crate) fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

fn interaction_json(i: &proto::Interaction) -> serde_json::Value {
    let data: serde_json::Value =
        serde_json::from_str(&i.data_json).unwrap_or(serde_json::Value::Null);
    json!({
        "id": i.id, "organization_id": i.organization_id, "source_type": source_name(i.source_type),
        "session_id": i.session_id, "summary": i.summary, "confidence": i.confidence,
        "tags": i.tags, "product_ids": i.product_ids, "timestamp_ms": i.timestamp_ms,
        "created_at_ms": i.created_at_ms, "data": data,
    })
}

fn print_interaction(i: &proto::Interaction) {
    println!(
        "{}  {:<6} conf {:.2}  [{}]{}\n    {}\n    id {}  session {}",
        format_ms(i.timestamp_ms),
        source_name(i.source_type),
        i.confidence,
        i.tags.join(", "),
        if i.product_ids.is_empty() {
            String::new()
        } else {
            format!("  products {}", i.product_ids.join(", "))
        },
        i.summary,
        i.id,
        if i.session_id.is_empty() {
            "-"
        } else {
            &i.session_id
        },
    );
}

pub(crate) async fn interactions(cmd: InteractionsCommand) -> Result<()> {
    match cmd {
        InteractionsCommand::Create(args) => create(args).await,
        InteractionsCommand::Get(args) => {
            let mut client = interaction_client(&args.server).await?;
            print_state(&mut client, &args.org, &args.id).await
        }
        InteractionsCommand::List(args) => list(args, None).await,
        InteractionsCommand::Search(args) => list(args.list, Some(args.meaning)).await,
    }
}

/// Where an interaction stands, as a line to show while it is pending.
enum State {
    /// Stored or dead: printed, nothing more to wait for.
    Final,
    /// Accepted, not processed yet.
    Pending(String),
}

/// Fetches where an interaction stands; prints it if it is final (stored or dead).
async fn fetch_state(
    client: &mut InteractionServiceClient<Channel>,
    org: &str,
    id: &str,
) -> Result<State> {
    let r = client
        .get_interaction(GetInteractionRequest {
            organization_id: org.to_owned(),
            id: id.to_owned(),
        })
        .await?
        .into_inner();
    match (proto::InteractionState::try_from(r.state), &r.interaction) {
        (Ok(proto::InteractionState::Stored), Some(i)) => {
            print_interaction(i);
            Ok(State::Final)
        }
        (Ok(proto::InteractionState::DeadLetter), _) => {
            println!(
                "{id}: dead letter after {} attempts: {}",
                r.attempts, r.last_error
            );
            Ok(State::Final)
        }
        _ => Ok(State::Pending(format!(
            "{id}: accepted, waiting to be processed ({} failed attempts{})",
            r.attempts,
            if r.last_error.is_empty() {
                String::new()
            } else {
                format!(", last: {}", r.last_error)
            }
        ))),
    }
}

/// Prints where an interaction stands, once.
async fn print_state(
    client: &mut InteractionServiceClient<Channel>,
    org: &str,
    id: &str,
) -> Result<()> {
    if let State::Pending(line) = fetch_state(client, org, id).await? {
        println!("{line}");
    }
    Ok(())
}

/// Polls until the interaction is stored or dead, showing one spinner line with its state on a
/// terminal (nothing otherwise), then prints the outcome.
async fn wait_for_state(
    client: &mut InteractionServiceClient<Channel>,
    org: &str,
    id: &str,
) -> Result<()> {
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.enable_steady_tick(Duration::from_millis(100));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        match fetch_state(client, org, id).await {
            Ok(State::Pending(line)) => spinner.set_message(line),
            done => {
                spinner.finish_and_clear();
                return done.map(|_| ());
            }
        }
        if tokio::time::Instant::now() > deadline {
            spinner.finish_and_clear();
            bail!("not processed after 120 s (see outbox_batch_timeout_ms)");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn create(args: CreateArgs) -> Result<()> {
    let data = match &args.data_file {
        Some(f) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        None => args.data.clone(),
    };
    let mut client = interaction_client(&args.server).await?;
    let r = client
        .create_interaction(CreateInteractionRequest {
            organization_id: args.org.clone(),
            source_type: args.source.proto(),
            data_json: data,
            session_id: args.session.unwrap_or_default(),
            summary: args.summary.unwrap_or_default(),
            timestamp_ms: args.timestamp_ms.unwrap_or(0),
            product_ids: args.products,
            idempotency_key: args.idempotency_key.unwrap_or_default(),
        })
        .await?
        .into_inner();
    println!(
        "{}{}",
        r.id,
        if r.duplicate {
            "  (duplicate idempotency key: already accepted)"
        } else {
            ""
        }
    );
    if args.wait {
        wait_for_state(&mut client, &args.org, &r.id).await?;
    }
    Ok(())
}

async fn list(args: ListArgs, meaning: Option<String>) -> Result<()> {
    if args.page_size == 0 || args.page_size > 500 {
        bail!("--page-size must be between 1 and 500");
    }
    let mut client = interaction_client(&args.server).await?;
    let mut token = args.page_token.clone().unwrap_or_default();
    let mut printed = 0usize;
    loop {
        let page = client
            .list_interactions(ListInteractionsRequest {
                organization_id: args.org.clone(),
                page_size: args.page_size,
                page_token: token.clone(),
                source_type: source_of(args.source),
                q: args.q.clone().unwrap_or_default(),
                from_ms: args.from_ms.unwrap_or(0),
                to_ms: args.to_ms.unwrap_or(0),
                meaning: meaning.clone().unwrap_or_default(),
            })
            .await?
            .into_inner();
        for (n, i) in page.interactions.iter().enumerate() {
            printed += 1;
            let matched = page.matches.get(n).filter(|m| m.interaction_id == i.id);
            if args.json {
                let mut record = interaction_json(i);
                if let Some(m) = matched {
                    record["match"] = json!({
                        "score": m.score, "similarity": m.similarity, "matched_text": m.matched_text,
                    });
                }
                println!("{record}");
            } else {
                print_interaction(i);
                if let Some(m) = matched {
                    println!(
                        "    score {:.3} (similarity {:.3}): \"{}\"",
                        m.score, m.similarity, m.matched_text
                    );
                }
            }
        }
        token = page.next_page_token;
        if !args.all || token.is_empty() {
            break;
        }
    }
    if !args.json {
        if printed == 0 && token.is_empty() {
            println!("no matching interactions for organization {}", args.org);
        } else if !token.is_empty() {
            println!("more: --page-token {token}");
        }
    }
    Ok(())
}

pub(crate) async fn summary(args: SummaryArgs) -> Result<()> {
    let mut client = interaction_client(&args.server).await?;
    let s = client
        .get_summary(GetSummaryRequest {
            organization_id: args.org.clone(),
        })
        .await?
        .into_inner();
    if args.json {
        println!(
            "{}",
            json!({"web": s.web, "cctv": s.cctv, "social": s.social, "total": s.total})
        );
    } else {
        println!(
            "organization {}: {} interactions (web {}, cctv {}, social {})",
            args.org, s.total, s.web, s.cctv, s.social
        );
    }
    Ok(())
}

pub(crate) async fn dead_letters(cmd: DeadLettersCommand) -> Result<()> {
    match cmd {
        DeadLettersCommand::List { org, server } => {
            let mut client = interaction_client(&server).await?;
            let mut token = String::new();
            let mut n = 0;
            loop {
                let page = client
                    .list_dead_letters(ListDeadLettersRequest {
                        organization_id: org.clone(),
                        page_size: 500,
                        page_token: token,
                    })
                    .await?
                    .into_inner();
                for d in &page.dead_letters {
                    n += 1;
                    println!(
                        "{}  {} {}  attempts {}  dead since {}\n    error: {}\n    data: {}",
                        d.id,
                        source_name(d.source_type),
                        format_ms(d.timestamp_ms),
                        d.attempts,
                        format_ms(d.dead_at_ms),
                        d.last_error,
                        d.data_json
                    );
                }
                token = page.next_page_token;
                if token.is_empty() {
                    break;
                }
            }
            if n == 0 {
                println!("no dead letters for organization {org}");
            }
            Ok(())
        }
        DeadLettersCommand::Retry { id, org, server } => {
            let mut client = interaction_client(&server).await?;
            let r = client
                .retry_dead_letter(RetryDeadLetterRequest {
                    organization_id: org,
                    id,
                })
                .await?
                .into_inner();
            println!("{} is back in the outbox", r.id);
            Ok(())
        }
    }
}

/// A product as catalog files write it (`crow products upsert`, the benchmarks' labelled sets).
#[derive(serde::Deserialize)]
pub(crate) struct ProductFile {
    pub(crate) id: String,
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) category: String,
    #[serde(default)]
    pub(crate) description: String,
    #[serde(default)]
    pub(crate) tags: Vec<String>,
    #[serde(default)]
    pub(crate) aliases: Vec<String>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum ProductsFile {
    List(Vec<ProductFile>),
    Wrapped { products: Vec<ProductFile> },
}

pub(crate) async fn products(cmd: ProductsCommand) -> Result<()> {
    match cmd {
        ProductsCommand::Upsert { file, org, server } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let parsed: ProductsFile = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{}: expected a JSON array of products (id, name, category, description, tags, aliases)",
                    file.display()
                )
            })?;
            let list = match parsed {
                ProductsFile::List(l) | ProductsFile::Wrapped { products: l } => l,
            };
            let mut client = CatalogServiceClient::new(channel(&server).await?);
            let mut total = 0;
            for chunk in list.chunks(crow::actors::MAX_UPSERT_PRODUCTS) {
                let r = client
                    .upsert_products(UpsertProductsRequest {
                        organization_id: org.clone(),
                        products: chunk
                            .iter()
                            .map(|p| proto::Product {
                                id: p.id.clone(),
                                organization_id: org.clone(),
                                name: p.name.clone(),
                                category: p.category.clone(),
                                description: p.description.clone(),
                                tags: p.tags.clone(),
                                aliases: p.aliases.clone(),
                                updated_at_ms: 0,
                            })
                            .collect(),
                    })
                    .await?
                    .into_inner();
                total += r.upserted;
            }
            println!("{total} products upserted for organization {org}");
            Ok(())
        }
        ProductsCommand::List { org, json, server } => {
            let mut client = CatalogServiceClient::new(channel(&server).await?);
            let mut token = String::new();
            let mut n = 0;
            loop {
                let page = client
                    .list_products(ListProductsRequest {
                        organization_id: org.clone(),
                        page_size: 500,
                        page_token: token,
                    })
                    .await?
                    .into_inner();
                for p in &page.products {
                    n += 1;
                    if json {
                        println!(
                            "{}",
                            json!({"id": p.id, "name": p.name, "category": p.category,
                                   "description": p.description, "tags": p.tags,
                                   "updated_at_ms": p.updated_at_ms})
                        );
                    } else {
                        println!(
                            "{:<20} {}  ({})  [{}]",
                            p.id,
                            p.name,
                            p.category,
                            p.tags.join(", ")
                        );
                    }
                }
                token = page.next_page_token;
                if token.is_empty() {
                    break;
                }
            }
            if n == 0 && !json {
                println!("no products for organization {org}");
            }
            Ok(())
        }
        ProductsCommand::Delete { id, org, server } => {
            let mut client = CatalogServiceClient::new(channel(&server).await?);
            let r = client
                .delete_product(proto::DeleteProductRequest {
                    organization_id: org,
                    product_id: id.clone(),
                })
                .await?
                .into_inner();
            println!(
                "{id}: {}",
                if r.deleted {
                    "deleted"
                } else {
                    "no such product"
                }
            );
            Ok(())
        }
    }
}

fn print_analysis(a: &proto::Analysis, as_json: bool) {
    let status = proto::AnalysisStatus::try_from(a.status)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("ANALYSIS_STATUS_")
                .to_lowercase()
        })
        .unwrap_or_default();
    let counts = a.counts.unwrap_or_default();
    let labels = |v: &[proto::LabelCount]| {
        v.iter()
            .map(|l| format!("{} x{}", l.label, l.count))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if as_json {
        println!(
            "{}",
            json!({
                "id": a.id, "status": status, "summary": a.summary, "insights": a.insights,
                "anomalies": a.anomalies, "recommendations": a.recommendations,
                "records": a.records, "web": counts.web, "cctv": counts.cctv, "social": counts.social,
                "top_tags": a.top_tags.iter().map(|l| (l.label.clone(), l.count)).collect::<Vec<_>>(),
                "top_products": a.top_products.iter().map(|l| (l.label.clone(), l.count)).collect::<Vec<_>>(),
                "records_used": a.records_used, "truncated": a.truncated, "error": a.error,
                "created_at_ms": a.created_at_ms, "started_at_ms": a.started_at_ms,
                "finished_at_ms": a.finished_at_ms,
            })
        );
        return;
    }
    println!("analysis {} ({status})", a.id);
    println!(
        "  {} records: web {}, cctv {}, social {}{}",
        a.records,
        counts.web,
        counts.cctv,
        counts.social,
        if a.truncated {
            " (scan limit reached)"
        } else {
            ""
        }
    );
    if !a.top_tags.is_empty() {
        println!("  top tags: {}", labels(&a.top_tags));
    }
    if !a.top_products.is_empty() {
        println!("  top products: {}", labels(&a.top_products));
    }
    if !a.error.is_empty() {
        println!("  error: {}", a.error);
    }
    if !a.summary.is_empty() {
        println!(
            "  summary ({} newest records read by the model): {}",
            a.records_used, a.summary
        );
    }
    for (title, list) in [
        ("insights", &a.insights),
        ("anomalies", &a.anomalies),
        ("recommendations", &a.recommendations),
    ] {
        if !list.is_empty() {
            println!("  {title}:");
            for item in list {
                println!("    - {item}");
            }
        }
    }
}

pub(crate) async fn ask(args: AskArgs) -> Result<()> {
    let mut client = AnalysisServiceClient::new(channel(&args.server).await?);
    let a = client
        .ask(proto::AskRequest {
            organization_id: args.org.clone(),
            question: args.question.clone(),
            from_ms: args.window.from_ms.unwrap_or(0),
            to_ms: args.window.to_ms.unwrap_or(0),
            source_type: source_of(args.window.source),
        })
        .await?
        .into_inner();
    if args.json {
        let citations: Vec<serde_json::Value> = a
            .citations
            .iter()
            .map(|c| {
                json!({
                    "interaction_id": c.interaction_id, "summary": c.summary,
                    "timestamp_ms": c.timestamp_ms, "source_type": source_name(c.source_type),
                    "session_id": c.session_id, "frame_indexes": c.frame_indexes,
                })
            })
            .collect();
        let statements: Vec<serde_json::Value> = a
            .statements
            .iter()
            .map(|s| json!({"text": s.text, "interaction_ids": s.interaction_ids, "support": s.support}))
            .collect();
        println!(
            "{}",
            json!({
                "found": a.found, "answer": a.answer, "statements": statements,
                "citations": citations, "statements_refused": a.statements_refused, "model": a.model,
                "records_considered": a.records.len(),
            })
        );
        return Ok(());
    }
    println!("{}", a.answer);
    for (n, c) in a.citations.iter().enumerate() {
        let evidence = if c.frame_indexes.is_empty() {
            String::new()
        } else {
            let frames: Vec<String> = c.frame_indexes.iter().map(u64::to_string).collect();
            format!(
                "\n      keyframes: session {} frames {}",
                c.session_id,
                frames.join(", ")
            )
        };
        println!(
            "  [{}] {}  {:<6} {}\n      {}{}",
            n + 1,
            format_ms(c.timestamp_ms),
            source_name(c.source_type),
            c.interaction_id,
            c.summary,
            evidence
        );
    }
    println!(
        "({} records considered, {} statements refused, model {})",
        a.records.len(),
        a.statements_refused,
        a.model
    );
    Ok(())
}

pub(crate) async fn analyze(args: AnalyzeArgs) -> Result<()> {
    let mut client = AnalysisServiceClient::new(channel(&args.server).await?);
    let a = match &args.id {
        Some(id) => client
            .get_analysis(GetAnalysisRequest {
                organization_id: args.org.clone(),
                analysis_id: id.clone(),
            })
            .await?
            .into_inner(),
        None => client
            .analyze(AnalyzeRequest {
                organization_id: args.org.clone(),
                from_ms: args.window.from_ms.unwrap_or(0),
                to_ms: args.window.to_ms.unwrap_or(0),
                source_type: source_of(args.window.source),
                wait: !args.no_wait,
            })
            .await?
            .into_inner(),
    };
    print_analysis(&a, args.json);
    Ok(())
}

pub(crate) async fn watch(args: WatchArgs) -> Result<()> {
    let mut client = AnalysisServiceClient::new(channel(&args.server).await?);
    let mut stream = client
        .watch_patterns(WatchPatternsRequest {
            organization_id: args.org.clone(),
            camera_id: args.camera.unwrap_or_default(),
        })
        .await?
        .into_inner();
    eprintln!("watching pattern events of {} (Ctrl-C to stop)", args.org);
    while let Some(e) = stream.message().await? {
        if args.json {
            println!(
                "{}",
                json!({
                    "session_id": e.session_id, "camera_id": e.camera_id, "batch_index": e.batch_index,
                    "frames": [e.first_frame_index, e.last_frame_index], "interaction_id": e.interaction_id,
                    "summary": e.summary, "tags": e.tags, "timestamp_ms": e.timestamp_ms,
                    "products": e.products.iter().map(|p| json!({
                        "product_id": p.product_id, "confidence": p.confidence,
                        "evidence_frames": p.evidence_frames})).collect::<Vec<_>>(),
                })
            );
        } else {
            println!(
                "{}  camera {} batch {} frames {}-{}  [{}]\n    {}",
                format_ms(e.timestamp_ms),
                e.camera_id,
                e.batch_index,
                e.first_frame_index,
                e.last_frame_index,
                e.tags.join(", "),
                e.summary
            );
            for p in &e.products {
                println!(
                    "    product {} (confidence {:.2}, frames {:?})",
                    p.product_id, p.confidence, p.evidence_frames
                );
            }
        }
    }
    Ok(())
}
