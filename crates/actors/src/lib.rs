//! crow's pipeline as supervised [ractor] actors.
//!
//! ```text
//! CrowSupervisor                 registry of sessions; restarts failed children with backoff
//! ├── AnalyzerActor              batch -> cctv interaction record in sled (idempotent)
//! └── IngestSessionActor (n)     one per session (camera-hour): decode -> gate -> track -> describe -> batch
//! DescriberPool                  fixed worker threads running FrameDescribers, bounded queue
//! ```
//!
//! Callers use a [`Pipeline`] handle: it opens sessions, routes frames to their session actor (following
//! hourly rollovers and actor restarts), and closes sessions. Durable state lives in [`crow_storage`], so a
//! restarted actor resumes from sled rather than from memory.

mod analyzer;
mod config;
mod describer_pool;
mod error;
mod ingest_session;
pub mod metrics_names;
mod pipeline;
mod supervisor;

pub use config::{DescriberKind, LlamaConfig, PipelineConfig};
pub use describer_pool::{
    DescribeCallback, DescribeJob, DescriberFactory, DescriberPool, PoolStats,
};
pub use error::PipelineError;
pub use ingest_session::{prepare_frame, FrameAck, FrameInput, Prepared, PreparedFrame};
pub use pipeline::{validate_id, FrameRouter, Pipeline};
