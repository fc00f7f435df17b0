//! [`AnalysisRecords`] in PostgreSQL: analyses and the claims that say which node runs each.

use super::*;

#[async_trait]
impl AnalysisRecords for PgStore {
    async fn put_analysis(&self, record: &AnalysisRecord) -> Result<()> {
        let unfinished = matches!(
            record.status,
            AnalysisStatus::Queued | AnalysisStatus::Running
        );
        // An unfinished analysis stored by this process is this process's to run (see
        // `claim_analyses`).
        sqlx::query(
            "INSERT INTO analyses (id, organization_id, unfinished, record, claimed_by, claimed_until_ms)
             VALUES ($1, $2, $3, $4::json, $5, $6)
             ON CONFLICT (id) DO UPDATE SET unfinished = EXCLUDED.unfinished, record = EXCLUDED.record,
                 claimed_by = EXCLUDED.claimed_by, claimed_until_ms = EXCLUDED.claimed_until_ms",
        )
        .bind(&record.id)
        .bind(&record.organization_id)
        .bind(unfinished)
        .bind(String::from_utf8(encode(record)).unwrap_or_default())
        .bind(&self.node)
        .bind(if unfinished {
            now_ms() + ANALYSIS_CLAIM_MS
        } else {
            0
        })
        .execute(&self.pool)
        .await
        .map_err(pg_err)?;
        Ok(())
    }

    async fn get_analysis(&self, id: &str) -> Result<Option<AnalysisRecord>> {
        let record: Option<String> =
            sqlx::query_scalar("SELECT record::text FROM analyses WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(pg_err)?;
        record.map(|r| decode_json("analyses", &r)).transpose()
    }

    async fn delete_analysis(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM analyses WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    async fn claim_analyses(&self, now_ms: i64) -> Result<Vec<AnalysisRecord>> {
        // SKIP LOCKED: two processes claiming at once take different analyses instead of waiting.
        let mut rows: Vec<AnalysisRecord> = sqlx::query(
            "UPDATE analyses SET claimed_by = $2, claimed_until_ms = $3
             WHERE id IN (
                 SELECT id FROM analyses
                 WHERE unfinished AND (claimed_until_ms <= $1 OR claimed_by = $2)
                 ORDER BY id FOR UPDATE SKIP LOCKED)
             RETURNING record::text AS value",
        )
        .bind(now_ms)
        .bind(&self.node)
        .bind(now_ms.saturating_add(ANALYSIS_CLAIM_MS))
        .fetch_all(&self.pool)
        .await
        .map_err(pg_err)?
        .iter()
        .map(|r| column(r, "value"))
        .collect::<Result<_>>()?;
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(rows)
    }

    async fn renew_analysis_claims(&self, now_ms: i64) -> Result<()> {
        sqlx::query(
            "UPDATE analyses SET claimed_until_ms = $1 WHERE unfinished AND claimed_by = $2",
        )
        .bind(now_ms.saturating_add(ANALYSIS_CLAIM_MS))
        .bind(&self.node)
        .execute(&self.pool)
        .await
        .map_err(pg_err)?;
        Ok(())
    }

    fn analysis_claim_renewal(&self) -> Duration {
        Duration::from_millis(ANALYSIS_CLAIM_MS as u64 / 3)
    }
}
