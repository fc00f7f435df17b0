//! crow's pipeline as supervised [ractor] actors.
//!
//! ```text
//! CrowSupervisor          supervisor.rs      supervises only: registry of session actors, restarts with backoff
//! ├── IngestSessionActor  ingest_session.rs  one per session (camera-hour): gate -> scene -> describe -> batch
//! │     scene.rs (detector, tracker, zones, the people gate) · journal.rs (cluster: the session's journal)
//! ├── AnalyzerActor       analyzer.rs        batch -> product matching (batch_matching.rs on the rules of
//! │                                          catalog_match.rs, product_meaning.rs) -> cctv interaction
//! │                                          (batch_record.rs; idempotent) -> PatternHub (patterns.rs);
//! │                                          an analyze node takes the cluster's batches in batch_consumer.rs
//! ├── InteractionProcessor processor.rs     outbox of CreateInteraction -> interactions; retries, dead letters
//! ├── AnalysisPool        analysis_pool.rs   Analyze requests, `slots` at once, bounded queue: facts computed
//! │                                          first (analysis_facts.rs), the text model's wording checked
//! └── RetentionActor      retention.rs       disk floor, keyframe and frame-tracking retention, storage gauges
//! DescriberPool           describer_pool.rs  fixed worker threads running FrameDescribers, bounded queue
//! ```
//!
//! How a frame flows: the one preparation stage ([`FramePreparer`], prepare.rs) validates, decodes and
//! thumbnails it into a [`FrameInput`]; a [`FrameRouter`] ([`SessionIngress`], session_ingress.rs) hands
//! that to its session's actor, which records its outcome in sled, queues it on the [`DescriberPool`] and
//! groups descriptions and track events into batches. Each session holds its own `LiveRef` (live_ref.rs)
//! to the analyzer and sends batches straight to it; the supervisor only points that reference at a
//! restarted analyzer. The analyzer writes the record and publishes it.
//!
//! Callers hold a [`Pipeline`] (pipeline.rs): it is started by startup.rs, where a table says what each
//! cluster [`Role`] starts, and hands out one handle per job — [`SessionIngress`] (sessions, frames,
//! keyframes), [`RecordServices`] (record_services.rs: events through the outbox, dead letters, catalogs,
//! cameras, analyses, patterns), [`AskService`] (ask.rs; quantity questions from the store metrics in
//! quantity.rs) and [`SemanticSearch`] (semantic.rs: embeddings
//! and search by meaning). Durable state lives in [`crow_storage`], so a restarted actor resumes from
//! sled rather than from memory.
//!
//! In a cluster ([`cluster`]) an ingest node's analyzer hands batches to NATS JetStream instead of
//! analysing them, analyze nodes consume them (and drain the shared outbox), api nodes only serve. An
//! ingest node's sessions are journaled on JetStream before they reach its sled ([`SESSION_STREAM`]), so
//! a camera can move to any ingest node and its session goes on there; `cluster::orphans` takes over
//! the sessions of ingest nodes that died.
// Tests may wait on threads and flush directly (clippy.toml forbids both in product code).
#![cfg_attr(test, allow(clippy::disallowed_methods))]

mod analysis_facts;
mod analysis_pool;
mod analyzer;
mod ask;
mod batch_consumer;
mod batch_matching;
mod batch_record;
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
mod prepare;
mod processor;
pub mod product_meaning;
pub mod quantity;
mod record_services;
mod retention;
mod scene;
pub mod semantic;
mod session_ingress;
mod startup;
mod supervisor;

pub use ask::{
    record_frames, Answer, AskService, Statement, ASK_MAX_RECORDS, CITATION_MIN_SIMILARITY,
};
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
pub use error::{log_internal, validate_id, PipelineError, Unready};
pub use events::CreateInteraction;
pub use ingest_session::{FrameAck, FrameInput};
pub use journal::{JournalError, CAMERA_BUCKET, SESSION_STREAM};
pub use patterns::{Lagged, PatternEvent, PatternHub, PatternSubscription};
pub use pipeline::{Pipeline, ShutdownReport};
pub use prepare::{FramePreparer, FrameRefusal, Prepared, PreparedFrame};
pub use product_meaning::ProductMatcher;
pub use record_services::{ProductInput, RecordServices, MAX_UPSERT_PRODUCTS};
pub use retention::{free_disk_bytes, DiskState};
pub use semantic::{SearchConfig, SemanticHit, SemanticPage, SemanticQuery, SemanticSearch};
pub use session_ingress::{FrameRouter, SessionIngress};
