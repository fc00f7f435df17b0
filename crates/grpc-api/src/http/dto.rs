//! The JSON shapes of the HTTP API (camelCase, as the services crow replaces had them), converted from
//! and to the `crow.v1` messages the gRPC services take and return.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::time::{format_ms, format_optional_ms, Instant};
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
    fn from_proto(value: i32) -> Option<SourceType> {
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
    /// The model's answer (when done).
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
    /// Records shown to the model (the newest ones).
    pub records_used: u64,
    /// Why it failed.
    pub error: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
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
            error: (!a.error.is_empty()).then_some(a.error),
            created_at: format_ms(a.created_at_ms),
            started_at: format_optional_ms(a.started_at_ms),
            finished_at: format_optional_ms(a.finished_at_ms),
        }
    }
}

/// Body of `POST /api/v1/cctv/sessions`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSession {
    pub organization_id: String,
    pub camera_id: String,
}

/// Query naming the organization of a route whose path does not (`GET /api/v1/cctv/sessions/{id}`);
/// the `X-Organization-Id` header or a token for one organization may name it instead.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct OrganizationQuery {
    pub organization_id: Option<String>,
}

/// A session's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    /// Accepting frames.
    Open,
    /// Closed, or superseded by an hourly rollover.
    Closed,
}

/// A session: one camera-hour, with its counters. `framesReceived` = accepted + skipped + rejected
/// + noPerson + gated + shed.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub session_id: String,
    pub organization_id: String,
    pub camera_id: String,
    pub status: SessionStatus,
    /// Capture time of the first frame.
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    /// Capture time of the last frame (open) or when it was closed.
    #[schema(format = DateTime)]
    pub ended_at: Option<String>,
    pub frames_received: u64,
    pub frames_accepted: u64,
    pub frames_skipped: u64,
    pub frames_rejected: u64,
    pub frames_no_person: u64,
    pub frames_gated: u64,
    pub frames_shed: u64,
    pub frames_described: u64,
    pub batches_emitted: u64,
    /// Batches not yet turned into an interaction record.
    pub batches_unanalyzed: u64,
    /// Highest frame index with an outcome; null when none. Resume from it + 1.
    pub last_frame_index: Option<u64>,
}

impl From<proto::Session> for Session {
    fn from(s: proto::Session) -> Session {
        Session {
            status: if s.status == proto::SessionStatus::Open as i32 {
                SessionStatus::Open
            } else {
                SessionStatus::Closed
            },
            session_id: s.session_id,
            organization_id: s.organization_id,
            camera_id: s.camera_id,
            started_at: format_optional_ms(s.started_at_ms),
            ended_at: format_optional_ms(s.ended_at_ms),
            frames_received: s.frames_received,
            frames_accepted: s.frames_accepted,
            frames_skipped: s.frames_skipped,
            frames_rejected: s.frames_rejected,
            frames_no_person: s.frames_no_person,
            frames_gated: s.frames_gated,
            frames_shed: s.frames_shed,
            frames_described: s.frames_described,
            batches_emitted: s.batches_emitted,
            batches_unanalyzed: s.batches_unanalyzed,
            last_frame_index: u64::try_from(s.last_frame_index).ok(),
        }
    }
}

/// Encoding of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Jpeg,
    Png,
}

impl ImageFormat {
    /// The protocol value.
    pub fn proto(self) -> i32 {
        (match self {
            ImageFormat::Jpeg => proto::ImageFormat::Jpeg,
            ImageFormat::Png => proto::ImageFormat::Png,
        }) as i32
    }
}

/// One frame of `POST /api/v1/cctv/frames` as JSON.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FrameJson {
    /// Position in the camera's stream, strictly increasing within a session; a repeated index is
    /// answered from its record (idempotent resend).
    pub frame_index: u64,
    /// Capture time; absent means now.
    #[serde(default)]
    pub captured_at: Option<Instant>,
    pub format: ImageFormat,
    /// The encoded image, base64 (standard alphabet, padded).
    #[schema(format = Byte)]
    pub data: String,
}

/// Body of `POST /api/v1/cctv/frames` as JSON (it also takes `multipart/form-data`: text fields
/// `organizationId`, `cameraId`, optional `sessionId`, then for each frame a `frameIndex` field, an
/// optional `capturedAt` field and a file part `frame` of type `image/jpeg` or `image/png`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubmitFrames {
    pub organization_id: String,
    pub camera_id: String,
    /// Session to add the frames to; absent: the camera's open session, or a new one.
    #[serde(default)]
    pub session_id: Option<String>,
    /// 1..=`stream_credits` frames.
    pub frames: Vec<FrameJson>,
}

/// What happened to a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FrameOutcome {
    /// Decoded, something happened to a person, queued for description.
    Accepted,
    /// Nearly identical to the previous accepted frame.
    SkippedDuplicate,
    /// Not usable; `reason` says why.
    Rejected,
    /// The person detector found nobody.
    NoPerson,
    /// People present, nothing new for them; `reason` says which.
    Gated,
    /// The describer had no room (`describer_overload = "shed"`).
    Shed,
}

/// The answer to one frame, sent once its outcome is durable.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FrameAck {
    pub frame_index: u64,
    pub outcome: FrameOutcome,
    /// Why (rejected, gated).
    pub reason: Option<String>,
    /// The session it was recorded in.
    pub session_id: String,
    /// The index had been recorded before: this repeats the stored outcome.
    pub replayed: bool,
    /// For `rejected`: `INVALID_ARGUMENT` (the frame is bad; resending changes nothing),
    /// `RESOURCE_EXHAUSTED` (over the camera's frame rate; nothing recorded, resend later) or
    /// `FAILED_PRECONDITION` (the session is closed).
    pub refusal: Option<String>,
}

impl From<proto::FrameAck> for FrameAck {
    fn from(a: proto::FrameAck) -> FrameAck {
        let outcome = match proto::FrameOutcome::try_from(a.outcome) {
            Ok(proto::FrameOutcome::Accepted) => FrameOutcome::Accepted,
            Ok(proto::FrameOutcome::SkippedDuplicate) => FrameOutcome::SkippedDuplicate,
            Ok(proto::FrameOutcome::NoPerson) => FrameOutcome::NoPerson,
            Ok(proto::FrameOutcome::Gated) => FrameOutcome::Gated,
            Ok(proto::FrameOutcome::Shed) => FrameOutcome::Shed,
            _ => FrameOutcome::Rejected,
        };
        let refusal = (a.status_code != 0)
            .then(|| super::error::code_name(tonic::Code::from_i32(a.status_code)).to_owned());
        FrameAck {
            frame_index: a.frame_index,
            outcome,
            reason: (!a.reason.is_empty()).then_some(a.reason),
            session_id: a.session_id,
            replayed: a.replayed,
            refusal,
        }
    }
}

/// Answer of `POST /api/v1/cctv/frames`: one ack per frame, in order.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FrameAcks {
    pub acks: Vec<FrameAck>,
}

/// Paging of the list routes.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1..=500; default 50.
    #[param(minimum = 0, maximum = 500)]
    pub page_size: Option<u32>,
    /// `nextPageToken` of the previous page.
    pub page_token: Option<String>,
}

/// A catalog product, as stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    /// 1..=128 characters of `[A-Za-z0-9._-]`, unique within the organization.
    pub id: String,
    /// 1..=200 characters.
    pub name: String,
    pub category: String,
    pub description: String,
    pub tags: Vec<String>,
    /// Other names it goes by.
    pub aliases: Vec<String>,
    /// Last upsert.
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
}

/// A catalog product to insert or replace.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProductInput {
    /// 1..=128 characters of `[A-Za-z0-9._-]`, unique within the organization.
    pub id: String,
    /// 1..=200 characters.
    pub name: String,
    /// At most 100 characters.
    #[serde(default)]
    pub category: String,
    /// At most 2000 characters.
    #[serde(default)]
    pub description: String,
    /// At most 16 tags of at most 40 characters.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Other names it goes by ("trainers" for "running shoes"): at most 16 of 1..=80 characters,
    /// matched by meaning like the name.
    #[serde(default)]
    pub aliases: Vec<String>,
}

impl From<proto::Product> for Product {
    fn from(p: proto::Product) -> Product {
        Product {
            id: p.id,
            name: p.name,
            category: p.category,
            description: p.description,
            tags: p.tags,
            aliases: p.aliases,
            updated_at: format_optional_ms(p.updated_at_ms),
        }
    }
}

impl ProductInput {
    /// The protocol message for `organization_id`.
    pub fn proto(self, organization_id: &str) -> proto::Product {
        proto::Product {
            id: self.id,
            organization_id: organization_id.to_owned(),
            name: self.name,
            category: self.category,
            description: self.description,
            tags: self.tags,
            aliases: self.aliases,
            updated_at_ms: 0,
        }
    }
}

/// Body of `PUT /api/v1/organizations/{orgId}/products`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpsertProducts {
    /// 1..=500 products, inserted or replaced atomically.
    pub products: Vec<ProductInput>,
}

/// Answer of a product upsert.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Upserted {
    pub upserted: u32,
}

/// A page of products, by id.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductPage {
    pub products: Vec<Product>,
    pub next_page_token: Option<String>,
}

/// Answer of a delete.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Deleted {
    /// False when there was nothing to delete.
    pub deleted: bool,
}

/// An event whose processing failed on every attempt.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub id: String,
    pub organization_id: String,
    pub source_type: Option<SourceType>,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub summary: String,
    #[schema(format = DateTime)]
    pub timestamp: String,
    pub attempts: u32,
    pub last_error: String,
    #[schema(format = DateTime)]
    pub dead_at: String,
}

impl From<proto::DeadLetter> for DeadLetter {
    fn from(d: proto::DeadLetter) -> DeadLetter {
        DeadLetter {
            id: d.id,
            organization_id: d.organization_id,
            source_type: SourceType::from_proto(d.source_type),
            data: serde_json::from_str(&d.data_json).unwrap_or(serde_json::Value::Null),
            summary: d.summary,
            timestamp: format_ms(d.timestamp_ms),
            attempts: d.attempts,
            last_error: d.last_error,
            dead_at: format_ms(d.dead_at_ms),
        }
    }
}

/// A page of dead letters, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterPage {
    pub dead_letters: Vec<DeadLetter>,
    pub next_page_token: Option<String>,
}

/// A point in normalised frame coordinates (0..1 of width and height, y down).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

fn point(p: Option<proto::Point>) -> Point {
    let p = p.unwrap_or_default();
    Point { x: p.x, y: p.y }
}

fn polygon(points: Vec<proto::Point>) -> Vec<Point> {
    points.into_iter().map(|p| point(Some(p))).collect()
}

fn proto_polygon(points: Vec<Point>) -> Vec<proto::Point> {
    points
        .into_iter()
        .map(|p| proto::Point { x: p.x, y: p.y })
        .collect()
}

/// A zone: a polygon, optionally mapped to catalog products (a person whose feet stay in it for
/// `minDwellMs` interacts with them).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Zone {
    pub id: String,
    /// 3..=64 corners.
    pub polygon: Vec<Point>,
    #[serde(default)]
    pub product_ids: Vec<String>,
    /// 0 (or absent) means 3000.
    #[serde(default)]
    pub min_dwell_ms: u64,
}

/// A tripwire: crossings from a->b's left to its right count "in".
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tripwire {
    pub id: String,
    pub a: Point,
    pub b: Point,
}

/// A region whose detections are ignored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Mask {
    pub polygon: Vec<Point>,
}

/// A camera's zones, tripwires and masks, as stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Camera {
    pub organization_id: String,
    pub camera_id: String,
    pub zones: Vec<Zone>,
    pub lines: Vec<Tripwire>,
    pub masks: Vec<Mask>,
    /// Last upsert.
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
}

/// A camera's configuration to create or replace (the camera is the path's): at most 32 of each.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CameraConfig {
    #[serde(default)]
    pub zones: Vec<Zone>,
    #[serde(default)]
    pub lines: Vec<Tripwire>,
    #[serde(default)]
    pub masks: Vec<Mask>,
}

impl From<proto::Camera> for Camera {
    fn from(c: proto::Camera) -> Camera {
        Camera {
            organization_id: c.organization_id,
            camera_id: c.camera_id,
            zones: c
                .zones
                .into_iter()
                .map(|z| Zone {
                    id: z.id,
                    polygon: polygon(z.polygon),
                    product_ids: z.product_ids,
                    min_dwell_ms: z.min_dwell_ms,
                })
                .collect(),
            lines: c
                .lines
                .into_iter()
                .map(|l| Tripwire {
                    id: l.id,
                    a: point(l.a),
                    b: point(l.b),
                })
                .collect(),
            masks: c
                .masks
                .into_iter()
                .map(|m| Mask {
                    polygon: polygon(m.polygon),
                })
                .collect(),
            updated_at: format_optional_ms(c.updated_at_ms),
        }
    }
}

impl CameraConfig {
    /// The protocol message for the camera of the path.
    pub fn proto(self, organization_id: &str, camera_id: &str) -> proto::Camera {
        proto::Camera {
            organization_id: organization_id.to_owned(),
            camera_id: camera_id.to_owned(),
            zones: self
                .zones
                .into_iter()
                .map(|z| proto::Zone {
                    id: z.id,
                    polygon: proto_polygon(z.polygon),
                    product_ids: z.product_ids,
                    min_dwell_ms: z.min_dwell_ms,
                })
                .collect(),
            lines: self
                .lines
                .into_iter()
                .map(|l| proto::Tripwire {
                    id: l.id,
                    a: Some(proto::Point { x: l.a.x, y: l.a.y }),
                    b: Some(proto::Point { x: l.b.x, y: l.b.y }),
                })
                .collect(),
            masks: self
                .masks
                .into_iter()
                .map(|m| proto::Mask {
                    polygon: proto_polygon(m.polygon),
                })
                .collect(),
            updated_at_ms: 0,
        }
    }
}

/// A page of cameras.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CameraPage {
    pub cameras: Vec<Camera>,
    pub next_page_token: Option<String>,
}

/// A product matched in a CCTV batch, with its evidence.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductMatch {
    pub product_id: String,
    pub confidence: f32,
    pub evidence_frames: Vec<u64>,
    /// `dwell`, `named` or `quote`.
    pub evidence: Vec<String>,
}

/// One analysed CCTV batch, as its interaction is written (a server-sent event `pattern`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatternEvent {
    pub organization_id: String,
    pub session_id: String,
    pub camera_id: String,
    pub batch_index: u64,
    pub first_frame_index: u64,
    pub last_frame_index: u64,
    pub interaction_id: String,
    pub summary: String,
    pub tags: Vec<String>,
    pub products: Vec<ProductMatch>,
    #[schema(format = DateTime)]
    pub timestamp: String,
}

impl From<proto::PatternEvent> for PatternEvent {
    fn from(e: proto::PatternEvent) -> PatternEvent {
        PatternEvent {
            organization_id: e.organization_id,
            session_id: e.session_id,
            camera_id: e.camera_id,
            batch_index: e.batch_index,
            first_frame_index: e.first_frame_index,
            last_frame_index: e.last_frame_index,
            interaction_id: e.interaction_id,
            summary: e.summary,
            tags: e.tags,
            products: e
                .products
                .into_iter()
                .map(|p| ProductMatch {
                    product_id: p.product_id,
                    confidence: p.confidence,
                    evidence_frames: p.evidence_frames,
                    evidence: p.evidence,
                })
                .collect(),
            timestamp: format_ms(e.timestamp_ms),
        }
    }
}

/// Query of the pattern event stream.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct PatternQuery {
    /// Only this camera.
    pub camera_id: Option<String>,
}

/// Health of the server.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// `serving`, `starting` (database opening, models loading), `stopping`, `storage unavailable`
    /// (the record store, e.g. PostgreSQL, does not answer) or `nats unavailable` (ingest and analyze
    /// nodes of a cluster).
    pub status: String,
    /// crow's version.
    pub version: String,
}
