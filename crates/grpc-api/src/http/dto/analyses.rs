//! Analysis shapes: the analyze and ask bodies, an answer with its citations, and an analysis.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::interactions::{MeaningMatch, SourceType, Summary};
use crate::http::time::{format_ms, format_optional_ms, Instant};
use crate::proto;

/// Body of `POST .../analyze`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnalyzeRequest {
    /// Window start (inclusive); absent: from the first record.
    #[serde(default)]
    pub from: Option<Instant>,
    /// Window end (exclusive); absent: up to now.
    #[serde(default)]
    pub to: Option<Instant>,
    /// Only this source.
    #[serde(default)]
    pub source_type: Option<SourceType>,
    /// Wait for the result (default) or answer `202` with the queued analysis at once.
    #[serde(default)]
    pub wait: Option<bool>,
}

/// Body of `POST .../ask`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AskRequest {
    /// The question, in words.
    pub question: String,
    /// Only records at or after this time.
    #[serde(default)]
    pub from: Option<Instant>,
    /// Only records before this time.
    #[serde(default)]
    pub to: Option<Instant>,
    /// Only this source.
    #[serde(default)]
    pub source_type: Option<SourceType>,
}

/// One statement of an answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnswerStatement {
    pub text: String,
    /// The records it cites.
    pub interaction_ids: Vec<String>,
    /// Similarity of the statement to the closest text of the records it cites.
    pub support: f32,
}

/// A record an answer cites, with its evidence (CCTV: session and frames whose keyframes show it).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Citation {
    pub interaction_id: String,
    pub summary: String,
    pub timestamp: String,
    pub source_type: Option<SourceType>,
    pub session_id: Option<String>,
    pub frame_indexes: Vec<u64>,
}

/// The answer to a question, every statement citing its records.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    /// False when no record supports an answer; `answer` says so.
    pub found: bool,
    /// The statements with `[n]` markers into `citations`.
    pub answer: String,
    pub statements: Vec<AnswerStatement>,
    pub citations: Vec<Citation>,
    /// The records retrieved for the question, best first.
    pub records: Vec<MeaningMatch>,
    /// Statements of the model that crow refused.
    pub statements_refused: u32,
    pub model: String,
}

impl From<proto::AskResponse> for Answer {
    fn from(a: proto::AskResponse) -> Self {
        Answer {
            found: a.found,
            answer: a.answer,
            statements: a
                .statements
                .into_iter()
                .map(|s| AnswerStatement {
                    text: s.text,
                    interaction_ids: s.interaction_ids,
                    support: s.support,
                })
                .collect(),
            citations: a
                .citations
                .into_iter()
                .map(|c| Citation {
                    interaction_id: c.interaction_id,
                    summary: c.summary,
                    timestamp: format_ms(c.timestamp_ms),
                    source_type: SourceType::from_proto(c.source_type),
                    session_id: (!c.session_id.is_empty()).then_some(c.session_id),
                    frame_indexes: c.frame_indexes,
                })
                .collect(),
            records: a.records.into_iter().map(Into::into).collect(),
            statements_refused: a.statements_refused,
            model: a.model,
        }
    }
}

/// Where an analysis stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AnalysisStatus {
    Queued,
    Running,
    Done,
    Failed,
}

/// A count of one label.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LabelCount {
    pub label: String,
    pub count: u64,
}

/// An AI analysis of an organization's interactions.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    pub id: String,
    pub organization_id: String,
    pub status: AnalysisStatus,
    #[schema(format = DateTime)]
    pub from: Option<String>,
    #[schema(format = DateTime)]
    pub to: Option<String>,
    pub source_type: Option<SourceType>,
    /// The analysis (when done): a few sentences stating its main facts (`statements`).
    pub summary: String,
    pub insights: Vec<String>,
    pub anomalies: Vec<String>,
    pub recommendations: Vec<String>,
    /// Exact figures over the window, computed without the model.
    pub records: u64,
    pub counts: Option<Summary>,
    pub top_tags: Vec<LabelCount>,
    pub top_products: Vec<LabelCount>,
    /// The window held more records than an analysis scans.
    pub truncated: bool,
    /// Records the facts cite.
    pub records_used: u64,
    /// Every fact crow computed, numbered, with its sources.
    pub facts: Vec<AnalysisFact>,
    /// The summary's sentences and the facts each states.
    pub statements: Vec<AnalysisStatement>,
    /// Who worded the summary (when done).
    pub phrasing: Option<Phrasing>,
    /// Why the text model's wording was refused.
    pub phrasing_refused: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
}

/// What kind of fact an analysis states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FactKind {
    /// Record counts.
    Count,
    /// A store metric.
    Metric,
    /// A deviation from the organization's own history (`test` says which).
    Anomaly,
    /// A theme of web or social events, quoting the newest.
    Theme,
    /// An action that follows from other facts.
    Recommendation,
}

/// Who worded an analysis's summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phrasing {
    /// crow's templates: no text model, or its wording failed the check against the facts.
    Template,
    /// The text model, every number and claim checked against the facts each statement cites.
    Model,
}

/// A fact of an analysis, computed by crow.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisFact {
    /// 1-based; statements cite it.
    pub number: u32,
    pub kind: FactKind,
    pub text: String,
    /// Records it comes from.
    pub interaction_ids: Vec<String>,
    /// The store metrics query (of `GET .../metrics`) that gives its figures.
    pub metrics: Option<String>,
    /// For an anomaly: the test that found it.
    pub test: Option<String>,
}

/// A sentence of an analysis's summary and the numbers of the facts it states.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisStatement {
    pub text: String,
    pub facts: Vec<u32>,
}

fn labels(l: Vec<proto::LabelCount>) -> Vec<LabelCount> {
    l.into_iter()
        .map(|l| LabelCount {
            label: l.label,
            count: l.count,
        })
        .collect()
}

impl From<proto::Analysis> for Analysis {
    fn from(a: proto::Analysis) -> Analysis {
        let status = match proto::AnalysisStatus::try_from(a.status) {
            Ok(proto::AnalysisStatus::Running) => AnalysisStatus::Running,
            Ok(proto::AnalysisStatus::Done) => AnalysisStatus::Done,
            Ok(proto::AnalysisStatus::Failed) => AnalysisStatus::Failed,
            _ => AnalysisStatus::Queued,
        };
        let organization_id = a.organization_id;
        Analysis {
            id: a.id,
            counts: a.counts.map(|c| Summary::new(organization_id.clone(), c)),
            organization_id,
            status,
            from: format_optional_ms(a.from_ms),
            to: format_optional_ms(a.to_ms),
            source_type: SourceType::from_proto(a.source_type),
            summary: a.summary,
            insights: a.insights,
            anomalies: a.anomalies,
            recommendations: a.recommendations,
            records: a.records,
            top_tags: labels(a.top_tags),
            top_products: labels(a.top_products),
            truncated: a.truncated,
            records_used: a.records_used,
            facts: a
                .facts
                .into_iter()
                .map(|f| AnalysisFact {
                    number: f.number,
                    kind: match proto::FactKind::try_from(f.kind) {
                        Ok(proto::FactKind::Metric) => FactKind::Metric,
                        Ok(proto::FactKind::Anomaly) => FactKind::Anomaly,
                        Ok(proto::FactKind::Theme) => FactKind::Theme,
                        Ok(proto::FactKind::Recommendation) => FactKind::Recommendation,
                        _ => FactKind::Count,
                    },
                    text: f.text,
                    interaction_ids: f.interaction_ids,
                    metrics: (!f.metrics.is_empty()).then_some(f.metrics),
                    test: (!f.test.is_empty()).then_some(f.test),
                })
                .collect(),
            statements: a
                .statements
                .into_iter()
                .map(|s| AnalysisStatement {
                    text: s.text,
                    facts: s.facts,
                })
                .collect(),
            phrasing: match proto::AnalysisPhrasing::try_from(a.phrasing) {
                Ok(proto::AnalysisPhrasing::Template) => Some(Phrasing::Template),
                Ok(proto::AnalysisPhrasing::Model) => Some(Phrasing::Model),
                _ => None,
            },
            phrasing_refused: (!a.phrasing_refused.is_empty()).then_some(a.phrasing_refused),
            error: (!a.error.is_empty()).then_some(a.error),
            created_at: format_ms(a.created_at_ms),
            started_at: format_optional_ms(a.started_at_ms),
            finished_at: format_optional_ms(a.finished_at_ms),
        }
    }
}
