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

use crate::embeddings::RecordVectors;
use crate::model::{
    AnalysisRecord, CameraConfig, Enqueued, Interaction, InteractionFilter, InteractionState,
    NewInteraction, OutboxEntry, Product, Summary,
};
use crate::{
    DeadLetterPage, InteractionPage, OutboxFailure, ProductPage, Result, StorageError, Store,
};

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

/// The store of crow's shared facts. Every method is atomic: a change is stored whole or not at all.
/// Ids are unique keys, so repeating a write that carries the same id (a retry after a crash or a
/// timeout) stores nothing new.
#[async_trait]
pub trait RecordStore: Send + Sync + 'static {
    /// Which database this is (whether a cluster can share it; named in logs and health).
    fn backend(&self) -> Backend;

    /// Checks that the store answers now (readiness).
    async fn ready(&self) -> Result<()>;

    /// Makes every change made so far durable (sled: one group `fsync`; PostgreSQL: a no-op, a
    /// committed transaction is durable already).
    async fn sync(&self) -> Result<()>;

    /// Stores an interaction unless one with the same id exists, with its index entries and its
    /// organization's counters. Returns `true` if it was inserted.
    async fn insert_interaction(&self, interaction: &Interaction) -> Result<bool>;

    /// Stores many interactions at once (bulk import); returns how many were new.
    async fn insert_interactions(&self, interactions: &[Interaction]) -> Result<usize>;

    /// One stored interaction by id (of any organization: callers check the owner).
    async fn get_interaction(&self, id: &str) -> Result<Option<Interaction>>;

    /// The organization's interactions that pass `filter`, newest first (timestamp, then id), one page
    /// of at most `page_size` (clamped to 1..=[`MAX_PAGE_SIZE`](crate::MAX_PAGE_SIZE)). The cursor is a
    /// position: records stored while a client pages never make it repeat or skip one.
    async fn list_interactions(
        &self,
        organization_id: &str,
        filter: &InteractionFilter,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<InteractionPage>;

    /// The organization's interactions per source, from counters kept on insert.
    async fn summary(&self, organization_id: &str) -> Result<Summary>;

    /// Stores an accepted event in the outbox, durably once [`RecordStore::sync`] returns. An
    /// idempotency key the organization used before stores nothing and returns the first id with
    /// `duplicate: true`.
    async fn enqueue_interaction(&self, record: &NewInteraction) -> Result<Enqueued>;

    /// Outbox entries due at `now_ms`, oldest first, at most `limit`.
    async fn outbox_due(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxEntry>>;

    /// Claims up to `limit` entries due at `now_ms`, oldest first, for this process to process: until
    /// `now_ms + lease_ms` no other process sharing the store claims them (PostgreSQL: several nodes
    /// drain one outbox). [`RecordStore::complete_outbox`] and [`RecordStore::fail_outbox`] end a claim; a
    /// process that died holding claims leaves them to expire, and the same process may claim its own
    /// again at once. sled belongs to one process, so its claim is [`RecordStore::outbox_due`].
    async fn claim_outbox(
        &self,
        now_ms: i64,
        limit: usize,
        lease_ms: i64,
    ) -> Result<Vec<OutboxEntry>>;

    /// How many entries wait in the outbox and the earliest time one of them is due.
    async fn outbox_status(&self) -> Result<(usize, Option<i64>)>;

    /// Stores the interaction an outbox entry became and removes the entry, together. `false` if that
    /// id was stored already (the entry is removed all the same).
    async fn complete_outbox(&self, entry: &OutboxEntry, interaction: &Interaction)
        -> Result<bool>;

    /// Records a failed attempt: the entry is retried at `retry_at_ms` or, once `max_retries` retries
    /// failed too, becomes a dead letter.
    async fn fail_outbox(
        &self,
        entry: &OutboxEntry,
        error: &str,
        max_retries: u32,
        retry_at_ms: i64,
    ) -> Result<OutboxFailure>;

    /// The organization's dead letters, oldest first (by id).
    async fn list_dead_letters(
        &self,
        organization_id: &str,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<DeadLetterPage>;

    /// Moves a dead letter back into the outbox with its attempts reset; `None` if the organization
    /// has no dead letter with that id.
    async fn retry_dead_letter(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<Option<OutboxEntry>>;

    /// Where an id of the organization stands: stored, pending or dead. Another organization's id is
    /// `None`, exactly like a missing one.
    async fn interaction_state(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<Option<InteractionState>>;

    /// Inserts or replaces products (all of one organization), together.
    async fn upsert_products(&self, products: &[Product]) -> Result<()>;

    /// Removes a product; `false` if the organization had none with that id.
    async fn delete_product(&self, organization_id: &str, id: &str) -> Result<bool>;

    /// The organization's products by id, one page at a time (the cursor is the last id).
    async fn list_products(
        &self,
        organization_id: &str,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<ProductPage>;

    /// The organization's catalog by id, at most `limit` products.
    async fn catalog(&self, organization_id: &str, limit: usize) -> Result<Vec<Product>>;

    /// Inserts or replaces a camera's configuration.
    async fn upsert_camera(&self, camera: &CameraConfig) -> Result<()>;

    /// A camera's configuration, if it has one.
    async fn get_camera(
        &self,
        organization_id: &str,
        camera_id: &str,
    ) -> Result<Option<CameraConfig>>;

    /// Removes a camera's configuration; `false` if it had none.
    async fn delete_camera(&self, organization_id: &str, camera_id: &str) -> Result<bool>;

    /// The organization's camera configurations by camera id, one page at a time.
    async fn list_cameras(
        &self,
        organization_id: &str,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<(Vec<CameraConfig>, Option<String>)>;

    /// Stores or replaces an analysis.
    async fn put_analysis(&self, record: &AnalysisRecord) -> Result<()>;

    /// One analysis by id.
    async fn get_analysis(&self, id: &str) -> Result<Option<AnalysisRecord>>;

    /// Removes an analysis (one refused before it was queued).
    async fn delete_analysis(&self, id: &str) -> Result<()>;

    /// Analyses queued or running when the process stopped, oldest first.
    async fn unfinished_analyses(&self) -> Result<Vec<AnalysisRecord>>;

    /// Claims the unfinished analyses no other live process holds, for this process to run: each until
    /// `now_ms + lease_ms`, kept by [`RecordStore::renew_analysis_claims`]. An analysis this process
    /// stores unfinished ([`RecordStore::put_analysis`]) is claimed by it already, so several processes
    /// serving `Analyze` on one PostgreSQL never run one analysis twice, and the analyses of a process
    /// that died run elsewhere once its claims expire. sled belongs to one process: every unfinished one.
    async fn claim_analyses(&self, now_ms: i64, lease_ms: i64) -> Result<Vec<AnalysisRecord>>;

    /// Extends this process's claims on its unfinished analyses to `now_ms + lease_ms`.
    async fn renew_analysis_claims(&self, now_ms: i64, lease_ms: i64) -> Result<()>;

    /// Makes `model` the embedding model whose vectors are kept; on a change, every interaction is
    /// embedded again. Returns how many interactions were queued for it.
    async fn use_embedding_model(&self, model: &str) -> Result<usize>;

    /// Up to `limit` interactions that have no vectors of `model` yet.
    async fn embedding_backlog(&self, model: &str, limit: usize) -> Result<Vec<Interaction>>;

    /// Stores the vectors of interactions (replacing older ones of the same records).
    async fn store_embeddings(&self, records: &[RecordVectors]) -> Result<()>;

    /// Stored vectors of `model` written after position `after`, in the order they were written, at
    /// most `limit`, each with its position (pass the last one back to continue). PostgreSQL positions
    /// of concurrent writers may become visible out of order, so readers that must not miss one re-read
    /// a margin below their last position.
    async fn embeddings_after(
        &self,
        model: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, RecordVectors)>>;
}

/// sled keeps the records of a single process: every call runs the [`Store`]'s own transaction.
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

    async fn insert_interaction(&self, interaction: &Interaction) -> Result<bool> {
        Store::insert_interaction(self, interaction)
    }

    async fn insert_interactions(&self, interactions: &[Interaction]) -> Result<usize> {
        Store::insert_interactions(self, interactions)
    }

    async fn get_interaction(&self, id: &str) -> Result<Option<Interaction>> {
        Store::get_interaction(self, id)
    }

    async fn list_interactions(
        &self,
        organization_id: &str,
        filter: &InteractionFilter,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<InteractionPage> {
        // A filtered page may read many index entries: off the async workers.
        let (store, org, filter, token) = (
            self.clone(),
            organization_id.to_owned(),
            filter.clone(),
            page_token.map(str::to_owned),
        );
        tokio::task::spawn_blocking(move || {
            Store::list_interactions(&store, &org, &filter, page_size, token.as_deref())
        })
        .await
        .map_err(|e| StorageError::Task(format!("listing: {e}")))?
    }

    async fn summary(&self, organization_id: &str) -> Result<Summary> {
        Store::summary(self, organization_id)
    }

    async fn enqueue_interaction(&self, record: &NewInteraction) -> Result<Enqueued> {
        Store::enqueue_interaction(self, record)
    }

    async fn outbox_due(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxEntry>> {
        Store::outbox_due(self, now_ms, limit)
    }

    async fn claim_outbox(
        &self,
        now_ms: i64,
        limit: usize,
        _lease_ms: i64,
    ) -> Result<Vec<OutboxEntry>> {
        Store::outbox_due(self, now_ms, limit)
    }

    async fn outbox_status(&self) -> Result<(usize, Option<i64>)> {
        Store::outbox_status(self)
    }

    async fn complete_outbox(
        &self,
        entry: &OutboxEntry,
        interaction: &Interaction,
    ) -> Result<bool> {
        Store::complete_outbox(self, entry, interaction)
    }

    async fn fail_outbox(
        &self,
        entry: &OutboxEntry,
        error: &str,
        max_retries: u32,
        retry_at_ms: i64,
    ) -> Result<OutboxFailure> {
        Store::fail_outbox(self, entry, error, max_retries, retry_at_ms)
    }

    async fn list_dead_letters(
        &self,
        organization_id: &str,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<DeadLetterPage> {
        Store::list_dead_letters(self, organization_id, page_size, page_token)
    }

    async fn retry_dead_letter(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<Option<OutboxEntry>> {
        Store::retry_dead_letter(self, organization_id, id)
    }

    async fn interaction_state(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<Option<InteractionState>> {
        Store::interaction_state(self, organization_id, id)
    }

    async fn upsert_products(&self, products: &[Product]) -> Result<()> {
        Store::upsert_products(self, products)
    }

    async fn delete_product(&self, organization_id: &str, id: &str) -> Result<bool> {
        Store::delete_product(self, organization_id, id)
    }

    async fn list_products(
        &self,
        organization_id: &str,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<ProductPage> {
        Store::list_products(self, organization_id, page_size, page_token)
    }

    async fn catalog(&self, organization_id: &str, limit: usize) -> Result<Vec<Product>> {
        Store::catalog(self, organization_id, limit)
    }

    async fn upsert_camera(&self, camera: &CameraConfig) -> Result<()> {
        Store::upsert_camera(self, camera)
    }

    async fn get_camera(
        &self,
        organization_id: &str,
        camera_id: &str,
    ) -> Result<Option<CameraConfig>> {
        Store::get_camera(self, organization_id, camera_id)
    }

    async fn delete_camera(&self, organization_id: &str, camera_id: &str) -> Result<bool> {
        Store::delete_camera(self, organization_id, camera_id)
    }

    async fn list_cameras(
        &self,
        organization_id: &str,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<(Vec<CameraConfig>, Option<String>)> {
        Store::list_cameras(self, organization_id, page_size, page_token)
    }

    async fn put_analysis(&self, record: &AnalysisRecord) -> Result<()> {
        Store::put_analysis(self, record)
    }

    async fn get_analysis(&self, id: &str) -> Result<Option<AnalysisRecord>> {
        Store::get_analysis(self, id)
    }

    async fn delete_analysis(&self, id: &str) -> Result<()> {
        Store::delete_analysis(self, id)
    }

    async fn unfinished_analyses(&self) -> Result<Vec<AnalysisRecord>> {
        Store::unfinished_analyses(self)
    }

    async fn claim_analyses(&self, _now_ms: i64, _lease_ms: i64) -> Result<Vec<AnalysisRecord>> {
        Store::unfinished_analyses(self)
    }

    async fn renew_analysis_claims(&self, _now_ms: i64, _lease_ms: i64) -> Result<()> {
        Ok(())
    }

    async fn use_embedding_model(&self, model: &str) -> Result<usize> {
        let (store, model) = (self.clone(), model.to_owned());
        blocking(move || Store::use_embedding_model(&store, &model)).await
    }

    async fn embedding_backlog(&self, _model: &str, limit: usize) -> Result<Vec<Interaction>> {
        // The queue holds exactly the records the current model has not embedded.
        let store = self.clone();
        blocking(move || Ok(Store::embedding_backlog(&store, limit)?.0)).await
    }

    async fn store_embeddings(&self, records: &[RecordVectors]) -> Result<()> {
        let (store, records) = (self.clone(), records.to_vec());
        blocking(move || Store::store_embeddings(&store, &records)).await
    }

    async fn embeddings_after(
        &self,
        model: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, RecordVectors)>> {
        let (store, model) = (self.clone(), model.to_owned());
        blocking(move || Store::embeddings_after(&store, &model, after, limit)).await
    }
}

/// Runs a sled call that may read or write many entries off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Task(e.to_string()))?
}
