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

/// Per-session frame counters. Every frame ends in exactly one outcome, so
/// `received == accepted + skipped + rejected + no_person + gated + shed` always holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCounters {
    /// Frames that reached the session.
    pub received: u64,
    /// Frames decoded, not duplicates, sent to the describer.
    pub accepted: u64,
    /// Near-duplicate frames.
    pub skipped: u64,
    /// Unusable frames.
    pub rejected: u64,
    /// Frames in which the person detector found nobody (not described).
    #[serde(default)]
    pub no_person: u64,
    /// Frames with people but nothing new for them (no new track, zone change or notable movement), or
    /// whose tracks had reached their description cap: not described.
    #[serde(default)]
    pub gated: u64,
    /// Frames the gate would have described but the describer queue was full
    /// (`describer_overload = "shed"`): recorded, not described.
    #[serde(default)]
    pub shed: u64,
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
    /// The last frame index the emitted batches cover; the next batch starts after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batched_through: Option<u64>,
    /// When the record was created, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// When retention removed the session's frame tracking records (its counters stay), ms since the
    /// Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_pruned_at_ms: Option<i64>,
    /// The session actor's perception state (tracks, zone visits, events not yet batched), stored with
    /// every frame so that a restarted actor continues the same tracks; opaque to storage.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub scene: serde_json::Value,
}

impl SessionRecord {
    /// A new open session of a camera, with a fresh time-ordered id and nothing counted yet.
    pub fn new_open(organization_id: &str, camera_id: &str) -> SessionRecord {
        SessionRecord {
            id: uuid::Uuid::now_v7().to_string(),
            organization_id: organization_id.to_owned(),
            camera_id: camera_id.to_owned(),
            status: SessionStatus::Open,
            started_at_ms: None,
            ended_at_ms: None,
            counters: Default::default(),
            last_frame_index: None,
            next_batch_index: 0,
            batched_through: None,
            created_at_ms: crate::now_ms(),
            tracking_pruned_at_ms: None,
            scene: serde_json::Value::Null,
        }
    }
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
    /// Decoded, but the person detector found nobody: not described.
    NoPerson,
    /// People present but nothing new happened for them: not described. `reason` says which rule held.
    Gated {
        /// Why.
        reason: String,
    },
    /// Worth describing, but the describer queue was full and the pipeline sheds under overload
    /// (`describer_overload = "shed"`): recorded, not described.
    Shed,
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
    /// The digest of the encoded frame as it was received: the stored copies of its bytes (the frame
    /// awaiting description, its keyframe) are checked against it when read. `None` for a frame refused
    /// before it decoded, and for records written before crow kept digests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<FrameDigest>,
}

/// SHA-256 of a frame's encoded bytes, as the client sent them. Stored (in JSON) as 64 lowercase hex
/// digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameDigest([u8; 32]);

impl FrameDigest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        Self(sha2::Sha256::digest(bytes).into())
    }

    /// Whether `bytes` are the bytes this digest was taken of.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        *self == Self::of(bytes)
    }
}

impl std::fmt::Display for FrameDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl std::fmt::Debug for FrameDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FrameDigest({self})")
    }
}

impl Serialize for FrameDigest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FrameDigest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let hex = String::deserialize(deserializer)?;
        let invalid = || serde::de::Error::custom("a frame digest is 64 hex digits");
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(invalid());
        }
        let mut digest = [0u8; 32];
        for (byte, pair) in digest.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| invalid())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| invalid())?;
        }
        Ok(Self(digest))
    }
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

/// What happened to a tracked person, as measured by crow's detector and tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackEventKind {
    /// A person was first seen (the track was confirmed).
    TrackStarted,
    /// The person was not seen any more; `dwell_ms` is how long they were tracked.
    TrackEnded,
    /// The person's feet entered a zone.
    ZoneEnter,
    /// ... stayed in it for the zone's `min_dwell_ms` (once per visit): a product interaction when the
    /// zone is mapped to products.
    ZoneDwell,
    /// ... left it; `dwell_ms` is the visit's length.
    ZoneExit,
    /// The person crossed a tripwire in its "in" direction.
    LineIn,
    /// ... in its "out" direction.
    LineOut,
}

/// One retail event of one track, with the frame that shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackEvent {
    /// What happened.
    pub kind: TrackEventKind,
    /// The person's track id within the session.
    pub track_id: u64,
    /// The frame on which it was measured.
    pub frame_index: u64,
    /// Its capture time, ms since the epoch.
    pub at_ms: i64,
    /// The zone or tripwire, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    /// Time in the zone (zone exit and dwell) or tracked (track end), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dwell_ms: Option<i64>,
    /// The products the zone was mapped to when the event happened.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub product_ids: Vec<String>,
    /// The track's mean detector score so far, 0..1.
    pub score: f32,
    /// Frames that show it and were sent to the describer (their keyframes are kept while retention
    /// allows): the visit's first frame and this one, where described.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence_frames: Vec<u64>,
}

/// How many people the detector saw, from a frame on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OccupancySample {
    /// The frame where the count changed.
    pub frame_index: u64,
    /// Its capture time, ms since the epoch.
    pub at_ms: i64,
    /// Confirmed tracks in view.
    pub people: u32,
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
    /// The frames the batch covers, first and last: consecutive batches of a session cover disjoint,
    /// increasing ranges, and every described frame and track event of a range is in its batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_range: Option<(u64, u64)>,
    /// Track events measured in the range, in frame order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<TrackEvent>,
    /// People in view over the range: the count at its start and every change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub occupancy: Vec<OccupancySample>,
}

/// A zone of a camera's view: a polygon in normalised coordinates (0..1, y down), optionally mapped to
/// the catalog products on that shelf (a planogram entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneConfig {
    /// Unique within the camera, `[A-Za-z0-9._-]`.
    pub id: String,
    /// Corners, 3 to 64 points.
    pub polygon: Vec<[f32; 2]>,
    /// Catalog ids of the products in the zone.
    #[serde(default)]
    pub product_ids: Vec<String>,
    /// A visit this long or longer counts as an interaction with the zone's products, ms.
    #[serde(default = "default_min_dwell_ms")]
    pub min_dwell_ms: u64,
}

/// The default [`ZoneConfig::min_dwell_ms`]: 3 s.
pub const fn default_min_dwell_ms() -> u64 {
    3_000
}

/// A tripwire: crossing the segment from `a` to `b` counts "in" when moving to the side where
/// `(b - a) x (p - a) > 0` (for a wire drawn left to right, downwards in the image), "out" otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineConfig {
    /// Unique within the camera, `[A-Za-z0-9._-]`.
    pub id: String,
    /// One end, normalised coordinates.
    pub a: [f32; 2],
    /// The other end.
    pub b: [f32; 2],
}

/// A camera's configuration: zones, tripwires and motion masks (regions whose detections are ignored,
/// e.g. a screen or a poster with people on it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraConfig {
    /// Owning organization.
    pub organization_id: String,
    /// Camera within the organization.
    pub camera_id: String,
    /// Zones.
    #[serde(default)]
    pub zones: Vec<ZoneConfig>,
    /// Tripwires.
    #[serde(default)]
    pub lines: Vec<LineConfig>,
    /// Masked regions (polygons).
    #[serde(default)]
    pub masks: Vec<Vec<[f32; 2]>>,
    /// Width and height in pixels this camera's frames are resized to for the person detector, when
    /// it differs from the server's `perception.detector_input` (a wide view with small people needs
    /// a larger input; a close one does with less). 32..=4096 each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detector_input: Option<[u32; 2]>,
    /// Columns and rows of overlapping tiles the detector also looks at for this camera, when it
    /// differs from the server's `perception.detector_tiles` ([1, 1]: the whole frame only). 1..=4 each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detector_tiles: Option<[u32; 2]>,
    /// Last upsert, ms since the Unix epoch.
    #[serde(default)]
    pub updated_at_ms: i64,
}

/// Which interactions a listing returns. Every field narrows the result; the default matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InteractionFilter {
    /// Only this source.
    pub source: Option<SourceType>,
    /// Free-text search: every word of it must occur, as a whole word (case-insensitive), in the record's
    /// summary, tags, product ids or the string values of its data.
    pub query: Option<String>,
    /// Only records with `timestamp_ms >= from_ms`.
    pub from_ms: Option<i64>,
    /// Only records with `timestamp_ms < to_ms`.
    pub to_ms: Option<i64>,
}

/// A web, social or CCTV event accepted by `CreateInteraction`, waiting in the outbox to be processed into
/// an [`Interaction`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewInteraction {
    /// The id the stored interaction will have (UUID v7), returned to the client at once.
    pub id: String,
    /// Owning organization.
    pub organization_id: String,
    /// Where it came from.
    pub source_type: SourceType,
    /// CCTV session it belongs to, if any.
    pub session_id: Option<String>,
    /// Source-specific details (a JSON object, already validated).
    pub data: serde_json::Value,
    /// Caller's summary; generated from `data` when absent.
    pub summary: Option<String>,
    /// Catalog product ids the caller says the event is about.
    pub product_ids: Vec<String>,
    /// When it happened, ms since the Unix epoch.
    pub timestamp_ms: i64,
    /// When crow accepted it, ms since the Unix epoch.
    pub received_at_ms: i64,
    /// The caller's idempotency key, if any.
    pub idempotency_key: Option<String>,
}

/// An outbox entry: a [`NewInteraction`] with its delivery state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Position in the outbox (monotonic across restarts).
    pub seq: u64,
    /// The event.
    pub record: NewInteraction,
    /// Processing attempts that failed so far.
    pub attempts: u32,
    /// Not to be processed before this time, ms since the Unix epoch.
    pub next_attempt_ms: i64,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

/// An event whose processing failed on every attempt; kept for an operator to inspect and replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The event.
    pub record: NewInteraction,
    /// Processing attempts made.
    pub attempts: u32,
    /// The last failure.
    pub last_error: String,
    /// When it was moved here, ms since the Unix epoch.
    pub dead_at_ms: i64,
}

/// What became of a `CreateInteraction` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The record's id.
    pub id: String,
    /// `true` when the idempotency key was seen before: nothing new was stored and `id` is the first
    /// request's.
    pub duplicate: bool,
}

/// Where an interaction id stands.
#[derive(Debug, Clone, PartialEq)]
pub enum InteractionState {
    /// Processed and stored.
    Stored(Interaction),
    /// Accepted, waiting in the outbox (possibly for a retry).
    Pending(OutboxEntry),
    /// Processing failed on every attempt.
    DeadLetter(DeadLetter),
}

/// A product of an organization's catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// Catalog id, unique within the organization.
    pub id: String,
    /// Owning organization.
    pub organization_id: String,
    /// Display name.
    pub name: String,
    /// Category, e.g. "shoes".
    pub category: String,
    /// Free text.
    pub description: String,
    /// Short labels.
    pub tags: Vec<String>,
    /// Other names it goes by, matched by meaning like the name.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Last upsert, ms since the Unix epoch.
    pub updated_at_ms: i64,
}

/// Lifecycle of an analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnalysisStatus {
    /// Waiting for a free analyzer slot.
    Queued,
    /// Running on a slot.
    Running,
    /// Finished; the result is stored.
    Done,
    /// Failed; `error` says why.
    Failed,
}

/// Figures computed exactly (without the model) over the interactions an analysis considered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnalysisStats {
    /// Interactions in the window (up to the scan limit).
    pub records: u64,
    /// Of which web / cctv / social.
    pub web: u64,
    /// CCTV records.
    pub cctv: u64,
    /// Social records.
    pub social: u64,
    /// Most frequent tags with their counts, most frequent first.
    pub top_tags: Vec<(String, u64)>,
    /// Most frequent product ids with their counts, most frequent first.
    pub top_products: Vec<(String, u64)>,
    /// Whether the window held more records than were scanned.
    pub truncated: bool,
}

/// What kind of fact an analysis states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactKind {
    /// Record counts.
    Count,
    /// A store metric (footfall, visits, dwell, busiest hour, products).
    Metric,
    /// A deviation from the organization's own history.
    Anomaly,
    /// A theme of web or social events, with a quote.
    Theme,
    /// An action that follows from other facts.
    Recommendation,
}

/// One fact of an analysis, computed by crow: a sentence with its figures and where it comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisFact {
    /// 1-based; statements cite it.
    pub number: u32,
    /// What kind.
    pub kind: FactKind,
    /// The sentence, with the figures.
    pub text: String,
    /// Records it comes from (quoted or counted examples).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interaction_ids: Vec<String>,
    /// The store metrics query that gives its figures (e.g. `by=hour&from=...&to=...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
    /// For an anomaly: the test that found it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<String>,
}

/// A sentence of an analysis's summary and the facts it states.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisStatement {
    /// The sentence.
    pub text: String,
    /// Numbers of the facts it states.
    pub facts: Vec<u32>,
}

/// Who worded an analysis's summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnalysisPhrasing {
    /// crow's own templates over the facts (no model, or the model's wording failed the check).
    #[default]
    Template,
    /// The text model, every statement checked against the facts it cites.
    Model,
}

/// An analysis: facts crow computed, and their wording.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnalysisResult {
    /// A few sentences stating the main facts.
    pub summary: String,
    /// Metric and theme facts, as sentences.
    pub insights: Vec<String>,
    /// Anomaly facts, as sentences.
    pub anomalies: Vec<String>,
    /// Actions that follow from the facts.
    pub recommendations: Vec<String>,
    /// Every fact, numbered, with its sources.
    #[serde(default)]
    pub facts: Vec<AnalysisFact>,
    /// The summary's sentences with the facts each states.
    #[serde(default)]
    pub statements: Vec<AnalysisStatement>,
    /// Who worded the summary.
    #[serde(default)]
    pub phrasing: AnalysisPhrasing,
    /// Why the model's wording was refused, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phrasing_refused: Option<String>,
}

/// One analysis request and, once done, its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisRecord {
    /// UUID v7.
    pub id: String,
    /// Owning organization.
    pub organization_id: String,
    /// Window start (inclusive), ms since the Unix epoch; `None` = from the first record.
    pub from_ms: Option<i64>,
    /// Window end (exclusive); `None` = up to now.
    pub to_ms: Option<i64>,
    /// Only this source, if set.
    pub source: Option<SourceType>,
    /// Where it stands.
    pub status: AnalysisStatus,
    /// Exact figures over the window.
    pub stats: AnalysisStats,
    /// Records shown to the model (the newest ones).
    pub records_used: u64,
    /// The model's answer, once done.
    pub result: Option<AnalysisResult>,
    /// Why it failed.
    pub error: Option<String>,
    /// Requested, started and finished, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// When a slot picked it up.
    pub started_at_ms: Option<i64>,
    /// When it finished or failed.
    pub finished_at_ms: Option<i64>,
}
