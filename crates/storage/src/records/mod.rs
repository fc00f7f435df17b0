//! [`RecordStore`]: the shared facts of crow — interactions, the outbox of web/social events and its dead
//! letters, product catalogs, camera configurations and analyses — behind one trait, so that a single
//! process keeps them in sled ([`Store`]) and a cluster keeps them in PostgreSQL
//! ([`PgStore`](crate::PgStore)), with the same behaviour.
//!
//! What a camera stream needs while it runs (sessions, frame tracking, undescribed frames, batches,
//! keyframes) stays in the node's own sled [`Store`]: it is written per frame and read by the one node that
//! owns the session. A record derived from it has a deterministic id (session, batch index), so writing it
//! to the record store and then clearing the batch's mark in sled is exactly-once even across a crash
//! between the two: the rewrite finds the id taken and stores nothing.

use std::sync::Arc;

use async_trait::async_trait;

mod analyses;
mod cameras;
mod catalog;
mod embeddings;
mod interactions;
mod metrics;
mod outbox;

pub use analyses::AnalysisRecords;
pub use cameras::CameraRecords;
pub use catalog::CatalogRecords;
pub use embeddings::EmbeddingRecords;
pub use interactions::InteractionRecords;
pub use metrics::MetricRecords;
pub use outbox::OutboxRecords;

use crate::{Result, Store};

/// Which database a [`RecordStore`] keeps its records in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The node's embedded sled database: one process owns it.
    Sled,
    /// A PostgreSQL database, which the nodes of a cluster share.
    Postgres,
}

impl Backend {
    /// Whether the nodes of a cluster can share this store (each node sees the others' records).
    pub fn is_shared(self) -> bool {
        matches!(self, Backend::Postgres)
    }

    /// The name used in configuration (`storage.backend`), logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sled => "sled",
            Backend::Postgres => "postgres",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A shared handle to the record store in use.
pub type Records = Arc<dyn RecordStore>;

/// The store of crow's shared facts: one narrow trait per kind of record ([`InteractionRecords`],
/// [`OutboxRecords`], [`CatalogRecords`], [`CameraRecords`], [`AnalysisRecords`], [`EmbeddingRecords`],
/// [`MetricRecords`]),
/// each implemented by sled and by PostgreSQL. Every method is atomic: a change is stored whole or not
/// at all. Ids are unique keys, so repeating a write that carries the same id (a retry after a crash or
/// a timeout) stores nothing new.
#[async_trait]
pub trait RecordStore:
    InteractionRecords
    + OutboxRecords
    + CatalogRecords
    + CameraRecords
    + AnalysisRecords
    + EmbeddingRecords
    + MetricRecords
{
    /// Which database this is (whether a cluster can share it; named in logs and health).
    fn backend(&self) -> Backend;

    /// Checks that the store answers now (readiness).
    async fn ready(&self) -> Result<()>;

    /// Makes every change made so far durable (sled: one group `fsync`; PostgreSQL: a no-op, a
    /// committed transaction is durable already).
    async fn sync(&self) -> Result<()>;
}

/// sled keeps the records of a single process.
#[async_trait]
impl RecordStore for Store {
    fn backend(&self) -> Backend {
        Backend::Sled
    }

    async fn ready(&self) -> Result<()> {
        // An open sled database always answers; its I/O errors surface on the writes themselves.
        Ok(())
    }

    async fn sync(&self) -> Result<()> {
        Store::sync(self).await
    }
}
