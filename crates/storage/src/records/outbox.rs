//! [`OutboxRecords`]: the outbox of accepted web/social events: claims, retries and dead letters.

use async_trait::async_trait;

use crate::model::{Enqueued, Interaction, InteractionState, NewInteraction, OutboxEntry};
use crate::{DeadLetterPage, OutboxFailure, Result, Store};

/// The outbox of accepted web/social events: claims, retries and dead letters. Implemented by sled ([`Store`], each call on a blocking thread) and PostgreSQL
/// ([`PgStore`](crate::PgStore)); part of every [`RecordStore`](super::RecordStore).
#[async_trait]
pub trait OutboxRecords: Send + Sync + 'static {
    /// Stores an accepted event in the outbox, durably once [`RecordStore::sync`](super::RecordStore::sync) returns. An
    /// idempotency key the organization used before stores nothing and returns the first id with
    /// `duplicate: true`.
    async fn enqueue_interaction(&self, record: &NewInteraction) -> Result<Enqueued>;

    /// Outbox entries due at `now_ms`, oldest first, at most `limit`, claiming none: what an operator
    /// inspects (processing takes entries with [`OutboxRecords::claim_outbox`]).
    async fn outbox_due(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxEntry>>;

    /// Claims up to `limit` entries due at `now_ms`, oldest first, for this process to process: for
    /// the store's claim lease no other process sharing the store claims them (PostgreSQL: several nodes
    /// drain one outbox). [`OutboxRecords::complete_outbox`] and [`OutboxRecords::fail_outbox`] end a claim; a
    /// process that died holding claims leaves them to expire, and the same process may claim its own
    /// again at once. sled belongs to one process, so its claim is every due entry.
    async fn claim_outbox(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxEntry>>;

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
}

#[async_trait]
impl OutboxRecords for Store {
    async fn enqueue_interaction(&self, record: &NewInteraction) -> Result<Enqueued> {
        let record = record.clone();
        self.run(move |store| Store::enqueue_interaction(store, &record))
            .await
    }

    async fn outbox_due(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxEntry>> {
        self.run(move |store| Store::outbox_due(store, now_ms, limit))
            .await
    }

    async fn claim_outbox(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxEntry>> {
        // One process owns sled: its claim is every due entry.
        OutboxRecords::outbox_due(self, now_ms, limit).await
    }

    async fn outbox_status(&self) -> Result<(usize, Option<i64>)> {
        self.run(Store::outbox_status).await
    }

    async fn complete_outbox(
        &self,
        entry: &OutboxEntry,
        interaction: &Interaction,
    ) -> Result<bool> {
        let entry = entry.clone();
        let interaction = interaction.clone();
        self.run(move |store| Store::complete_outbox(store, &entry, &interaction))
            .await
    }

    async fn fail_outbox(
        &self,
        entry: &OutboxEntry,
        error: &str,
        max_retries: u32,
        retry_at_ms: i64,
    ) -> Result<OutboxFailure> {
        let entry = entry.clone();
        let error = error.to_owned();
        self.run(move |store| Store::fail_outbox(store, &entry, &error, max_retries, retry_at_ms))
            .await
    }

    async fn list_dead_letters(
        &self,
        organization_id: &str,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<DeadLetterPage> {
        let organization_id = organization_id.to_owned();
        let page_token = page_token.map(str::to_owned);
        self.run(move |store| {
            Store::list_dead_letters(store, &organization_id, page_size, page_token.as_deref())
        })
        .await
    }

    async fn retry_dead_letter(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<Option<OutboxEntry>> {
        let organization_id = organization_id.to_owned();
        let id = id.to_owned();
        self.run(move |store| Store::retry_dead_letter(store, &organization_id, &id))
            .await
    }

    async fn interaction_state(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<Option<InteractionState>> {
        let organization_id = organization_id.to_owned();
        let id = id.to_owned();
        self.run(move |store| Store::interaction_state(store, &organization_id, &id))
            .await
    }
}
