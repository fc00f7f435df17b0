//! Pipeline settings.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Which describer the pipeline runs on accepted frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DescriberKind {
    /// The embedded OpenCV scene describer (people, motion regions, movement direction). No model needed.
    Opencv,
    /// A llama.cpp vision model (GGUF + mmproj) through the multimodal (mtmd) path; see [`LlamaConfig`].
    Llama,
    /// An OpenAI-compatible chat-completions server with image input (llama-server, vLLM, ...); see
    /// `[pipeline.remote]`.
    Remote,
    /// No description: frames are decoded, gated and tracked only (no batches, no interactions).
    Off,
}

/// The llama.cpp models: any GGUF language model with its matching multimodal projector (e.g. Gemma 3
/// 4B/12B + mmproj). The defaults point at what `scripts/setup-models.sh` installs: Gemma 3 270M and a
/// random-weight test projector, which proves the path but describes nothing meaningful.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlamaConfig {
    /// GGUF language model.
    pub model: PathBuf,
    /// GGUF multimodal projector made for `model`.
    pub mmproj: PathBuf,
    /// Instruction sent with every frame; `None` uses crow's default.
    pub prompt: Option<String>,
    /// CPU threads per inference call.
    pub threads: i32,
    /// Context size in tokens.
    pub n_ctx: u32,
    /// Most tokens generated per frame.
    pub max_tokens: u32,
}

impl Default for LlamaConfig {
    fn default() -> Self {
        LlamaConfig {
            model: PathBuf::from("models/gemma-3-270m-q4_k_m.gguf"),
            mmproj: PathBuf::from("models/test-mmproj-gemma3-224.gguf"),
            prompt: None,
            threads: 2,
            n_ctx: 2048,
            max_tokens: 48,
        }
    }
}

/// Settings of the ingest pipeline. Every field has a default that works out of the box.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// A batch is emitted once it holds this many frame descriptions (1..).
    pub batch_size: usize,
    /// ... or once its oldest description has waited this long, in ms.
    pub batch_timeout_ms: u64,
    /// Frames whose changed-pixel fraction against the last accepted frame is below this (0.0..=1.0) are
    /// skipped as near-duplicates. 0 disables the gate.
    pub duplicate_threshold: f32,
    /// Longest span of capture time one session covers, in ms; later frames roll over into a new session.
    pub session_max_duration_ms: i64,
    /// Which describer runs.
    pub describer: DescriberKind,
    /// Models for `describer = "llama"`.
    pub llama: LlamaConfig,
    /// Inference servers for `describer = "remote"`; the describer slots are raised to the servers'
    /// capacity (servers x `max_in_flight`).
    pub remote: crow_inference::remote::RemoteConfig,
    /// Describer worker threads (inference slots).
    pub describer_slots: usize,
    /// Frames that may wait for a free slot; when full, see `describer_overload`.
    pub describer_queue: usize,
    /// What a session does with a frame worth describing when the describer queue is full: `wait`
    /// (its client runs out of credits and slows down; nothing is lost) or `shed` (the frame is recorded
    /// `SHED`, counted and not described; ingest never waits for the describers).
    pub describer_overload: Overload,
    /// Frames a stream may have unacknowledged (credits granted to the client).
    pub stream_credits: u32,
    /// A failed session actor is restarted at most this many times.
    pub max_session_restarts: u32,
    /// First restart delay in ms; doubles with each restart.
    pub restart_backoff_ms: u64,
    /// On shutdown, how long sessions may take to finish their descriptions and flush their batches,
    /// and analyses to finish, in ms; what is left resumes on the next start.
    pub shutdown_timeout_ms: u64,
    /// `CreateInteraction`: the outbox and its retries.
    pub interactions: InteractionsConfig,
    /// The text model: product matching of CCTV batches and `Analyze`.
    pub analysis: AnalysisConfig,
    /// Limits on what clients may send; each error that enforces one names it.
    pub limits: LimitsConfig,
    /// Retention of keyframes and frame tracking, and the disk floor.
    pub retention: RetentionConfig,
    /// The person detector, the tracker and the gate that sends frames to the describer.
    pub perception: PerceptionConfig,
    /// This node's role in a cluster and its NATS connection (`[pipeline.cluster]`).
    pub cluster: crate::cluster::ClusterConfig,
    /// Search by meaning.
    pub search: crate::semantic::SearchConfig,
}

/// See [`PipelineConfig::describer_overload`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overload {
    /// Wait for room in the describer queue.
    Wait,
    /// Record the frame as shed and go on.
    Shed,
}

/// Which person detector runs on every decoded, non-duplicate frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DetectorChoice {
    /// SSDLite-MobileNetV2 (person) through OpenCV dnn; falls back to HOG, with a warning, when
    /// `perception.model` is missing.
    Ssd,
    /// OpenCV's HOG people detector (slower, misses small or partly hidden people).
    Hog,
    /// No detection, no tracks: every non-duplicate frame is described (the gate is on pixels only).
    Off,
}

/// Person detection, tracking and the describe gate (`[pipeline.perception]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PerceptionConfig {
    /// Which detector runs.
    pub detector: DetectorChoice,
    /// The SSD's frozen graph, installed by `scripts/setup-models.sh`.
    pub model: PathBuf,
    /// Width and height in pixels every frame is resized to for the SSD. 300 x 300 as trained finds
    /// people from about 130 px tall in a 768 x 576 frame; 640 x 480 finds people of 60-130 px
    /// (recall 0.53 -> 0.90 measured by `crow bench truth`) at about 2.5x the detector's CPU, and
    /// may see people in large background shapes (mask those). 32..=4096 each.
    pub detector_input: [u32; 2],
    /// Columns and rows of overlapping tiles the detector also looks at, each resized to
    /// `detector_input` on its own, besides the whole frame: [1, 1] looks at the whole frame only. On
    /// hand-labelled real frames [2, 2] found 0.73 of the people against 0.55 (precision 0.87 against
    /// 0.80), at five detector calls per frame. 1..=4 each.
    pub detector_tiles: [u32; 2],
    /// Detections scoring at least this (0..1) are people: they continue tracks and start new ones.
    pub min_score: f32,
    /// Detections scoring from this up to `min_score` only continue a confirmed track that no
    /// confident detection continued (ByteTrack's second pass: a person the detector is unsure of for
    /// a frame, partly hidden or turning, keeps their track); they start none. Below it: ignored.
    pub low_score: f32,
    /// Boxes wider than this times their height (in pixels) are not people: a walking person is
    /// 0.3-0.6, a crouching one up to about 0.9; the SSD's steady false positives on background shapes
    /// are as wide as tall or wider. Raise it for cameras looking straight down. Above 0.
    pub max_width_to_height: f32,
    /// While someone is tracked, a frame the near-duplicate gate would skip is still detected when
    /// the detector last looked this many ms of capture time ago or more: a person standing still, or
    /// moving less than the gate sees (far away, slowly), is looked at again at this rate. 0 = never.
    pub redetect_interval_ms: u64,
    /// Association, confirmation and track end.
    pub tracker: crow_inference::TrackerConfig,
    /// A person's feet moving this far (fraction of the frame) since their last described frame is
    /// notable movement: the frame is described.
    pub movement_threshold: f32,
    /// Frames described per track at most; later changes are gated (counted).
    pub max_describes_per_track: u32,
    /// New people and movement are described at most once per this many ms of capture time per
    /// camera (people arriving together share a frame); zone entries and dwells are described at once.
    pub min_describe_interval_ms: u64,
}

impl Default for PerceptionConfig {
    fn default() -> Self {
        PerceptionConfig {
            detector: DetectorChoice::Ssd,
            model: PathBuf::from("models/ssdlite-person/frozen_inference_graph.pb"),
            detector_input: crow_inference::detector::SSD_TRAINED_INPUT,
            detector_tiles: [1, 1],
            min_score: 0.5,
            low_score: 0.3,
            max_width_to_height: crow_inference::detector::DEFAULT_MAX_WIDTH_TO_HEIGHT,
            redetect_interval_ms: 5_000,
            tracker: crow_inference::TrackerConfig::default(),
            movement_threshold: 0.25,
            max_describes_per_track: 4,
            min_describe_interval_ms: 3_000,
        }
    }
}

/// Limits on client input (`[pipeline.limits]`). A request over one fails with `INVALID_ARGUMENT`
/// (a property of the request) or `RESOURCE_EXHAUSTED` (a rate or capacity), and the message names the
/// setting, e.g. `pipeline.limits.max_frame_pixels`; a frame over one is acknowledged `REJECTED` with
/// that message. Identifiers are not configurable: at most 128 characters of `A-Z a-z 0-9 . _ -`, part
/// of the API contract because they are storage keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request message of the unary services, bytes. Frame streams allow `max_frame_bytes`
    /// plus 64 KiB per message.
    pub max_message_bytes: usize,
    /// Largest encoded frame, bytes.
    pub max_frame_bytes: usize,
    /// Largest width x height a frame's header may declare; checked before anything is decoded, so a
    /// small file that claims a huge picture (a decompression bomb) costs nothing.
    pub max_frame_pixels: u64,
    /// Frames per second one camera's session may receive (token bucket with a burst of one second);
    /// frames beyond it are refused with `RESOURCE_EXHAUSTED` acks and not recorded. 0 = unlimited.
    pub max_fps_per_session: u32,
    /// Frame streams one organization may have open at once; the next fails with
    /// `RESOURCE_EXHAUSTED`. 0 = unlimited.
    pub max_streams_per_org: u32,
    /// `WatchPatterns` subscriptions one organization may have open at once; the next fails with
    /// `RESOURCE_EXHAUSTED`. 0 = unlimited.
    pub max_watchers_per_org: u32,
    /// Largest `data_json` of `CreateInteraction`, bytes.
    pub max_data_bytes: usize,
    /// Deepest nesting of `data_json` (an object holding an array holding a value is depth 3).
    pub max_data_depth: usize,
    /// Longest interaction summary, characters.
    pub max_summary_chars: usize,
    /// Longest `ListInteractions` search query, bytes.
    pub max_query_bytes: usize,
    /// Largest page a list call may ask for (at most 500).
    pub max_page_size: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_message_bytes: 4 * 1024 * 1024,
            max_frame_bytes: crow_inference::FrameLimits::DEFAULT.max_bytes,
            max_frame_pixels: crow_inference::FrameLimits::DEFAULT.max_pixels,
            max_fps_per_session: 60,
            max_streams_per_org: 64,
            max_watchers_per_org: 16,
            max_data_bytes: 64 * 1024,
            max_data_depth: 16,
            max_summary_chars: 2_000,
            max_query_bytes: 512,
            max_page_size: 500,
        }
    }
}

impl LimitsConfig {
    /// The limits checked on every `CreateInteraction` event.
    pub fn event(&self) -> crow_storage::validate::EventLimits {
        crow_storage::validate::EventLimits {
            max_data_bytes: self.max_data_bytes,
            max_data_depth: self.max_data_depth,
            max_summary_chars: self.max_summary_chars,
        }
    }

    /// The limits checked on every frame before it is decoded.
    pub fn frame(&self) -> crow_inference::FrameLimits {
        crow_inference::FrameLimits {
            max_bytes: self.max_frame_bytes,
            max_pixels: self.max_frame_pixels,
        }
    }
}

/// Settings of `CreateInteraction` and the processor that drains its outbox (the defaults are those of
/// the queue the design replaces: batches of 10 or 30 s, 3 retries 60 s apart, then a dead letter).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InteractionsConfig {
    /// The processor drains the outbox once this many events wait ...
    pub outbox_batch_size: usize,
    /// ... or this long (ms) after the first of them arrived.
    pub outbox_batch_timeout_ms: u64,
    /// A failed event is retried this many times before it becomes a dead letter.
    pub max_retries: u32,
    /// Delay before each retry, ms.
    pub retry_delay_ms: u64,
}

impl Default for InteractionsConfig {
    fn default() -> Self {
        InteractionsConfig {
            outbox_batch_size: 10,
            outbox_batch_timeout_ms: 30_000,
            max_retries: 3,
            retry_delay_ms: 60_000,
        }
    }
}

/// The text model and the analyzer pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalysisConfig {
    /// GGUF text model for product matching, wording `Analyze`'s facts and `Ask`. If the file does not
    /// exist crow starts without it (with a warning): products are then matched lexically, analyses
    /// are worded by templates and `Ask` fails with FAILED_PRECONDITION. A file that exists but does
    /// not load stops start-up.
    pub model: Option<PathBuf>,
    /// Analyses that run at once.
    pub slots: usize,
    /// Analyses that may wait for a slot; when full, `Analyze` fails with RESOURCE_EXHAUSTED. 0 refuses
    /// every request beyond the running ones.
    pub queue: usize,
    /// Unused since analyses state computed facts instead of showing records to the model; kept so
    /// that configuration files that set it still load.
    pub max_records: usize,
    /// Most records an analysis scans for its exact figures.
    pub scan_limit: usize,
    /// For a catalog larger than this, a lexical prefilter picks the candidates the model sees.
    pub catalog_top_k: usize,
    /// CPU threads per model call.
    pub threads: i32,
    /// Context size of the text model, tokens.
    pub n_ctx: u32,
    /// Pattern events a `WatchPatterns` subscriber may fall behind before it is dropped.
    pub pattern_buffer: usize,
    /// CCTV batches analysed at once (product matching with the text model).
    pub batch_slots: usize,
    /// When more CCTV batches than this wait for a slot, the text model is skipped for the next ones:
    /// they are matched from measured evidence only (dwell, names found in descriptions), and the
    /// record says so (`data.matching.model = "skipped: backlog"`, `crow_analyzer_model_skipped_total`).
    pub max_batch_backlog: usize,
    /// Inference servers for the text tasks (product proposals, `Analyze`) instead of the local `model`:
    /// the answer's JSON Schema goes as `response_format`, and crow checks the answer anyway.
    pub remote: Option<crow_inference::remote::RemoteConfig>,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        AnalysisConfig {
            model: Some(PathBuf::from("models/gemma-3-270m-q4_k_m.gguf")),
            slots: 2,
            queue: 8,
            max_records: 30,
            scan_limit: 100_000,
            catalog_top_k: 16,
            threads: 2,
            n_ctx: 4096,
            pattern_buffer: 256,
            batch_slots: 2,
            max_batch_backlog: 16,
            remote: None,
        }
    }
}

impl PipelineConfig {
    /// Values that deserialize but cannot work, as (key path under `pipeline`, rule). [`Pipeline::start`]
    /// refuses a configuration with any; `crow config check` lists them all.
    ///
    /// [`Pipeline::start`]: crate::Pipeline::start
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut at_least_1 = |key: &'static str, value: u64| {
            if value == 0 {
                out.push((key, "must be at least 1".to_owned()));
            }
        };
        at_least_1("batch_size", self.batch_size as u64);
        at_least_1("describer_slots", self.describer_slots as u64);
        at_least_1("stream_credits", u64::from(self.stream_credits));
        at_least_1("llama.threads", self.llama.threads.max(0) as u64);
        at_least_1(
            "interactions.outbox_batch_size",
            self.interactions.outbox_batch_size as u64,
        );
        at_least_1("analysis.slots", self.analysis.slots as u64);
        at_least_1("analysis.batch_slots", self.analysis.batch_slots as u64);
        at_least_1(
            "perception.max_describes_per_track",
            u64::from(self.perception.max_describes_per_track),
        );
        at_least_1("analysis.threads", self.analysis.threads.max(0) as u64);
        at_least_1(
            "limits.max_message_bytes",
            self.limits.max_message_bytes as u64,
        );
        at_least_1("limits.max_frame_bytes", self.limits.max_frame_bytes as u64);
        at_least_1("limits.max_frame_pixels", self.limits.max_frame_pixels);
        at_least_1(
            "retention.sweep_interval_ms",
            self.retention.sweep_interval_ms,
        );
        if self
            .perception
            .detector_input
            .iter()
            .any(|v| !crow_storage::validate::DETECTOR_INPUT_SIDES.contains(v))
        {
            out.push((
                "perception.detector_input",
                "width and height must each be 32..=4096 pixels, e.g. [640, 480]".to_owned(),
            ));
        }
        if !self
            .perception
            .detector_tiles
            .iter()
            .all(|v| crow_storage::validate::DETECTOR_TILES.contains(v))
        {
            out.push((
                "perception.detector_tiles",
                "columns and rows must each be 1..=4, e.g. [2, 2]".to_owned(),
            ));
        }
        if !(0.0..=1.0).contains(&self.perception.min_score) {
            out.push(("perception.min_score", "must be between 0 and 1".to_owned()));
        }
        if self.perception.max_width_to_height.is_nan()
            || self.perception.max_width_to_height <= 0.0
        {
            out.push((
                "perception.max_width_to_height",
                "must be above 0 (a person is about 0.3-0.9 as wide as tall)".to_owned(),
            ));
        }
        if !(0.0..=self.perception.min_score).contains(&self.perception.low_score) {
            out.push((
                "perception.low_score",
                "must be between 0 and perception.min_score".to_owned(),
            ));
        }
        if !(0.0..=1.0).contains(&self.perception.movement_threshold) {
            out.push((
                "perception.movement_threshold",
                "must be between 0 and 1".to_owned(),
            ));
        }
        if !(0.0..=1.0).contains(&self.duplicate_threshold) {
            out.push(("duplicate_threshold", "must be between 0 and 1".to_owned()));
        }
        if self.describer == DescriberKind::Remote {
            if let Err(e) = self.remote.validate() {
                out.push(("remote", e));
            }
        }
        if let Some(Err(e)) = self.analysis.remote.as_ref().map(|r| r.validate()) {
            out.push(("analysis.remote", e));
        }
        let max_page = crow_storage::MAX_PAGE_SIZE as u32;
        if !(1..=max_page).contains(&self.limits.max_page_size) {
            out.push((
                "limits.max_page_size",
                format!("must be between 1 and {max_page}"),
            ));
        }
        out.extend(self.cluster.problems());
        out
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            batch_size: 5,
            batch_timeout_ms: 60_000,
            duplicate_threshold: 0.003,
            session_max_duration_ms: 3_600_000,
            describer: DescriberKind::Opencv,
            llama: LlamaConfig::default(),
            remote: Default::default(),
            describer_slots: 2,
            describer_queue: 8,
            describer_overload: Overload::Wait,
            stream_credits: 32,
            max_session_restarts: 5,
            restart_backoff_ms: 50,
            shutdown_timeout_ms: 30_000,
            interactions: InteractionsConfig::default(),
            analysis: AnalysisConfig::default(),
            limits: LimitsConfig::default(),
            retention: RetentionConfig::default(),
            perception: PerceptionConfig::default(),
            cluster: Default::default(),
            search: Default::default(),
        }
    }
}

/// Retention of optional data and the disk floor (`[pipeline.retention]`). Interactions, batches and
/// sessions are never removed by retention; keyframes and the frame tracking of closed sessions are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Keep each described frame's encoded bytes as its keyframe (evidence for the interactions).
    pub keyframes: bool,
    /// Keyframes older than this (ms since they were stored) are removed.
    pub keyframe_max_age_ms: u64,
    /// Keyframes beyond this many bytes in all are removed, oldest first.
    pub keyframe_max_bytes: u64,
    /// Frame tracking records of closed sessions created longer ago than this (ms) are removed; the
    /// sessions keep their counters.
    pub frame_tracking_max_age_ms: u64,
    /// Disk floor: when the data directory's file system has less free space than this, crow stops
    /// storing keyframes, removes the stored ones, and says so (log and `crow_disk_low`); interactions
    /// are still stored.
    pub min_free_disk_bytes: u64,
    /// How often retention runs and free space is checked, ms.
    pub sweep_interval_ms: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            keyframes: true,
            keyframe_max_age_ms: 7 * 24 * 3_600_000,
            keyframe_max_bytes: 1 << 30,
            frame_tracking_max_age_ms: 30 * 24 * 3_600_000,
            min_free_disk_bytes: 1 << 30,
            sweep_interval_ms: 60_000,
        }
    }
}
