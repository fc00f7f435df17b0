//! crow's durable state, kept in [sled] — and, for a cluster, the shared records in PostgreSQL
//! ([`PgStore`]) behind the same [`RecordStore`] trait.
//!
//! Everything that must survive a crash lives here, and every multi-record change is one sled transaction, so a
//! restarted process sees either all of a change or none of it:
//!
//! - [`Interaction`]s, newest-first per organization, with secondary indexes per source and per search word
//!   (a filtered page is O(page)) and per-organization source counters maintained on insert
//!   ([`Store::summary`] is O(1));
//! - the outbox of accepted `CreateInteraction` events, their idempotency keys and dead letters;
//! - product catalogs and analysis records;
//! - [`SessionRecord`]s (one per camera-hour) and per-frame [`FrameRecord`]s, so a resent frame is answered from
//!   its record instead of being processed twice;
//! - frames accepted but not yet described (their encoded bytes) and descriptions not yet batched, so acked work is
//!   not lost in a crash;
//! - sentence-embedding vectors of interactions, made off the ingest path from a queue filled on insert
//!   ([`embeddings`]);
//! - keyframes (the bytes of described frames, optional evidence) and frame tracking, both pruned by
//!   retention limits without touching interactions;
//! - [`BatchRecord`]s keyed by `(session, batch_index)`, so writing a batch twice stores it once, and the
//!   interaction derived from a batch has a deterministic id.
//!
//! Where each part lives:
//!
//! ```text
//! store.rs       Store: the node's sled (trees, group commit, Store::run for async callers) and its
//!                sessions, frames, undescribed frames, batches, keyframes
//! interactions.rs, outbox.rs, catalog.rs, cameras.rs, analyses.rs, embeddings.rs
//!                the sled transactions of each kind of record (Store's own methods)
//! records/       RecordStore = one narrow trait per kind (InteractionRecords, OutboxRecords,
//!                CatalogRecords, CameraRecords, AnalysisRecords, EmbeddingRecords), each
//!                implemented for Store (every call on a blocking thread) and for PgStore
//! postgres.rs    PgStore + migrations/: the same records in PostgreSQL, its claim leases inside
//! model.rs (the records), keys.rs (sled key layouts), text.rs (search words), validate.rs (input
//! rules), retention.rs (pruning), verify.rs (offline integrity check), vector_index.rs (exact scan
//! and HNSW per organization)
//! ```
//!
//! The crate knows nothing about gRPC, actors or models.
// Tests may wait on threads and flush directly (clippy.toml forbids both in product code).
#![cfg_attr(test, allow(clippy::disallowed_methods))]

mod analyses;
mod cameras;
mod catalog;
pub mod embeddings;
mod error;
mod identity;
mod interactions;
mod keys;
pub mod metrics;
pub mod metrics_report;
mod model;
mod outbox;
mod postgres;
mod records;
mod retention;
mod store;
pub mod text;
pub mod validate;
pub mod vector_index;
mod verify;

pub use catalog::ProductPage;
pub use embeddings::RecordVectors;
pub use error::StorageError;
pub use interactions::{validate_filter, InteractionPage, MAX_PAGE_SIZE, MAX_QUERY_WORDS};
pub use model::{
    default_min_dwell_ms, AnalysisFact, AnalysisPhrasing, AnalysisRecord, AnalysisResult,
    AnalysisStatement, AnalysisStats, AnalysisStatus, BatchRecord, CameraConfig, DeadLetter,
    Enqueued, FactKind, FrameAnalysis, FrameDigest, FrameOutcome, FrameRecord, Interaction,
    InteractionFilter, InteractionState, LineConfig, NewInteraction, OccupancySample, OutboxEntry,
    Product, SessionCounters, SessionRecord, SessionStatus, SourceType, Summary, TrackEvent,
    TrackEventKind, ZoneConfig,
};
pub use outbox::{DeadLetterPage, OutboxFailure};
pub use postgres::{PgOptions, PgStore, ANALYSIS_CLAIM_MS, OUTBOX_CLAIM_MS};
pub use records::{
    AnalysisRecords, Backend, CameraRecords, CatalogRecords, EmbeddingRecords, InteractionRecords,
    MetricRecords, OutboxRecords, RecordStore, Records,
};
pub use retention::Pruned;
pub use store::{FrameWrite, Store};
pub use verify::IntegrityReport;

/// Result alias for storage operations.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
