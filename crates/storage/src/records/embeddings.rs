//! [`EmbeddingRecords`]: the vectors of interactions, for search by meaning.

use async_trait::async_trait;

use crate::embeddings::RecordVectors;
use crate::model::Interaction;
use crate::{Result, Store};

/// The vectors of interactions, for search by meaning. Implemented by sled ([`Store`], each call on a blocking thread) and PostgreSQL
/// ([`PgStore`](crate::PgStore)); part of every [`RecordStore`](super::RecordStore).
#[async_trait]
pub trait EmbeddingRecords: Send + Sync + 'static {
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

#[async_trait]
impl EmbeddingRecords for Store {
    async fn use_embedding_model(&self, model: &str) -> Result<usize> {
        let model = model.to_owned();
        self.run(move |store| Store::use_embedding_model(store, &model))
            .await
    }

    async fn embedding_backlog(&self, _model: &str, limit: usize) -> Result<Vec<Interaction>> {
        // The queue holds exactly the records the current model has not embedded.
        self.run(move |store| Ok(Store::embedding_backlog(store, limit)?.0))
            .await
    }

    async fn store_embeddings(&self, records: &[RecordVectors]) -> Result<()> {
        let records = records.to_vec();
        self.run(move |store| Store::store_embeddings(store, &records))
            .await
    }

    async fn embeddings_after(
        &self,
        model: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, RecordVectors)>> {
        let model = model.to_owned();
        self.run(move |store| Store::embeddings_after(store, &model, after, limit))
            .await
    }
}
