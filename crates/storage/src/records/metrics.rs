//! [`MetricRecords`]: the store metrics buckets that `cctv` records add to as they are stored.

use async_trait::async_trait;

use crate::metrics::{BucketWidth, StoredBucket};
use crate::metrics_report::{self, MetricsQuery, MetricsReport};
use crate::{Result, Store};

/// Store metrics: buckets per camera, five minutes and one hour wide, that each new `cctv` record adds
/// its track events and occupancy to in the transaction that stores it ([`crate::metrics`]).
/// Implemented by sled ([`Store`]) and PostgreSQL ([`PgStore`](crate::PgStore)).
#[async_trait]
pub trait MetricRecords: Send + Sync + 'static {
    /// The organization's buckets of `width` starting in `from_ms..to_ms`, of one camera or of all.
    async fn metric_buckets(
        &self,
        organization_id: &str,
        camera_id: Option<&str>,
        width: BucketWidth,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<StoredBucket>>;

    /// A report: the query's groups, each summed from the stored buckets it covers.
    async fn metrics_report(
        &self,
        organization_id: &str,
        query: &MetricsQuery,
    ) -> Result<MetricsReport> {
        let groups = metrics_report::groups(query)?;
        let width = metrics_report::source_width(query, &groups);
        let (from, to) = (
            groups.first().map_or(query.from_ms, |g| g.0),
            groups.last().map_or(query.to_ms, |g| g.1),
        );
        let buckets = self
            .metric_buckets(organization_id, query.camera_id.as_deref(), width, from, to)
            .await?;
        metrics_report::build(query, &groups, width, &buckets)
    }
}

#[async_trait]
impl MetricRecords for Store {
    async fn metric_buckets(
        &self,
        organization_id: &str,
        camera_id: Option<&str>,
        width: BucketWidth,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<StoredBucket>> {
        let organization_id = organization_id.to_owned();
        let camera_id = camera_id.map(str::to_owned);
        self.run(move |store| {
            Store::metric_buckets(
                store,
                &organization_id,
                camera_id.as_deref(),
                width,
                from_ms,
                to_ms,
            )
        })
        .await
    }
}
