//! Domain records as they are stored.

use serde::{Deserialize, Serialize};

/// Where an interaction came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceType {
    /// A web event (page view, cart, checkout, ...).
    Web,
    /// A batch of analysed CCTV frames.
    Cctv,
    /// A social-media event.
    Social,
}

impl SourceType {
    /// All sources, in counter order.
    pub const ALL: [SourceType; 3] = [SourceType::Web, SourceType::Cctv, SourceType::Social];

    /// Lowercase name, as used in the API and in tags.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceType::Web => "web",
            SourceType::Cctv => "cctv",
            SourceType::Social => "social",
        }
    }
}

/// One customer-interaction record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    /// Unique id (UUID). CCTV records derive it from `(session, batch_index)`.
    pub id: String,
    /// Owning organization.
    pub organization_id: String,
    /// Where the record came from.
    pub source_type: SourceType,
    /// CCTV session, if any.
    pub session_id: Option<String>,
    /// Source-specific details (a JSON object).
    pub data: serde_json::Value,
    /// Human-readable summary.
    pub summary: String,
    /// 0.0..=1.0.
    pub confidence: f32,
    /// Short lowercase labels.
    pub tags: Vec<String>,
    /// Catalog product ids referred to.
    pub product_ids: Vec<String>,
    /// When the interaction happened, ms since the Unix epoch.
    pub timestamp_ms: i64,
    /// When the record was stored, ms since the Unix epoch.
    pub created_at_ms: i64,
}

/// Counts of an organization's interactions per source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Web records.
    pub web: u64,
    /// CCTV records.
    pub cctv: u64,
    /// Social records.
    pub social: u64,
}

impl Summary {
    /// All records.
    pub fn total(&self) -> u64 {
        self.web + self.cctv + self.social
    }
}

/// Lifecycle of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    /// Accepting frames.
    Open,
    /// No more frames; its last batch has been flushed.
    Closed,
}

/// Per-session frame counters. `received == accepted + skipped + rejected` always holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCounters {
    /// Frames that reached the session.
    pub received: u64,
    /// Frames decoded, not duplicates, queued for description.
    pub accepted: u64,
    /// Near-duplicate frames.
    pub skipped: u64,
    /// Unusable frames.
    pub rejected: u64,
    /// Accepted frames whose description is stored.
    pub described: u64,
    /// Batches emitted.
    pub batches: u64,
}

/// One session: a camera-hour of footage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// UUID.
    pub id: String,
    /// Owning organization.
    pub organization_id: String,
    /// Camera within the organization.
    pub camera_id: String,
    /// Open or closed.
    pub status: SessionStatus,
    /// Capture time of the first frame (ms since epoch), once one arrived.
    pub started_at_ms: Option<i64>,
    /// Capture time of the latest frame, or close time.
    pub ended_at_ms: Option<i64>,
    /// Frame counters.
    pub counters: SessionCounters,
    /// Highest frame index recorded.
    pub last_frame_index: Option<u64>,
    /// Index the next emitted batch gets.
    pub next_batch_index: u64,
    /// When the record was created, ms since the Unix epoch.
    pub created_at_ms: i64,
}

/// What became of one frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum FrameOutcome {
    /// Decoded and queued for description.
    Accepted,
    /// Near-duplicate of the previous accepted frame; `difference` is the measured mean difference (0..1).
    SkippedDuplicate {
        /// Mean absolute difference to the previous accepted frame, 0.0..=1.0.
        difference: f32,
    },
    /// Unusable; `reason` is safe to show to the client.
    Rejected {
        /// Why.
        reason: String,
    },
}

/// Tracking record of one frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameRecord {
    /// Index within the session's stream.
    pub frame_index: u64,
    /// Capture time, ms since epoch.
    pub captured_at_ms: i64,
    /// Outcome at ingest.
    pub outcome: FrameOutcome,
    /// The description, once the frame has been described.
    pub description: Option<String>,
}

/// The describer's output for one frame, as kept in batches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameAnalysis {
    /// Index within the session's stream.
    pub frame_index: u64,
    /// Capture time, ms since epoch.
    pub captured_at_ms: i64,
    /// Which describer produced it (e.g. "opencv-scene").
    pub describer: String,
    /// One-line human-readable description.
    pub text: String,
    /// 0.0..=1.0.
    pub confidence: f32,
    /// Short lowercase labels.
    pub tags: Vec<String>,
    /// Describer-specific measurements (JSON object).
    pub details: serde_json::Value,
}

/// A batch of frame analyses, emitted by a session towards the analyzers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRecord {
    /// Session the frames belong to.
    pub session_id: String,
    /// Owning organization.
    pub organization_id: String,
    /// Camera.
    pub camera_id: String,
    /// Position of the batch within its session, from 0.
    pub batch_index: u64,
    /// The analyses, in frame order.
    pub frames: Vec<FrameAnalysis>,
    /// When it was emitted, ms since epoch.
    pub created_at_ms: i64,
}
