//! crow's pipeline as supervised [ractor] actors.
//!
//! ```text
//! CrowSupervisor                 registry of sessions; restarts failed children with backoff
//! ├── AnalyzerActor              batch -> product matching -> cctv interaction in sled (idempotent) -> PatternHub
//! ├── InteractionProcessor       outbox of CreateInteraction -> interactions; retries, dead letters
//! ├── AnalysisPool               Analyze requests on the text model, at most `slots` at once, bounded queue
//! ├── RetentionActor             disk floor, keyframe and frame-tracking retention, storage gauges
//! └── IngestSessionActor (n)     one per session (camera-hour): decode -> gate -> track -> describe -> batch
//! DescriberPool                  fixed worker threads running FrameDescribers, bounded queue
//! ```
//!
//! Callers use a [`Pipeline`] handle: it opens sessions, routes frames to their session actor (following
//! hourly rollovers and actor restarts), and closes sessions. Durable state lives in [`crow_storage`], so a
//! restarted actor resumes from sled rather than from memory.
//!
//! In a cluster ([`cluster`]) the same tree runs per node with parts switched by its [`Role`]: an ingest
//! node's AnalyzerActor hands batches to NATS JetStream instead of analysing them, analyze nodes consume
//! them (and drain the shared outbox), api nodes only serve. An ingest node's sessions are journaled on
//! JetStream before they reach its sled ([`SESSION_STREAM`]), so a camera can move to any ingest node and
//! its session goes on there.

mod analysis;
mod analyzer;
mod ask;
mod catalog_match;
pub mod cluster;
mod config;
mod describer_pool;
mod error;
pub mod events;
mod ingest_session;
mod journal;
mod live_ref;
pub mod metrics_names;
mod patterns;
mod pipeline;
mod processor;
pub mod product_meaning;
mod retention;
mod scene;
pub mod semantic;
mod service;
mod supervisor;

pub use ask::{record_frames, Answer, Statement, ASK_MAX_RECORDS, CITATION_MIN_SIMILARITY};
pub use catalog_match::{
    description_spans, match_spans, EmbeddedTexts, Evidence, ProductFinding, RefusedProposal,
    SpanMatch,
};
pub use cluster::{Bus, ClusterConfig, Role};
pub use config::{
    AnalysisConfig, DescriberKind, DetectorChoice, InteractionsConfig, LimitsConfig, LlamaConfig,
    Overload, PerceptionConfig, PipelineConfig, RetentionConfig,
};
pub use describer_pool::{
    DescribeCallback, DescribeJob, DescriberFactory, DescriberPool, PoolStats,
};
pub use error::{log_internal, PipelineError, Unready};
pub use events::CreateInteraction;
pub use ingest_session::{prepare_frame, FrameAck, FrameInput, Prepared, PreparedFrame};
pub use journal::{JournalError, CAMERA_BUCKET, SESSION_STREAM};
pub use patterns::{Lagged, PatternEvent, PatternHub, PatternSubscription};
pub use pipeline::{validate_id, FrameRouter, Pipeline, ShutdownReport};
pub use product_meaning::ProductMatcher;
pub use retention::{free_disk_bytes, DiskState};
pub use semantic::{SearchConfig, SemanticHit, SemanticPage, SemanticQuery, SemanticSearch};
pub use service::{ProductInput, MAX_UPSERT_PRODUCTS};
