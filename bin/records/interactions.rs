//! `crow interactions` (create, get, list, search) and `crow summary`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use crow::client::AuthChannel as Channel;
use crow::proto::interaction_service_client::InteractionServiceClient;
use crow::proto::{
    self, CreateInteractionRequest, GetInteractionRequest, GetSummaryRequest,
    ListInteractionsRequest,
};
use serde_json::json;

use crate::ServerArg;

use super::common::*;

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
pub(crate) enum State {
    /// Stored or dead: printed, nothing more to wait for.
    Final,
    /// Accepted, not processed yet.
    Pending(String),
}

/// Fetches where an interaction stands; prints it if it is final (stored or dead).
pub(crate) async fn fetch_state(
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
pub(crate) async fn print_state(
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
pub(crate) async fn wait_for_state(
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

pub(crate) async fn create(args: CreateArgs) -> Result<()> {
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

pub(crate) async fn list(args: ListArgs, meaning: Option<String>) -> Result<()> {
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
