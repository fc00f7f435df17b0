//! Interaction shapes: the record, its source, list query and page, matches by meaning, summary
//! counts, the create body and its acceptance, and where an accepted interaction stands.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::http::time::{format_ms, Instant};
use crate::proto;

/// Where an interaction came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceType {
    /// A web event (page view, add to cart, ...).
    Web,
    /// A CCTV batch record.
    Cctv,
    /// A social media event.
    Social,
}

impl SourceType {
    pub(super) fn from_proto(value: i32) -> Option<SourceType> {
        match proto::SourceType::try_from(value) {
            Ok(proto::SourceType::Web) => Some(SourceType::Web),
            Ok(proto::SourceType::Cctv) => Some(SourceType::Cctv),
            Ok(proto::SourceType::Social) => Some(SourceType::Social),
            _ => None,
        }
    }

    /// The protocol value.
    pub fn proto(self) -> i32 {
        (match self {
            SourceType::Web => proto::SourceType::Web,
            SourceType::Cctv => proto::SourceType::Cctv,
            SourceType::Social => proto::SourceType::Social,
        }) as i32
    }
}

/// `UNSPECIFIED` (0) for none.
pub fn source_proto(source: Option<SourceType>) -> i32 {
    source.map_or(proto::SourceType::Unspecified as i32, SourceType::proto)
}

/// One customer-interaction record.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Interaction {
    /// Server-assigned id (UUID).
    pub id: String,
    pub organization_id: String,
    pub source_type: Option<SourceType>,
    /// The CCTV session the record came from; null for web and social records.
    pub session_id: Option<String>,
    /// Source-specific details (for CCTV: frame range, descriptions, events, products and their
    /// evidence).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// One-paragraph human-readable summary.
    pub summary: String,
    /// 0..=1, computed from the evidence.
    pub confidence: f32,
    /// Short lowercase labels.
    pub tags: Vec<String>,
    /// Catalog product ids the record has evidence for.
    pub product_ids: Vec<String>,
    /// When it happened (CCTV: capture time of the batch's first frame).
    #[schema(format = DateTime)]
    pub timestamp: String,
    /// When it was stored.
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<proto::Interaction> for Interaction {
    fn from(i: proto::Interaction) -> Interaction {
        // Stored data is a JSON object (validated when accepted).
        let data = serde_json::from_str(&i.data_json)
            .unwrap_or_else(|_| serde_json::Value::Object(Default::default()));
        Interaction {
            id: i.id,
            organization_id: i.organization_id,
            source_type: SourceType::from_proto(i.source_type),
            session_id: (!i.session_id.is_empty()).then_some(i.session_id),
            data,
            summary: i.summary,
            confidence: i.confidence,
            tags: i.tags,
            product_ids: i.product_ids,
            timestamp: format_ms(i.timestamp_ms),
            created_at: format_ms(i.created_at_ms),
        }
    }
}

/// Query of `GET /api/v1/interactions/organization/{orgId}`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Records per page, 1..=500 (`pipeline.limits.max_page_size`); default 50.
    #[param(minimum = 0, maximum = 500)]
    pub page_size: Option<u32>,
    /// `nextPageToken` of the previous page.
    pub page_token: Option<String>,
    /// Only this source.
    pub source_type: Option<SourceType>,
    /// Words that must all occur (whole words, case-insensitive) in the summary, tags, product ids
    /// or data; at most 8 words.
    pub q: Option<String>,
    /// Only records at or after this time (RFC 3339 or ms since the Unix epoch).
    pub from: Option<String>,
    /// Only records before this time (RFC 3339 or ms since the Unix epoch).
    pub to: Option<String>,
    /// Search by meaning: records ranked best first by how close in meaning their summary or a
    /// description is to this text; the other filters narrow the ranked set.
    pub meaning: Option<String>,
}

/// Why a record matched a search by meaning.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeaningMatch {
    pub interaction_id: String,
    /// Rank score: the similarity plus a bonus for the question's own words.
    pub score: f32,
    /// Cosine similarity of the record's best text to the question.
    pub similarity: f32,
    /// The record's text that matched best.
    pub matched_text: String,
}

impl From<proto::MeaningMatch> for MeaningMatch {
    fn from(m: proto::MeaningMatch) -> Self {
        MeaningMatch {
            interaction_id: m.interaction_id,
            score: m.score,
            similarity: m.similarity,
            matched_text: m.matched_text,
        }
    }
}

/// One page of interactions, newest first (best first with `meaning`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InteractionPage {
    pub interactions: Vec<Interaction>,
    /// With `meaning`: why each record matched, in the same order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<MeaningMatch>,
    /// Pass it as `pageToken` for the next page; null when nothing is left. A page may hold fewer
    /// records than asked, even none, while this is set (search examines a bounded number of entries
    /// per page).
    pub next_page_token: Option<String>,
}

/// Counts of an organization's interactions per source.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub organization_id: String,
    pub web: u64,
    pub cctv: u64,
    pub social: u64,
    pub total: u64,
}

impl Summary {
    /// The summary of `organization_id`.
    pub fn new(organization_id: String, s: proto::Summary) -> Summary {
        Summary {
            organization_id,
            web: s.web,
            cctv: s.cctv,
            social: s.social,
            total: s.total,
        }
    }
}

/// Body of `POST /api/v1/interactions/create-interaction`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateInteraction {
    /// 1..=128 characters of `[A-Za-z0-9._-]`.
    pub organization_id: String,
    pub source_type: SourceType,
    /// The event's details: a JSON object (at most `max_data_bytes` encoded, `max_data_depth` deep).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// The CCTV session it belongs to (must be the organization's).
    #[serde(default)]
    pub session_id: Option<String>,
    /// One-paragraph summary; generated from the data when absent.
    #[serde(default)]
    pub summary: Option<String>,
    /// When it happened; absent means now.
    #[serde(default)]
    pub timestamp: Option<Instant>,
    /// Catalog product ids the event is about (at most 32).
    #[serde(default)]
    pub product_ids: Vec<String>,
    /// Retrying with the same key (per organization) stores one record and returns its id. The
    /// `Idempotency-Key` header works too.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// Answer of `create-interaction`: the event is stored durably in the outbox.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    /// The record's id once processed (`GET /api/v1/organizations/{orgId}/interactions/{id}`).
    pub id: String,
    /// True when the idempotency key was used before: nothing new was stored.
    pub duplicate: bool,
    /// Always `pending`: processing happens shortly after.
    pub status: String,
}

/// Where an accepted interaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InteractionState {
    /// Processed and stored.
    Stored,
    /// In the outbox, possibly waiting for a retry.
    Pending,
    /// Processing failed on every attempt.
    DeadLetter,
}

/// An interaction, or where it stands if it is not stored yet.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InteractionStatus {
    pub state: InteractionState,
    /// Set when `state` is `stored`.
    pub interaction: Option<Interaction>,
    /// Failed processing attempts so far.
    pub attempts: u32,
    /// The last failure.
    pub last_error: Option<String>,
}

impl From<proto::GetInteractionResponse> for InteractionStatus {
    fn from(r: proto::GetInteractionResponse) -> InteractionStatus {
        let state = match proto::InteractionState::try_from(r.state) {
            Ok(proto::InteractionState::Stored) => InteractionState::Stored,
            Ok(proto::InteractionState::DeadLetter) => InteractionState::DeadLetter,
            _ => InteractionState::Pending,
        };
        InteractionStatus {
            state,
            interaction: r.interaction.map(Interaction::from),
            attempts: r.attempts,
            last_error: (!r.last_error.is_empty()).then_some(r.last_error),
        }
    }
}
