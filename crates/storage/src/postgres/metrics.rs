//! [`MetricRecords`] in PostgreSQL: reading the metric buckets of `migrations/0005_metrics.sql`
//! (written by `add_metrics` in the transaction that stores their records).

use super::*;
use crate::metrics::{BucketWidth, StoredBucket};
use crate::records::MetricRecords;

#[async_trait]
impl MetricRecords for PgStore {
    async fn metric_buckets(
        &self,
        organization_id: &str,
        camera_id: Option<&str>,
        width: BucketWidth,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<StoredBucket>> {
        let rows = sqlx::query(
            "SELECT camera_id, start_ms, bucket::text AS bucket FROM metric_buckets
             WHERE organization_id = $1 AND ($2::text IS NULL OR camera_id = $2)
               AND width = $3 AND start_ms >= $4 AND start_ms < $5
             ORDER BY camera_id, start_ms",
        )
        .bind(organization_id)
        .bind(camera_id)
        .bind(i16::from(width.code()))
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(pg_err)?;
        rows.iter()
            .map(|row| {
                Ok(StoredBucket {
                    camera_id: row.try_get("camera_id").map_err(pg_err)?,
                    width,
                    start_ms: row.try_get("start_ms").map_err(pg_err)?,
                    bucket: column(row, "bucket")?,
                })
            })
            .collect()
    }
}
