//! [`InteractionRecords`]: interaction records: each stored once by id, listed newest first per organization, counted per source.

use async_trait::async_trait;

use crate::model::{Interaction, InteractionFilter, Summary};
use crate::{InteractionPage, Result, Store};

/// Interaction records: each stored once by id, listed newest first per organization, counted per source. Implemented by sled ([`Store`], each call on a blocking thread) and PostgreSQL
/// ([`PgStore`](crate::PgStore)); part of every [`RecordStore`](super::RecordStore).
#[async_trait]
pub trait InteractionRecords: Send + Sync + 'static {
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
}

#[async_trait]
impl InteractionRecords for Store {
    async fn insert_interaction(&self, interaction: &Interaction) -> Result<bool> {
        let interaction = interaction.clone();
        self.run(move |store| Store::insert_interaction(store, &interaction))
            .await
    }

    async fn insert_interactions(&self, interactions: &[Interaction]) -> Result<usize> {
        let interactions = interactions.to_vec();
        self.run(move |store| Store::insert_interactions(store, &interactions))
            .await
    }

    async fn get_interaction(&self, id: &str) -> Result<Option<Interaction>> {
        let id = id.to_owned();
        self.run(move |store| Store::get_interaction(store, &id))
            .await
    }

    async fn list_interactions(
        &self,
        organization_id: &str,
        filter: &InteractionFilter,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<InteractionPage> {
        let organization_id = organization_id.to_owned();
        let filter = filter.clone();
        let page_token = page_token.map(str::to_owned);
        self.run(move |store| {
            Store::list_interactions(
                store,
                &organization_id,
                &filter,
                page_size,
                page_token.as_deref(),
            )
        })
        .await
    }

    async fn summary(&self, organization_id: &str) -> Result<Summary> {
        let organization_id = organization_id.to_owned();
        self.run(move |store| Store::summary(store, &organization_id))
            .await
    }
}
