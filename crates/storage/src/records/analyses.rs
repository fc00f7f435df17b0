//! [`AnalysisRecords`]: analyses of an organization's records, and which process runs each.

use async_trait::async_trait;

use crate::model::AnalysisRecord;
use crate::{Result, Store};

/// Analyses of an organization's records, and which process runs each. Implemented by sled ([`Store`], each call on a blocking thread) and PostgreSQL
/// ([`PgStore`](crate::PgStore)); part of every [`RecordStore`](super::RecordStore).
#[async_trait]
pub trait AnalysisRecords: Send + Sync + 'static {
    /// Stores or replaces an analysis.
    async fn put_analysis(&self, record: &AnalysisRecord) -> Result<()>;

    /// One analysis by id.
    async fn get_analysis(&self, id: &str) -> Result<Option<AnalysisRecord>>;

    /// Removes an analysis (one refused before it was queued).
    async fn delete_analysis(&self, id: &str) -> Result<()>;

    /// Claims the unfinished analyses no other live process holds, for this process to run: each for the store's
    /// claim lease, kept by [`AnalysisRecords::renew_analysis_claims`]. An analysis this process
    /// stores unfinished ([`AnalysisRecords::put_analysis`]) is claimed by it already, so several processes
    /// serving `Analyze` on one PostgreSQL never run one analysis twice, and the analyses of a process
    /// that died run elsewhere once its claims expire. sled belongs to one process: every unfinished one.
    async fn claim_analyses(&self, now_ms: i64) -> Result<Vec<AnalysisRecord>>;

    /// Extends this process's claims on its unfinished analyses by the store's claim lease from `now_ms`.
    async fn renew_analysis_claims(&self, now_ms: i64) -> Result<()>;

    /// How often a process running analyses renews its claims and looks for analyses it may take
    /// (well inside the claim lease).
    fn analysis_claim_renewal(&self) -> std::time::Duration;
}

#[async_trait]
impl AnalysisRecords for Store {
    async fn put_analysis(&self, record: &AnalysisRecord) -> Result<()> {
        let record = record.clone();
        self.run(move |store| Store::put_analysis(store, &record))
            .await
    }

    async fn get_analysis(&self, id: &str) -> Result<Option<AnalysisRecord>> {
        let id = id.to_owned();
        self.run(move |store| Store::get_analysis(store, &id)).await
    }

    async fn delete_analysis(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.run(move |store| Store::delete_analysis(store, &id))
            .await
    }

    async fn claim_analyses(&self, _now_ms: i64) -> Result<Vec<AnalysisRecord>> {
        self.run(Store::unfinished_analyses).await
    }

    async fn renew_analysis_claims(&self, _now_ms: i64) -> Result<()> {
        // One process owns sled: its claims never lapse.
        Ok(())
    }

    fn analysis_claim_renewal(&self) -> std::time::Duration {
        // One process owns sled; it still looks every 20 s for an analysis stored while its pool
        // was restarting.
        std::time::Duration::from_secs(20)
    }
}
