//! `crow analyze` and `crow ask`: analyses of an organization's records, and questions answered from them.

use anyhow::Result;
use clap::Args;
use crow::proto::analysis_service_client::AnalysisServiceClient;
use crow::proto::{self, AnalyzeRequest, GetAnalysisRequest};
use serde_json::json;

use crate::ServerArg;

use super::common::*;

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

pub(crate) fn print_analysis(a: &proto::Analysis, as_json: bool) {
    let status = proto::AnalysisStatus::try_from(a.status)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("ANALYSIS_STATUS_")
                .to_lowercase()
        })
        .unwrap_or_default();
    let counts = a.counts.unwrap_or_default();
    let phrasing = match proto::AnalysisPhrasing::try_from(a.phrasing) {
        Ok(proto::AnalysisPhrasing::Model) => "the text model, checked against the facts",
        Ok(proto::AnalysisPhrasing::Template) => "crow's templates",
        _ => "",
    };
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
                "finished_at_ms": a.finished_at_ms, "phrasing": phrasing,
                "phrasing_refused": a.phrasing_refused,
                "statements": a.statements.iter().map(|s| json!({"text": s.text, "facts": s.facts})).collect::<Vec<_>>(),
                "facts": a.facts.iter().map(|f| json!({
                    "number": f.number, "kind": fact_kind(f.kind), "text": f.text,
                    "interaction_ids": f.interaction_ids, "metrics": f.metrics, "test": f.test,
                })).collect::<Vec<_>>(),
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
        println!("  summary (worded by {phrasing}): {}", a.summary);
    }
    if !a.phrasing_refused.is_empty() {
        println!(
            "  the text model's wording was refused: {}",
            a.phrasing_refused
        );
    }
    if !a.facts.is_empty() {
        println!("  facts:");
        for f in &a.facts {
            let cites = if f.interaction_ids.is_empty() {
                String::new()
            } else {
                format!(" (records {})", f.interaction_ids.join(", "))
            };
            println!(
                "    [{}] {}: {}{cites}",
                f.number,
                fact_kind(f.kind),
                f.text
            );
        }
    }
}

/// A fact's kind as the CLI prints it.
fn fact_kind(kind: i32) -> &'static str {
    match proto::FactKind::try_from(kind) {
        Ok(proto::FactKind::Count) => "count",
        Ok(proto::FactKind::Metric) => "metric",
        Ok(proto::FactKind::Anomaly) => "anomaly",
        Ok(proto::FactKind::Theme) => "theme",
        Ok(proto::FactKind::Recommendation) => "recommendation",
        _ => "fact",
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
