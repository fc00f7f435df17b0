//! [`EmbeddingRecords`] in PostgreSQL: the vectors of interactions.

use super::*;

#[async_trait]
impl EmbeddingRecords for PgStore {
    async fn use_embedding_model(&self, _model: &str) -> Result<usize> {
        // Rows name their model and the backlog is every interaction without a row of the current
        // one, so a change of model needs no bookkeeping here.
        Ok(0)
    }

    async fn embedding_backlog(&self, model: &str, limit: usize) -> Result<Vec<Interaction>> {
        let rows = sqlx::query(
            "SELECT record::text AS record FROM interactions i WHERE NOT EXISTS \
             (SELECT 1 FROM interaction_embeddings e WHERE e.id = i.id AND e.model = $1) LIMIT $2",
        )
        .bind(model)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(pg_err)?;
        rows.iter().map(|r| column(r, "record")).collect()
    }

    async fn store_embeddings(&self, records: &[RecordVectors]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        let models: Vec<&str> = records.iter().map(|r| r.model.as_str()).collect();
        let vectors: Vec<Vec<u8>> = records.iter().map(RecordVectors::encode).collect();
        sqlx::query(
            "INSERT INTO interaction_embeddings (id, seq, model, vectors) \
             SELECT id, nextval('interaction_embeddings_seq'), model, vectors \
             FROM UNNEST($1::text[], $2::text[], $3::bytea[]) AS t(id, model, vectors) \
             WHERE EXISTS (SELECT 1 FROM interactions i WHERE i.id = t.id) \
             ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, model = EXCLUDED.model, \
             vectors = EXCLUDED.vectors",
        )
        .bind(&ids)
        .bind(&models)
        .bind(&vectors)
        .execute(&self.pool)
        .await
        .map_err(pg_err)?;
        Ok(())
    }

    async fn embeddings_after(
        &self,
        model: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, RecordVectors)>> {
        let rows = sqlx::query(
            "SELECT seq, vectors FROM interaction_embeddings WHERE seq > $1 AND model = $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(after.min(i64::MAX as u64) as i64)
        .bind(model)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(pg_err)?;
        rows.iter()
            .map(|row| {
                let seq: i64 = row.try_get("seq").map_err(pg_err)?;
                let bytes: Vec<u8> = row.try_get("vectors").map_err(pg_err)?;
                Ok((
                    seq as u64,
                    RecordVectors::decode(b"interaction_embeddings", &bytes)?,
                ))
            })
            .collect()
    }
}
