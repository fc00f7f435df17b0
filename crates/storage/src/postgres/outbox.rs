//! [`OutboxRecords`] in PostgreSQL: the outbox, its claims, retries and dead letters.

use super::*;

#[async_trait]
impl OutboxRecords for PgStore {
    async fn enqueue_interaction(&self, record: &NewInteraction) -> Result<Enqueued> {
        let mut tx = self.pool.begin().await.map_err(pg_err)?;
        if let Some(key) = &record.idempotency_key {
            let claimed = sqlx::query(
                "INSERT INTO idempotency_keys (organization_id, key, id) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
            )
            .bind(&record.organization_id)
            .bind(key)
            .bind(&record.id)
            .execute(&mut *tx)
            .await
            .map_err(pg_err)?
            .rows_affected()
                == 1;
            if !claimed {
                let first: String = sqlx::query_scalar(
                    "SELECT id FROM idempotency_keys WHERE organization_id = $1 AND key = $2",
                )
                .bind(&record.organization_id)
                .bind(key)
                .fetch_one(&mut *tx)
                .await
                .map_err(pg_err)?;
                return Ok(Enqueued {
                    id: first,
                    duplicate: true,
                });
            }
        }
        sqlx::query(
            "INSERT INTO outbox (id, organization_id, attempts, next_attempt_ms, record)
             VALUES ($1, $2, 0, $3, $4::json)",
        )
        .bind(&record.id)
        .bind(&record.organization_id)
        .bind(record.received_at_ms)
        .bind(String::from_utf8(encode(record)).unwrap_or_default())
        .execute(&mut *tx)
        .await
        .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        Ok(Enqueued {
            id: record.id.clone(),
            duplicate: false,
        })
    }

    async fn outbox_due(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxEntry>> {
        let rows = sqlx::query(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE next_attempt_ms <= $1 ORDER BY seq LIMIT $2"
        ))
        .bind(now_ms)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(pg_err)?;
        rows.iter().map(outbox_entry).collect()
    }

    async fn claim_outbox(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxEntry>> {
        // SKIP LOCKED: two processes claiming at once take different entries instead of waiting.
        let rows = sqlx::query(&format!(
            "UPDATE outbox SET claimed_by = $3, claimed_until_ms = $4
             WHERE seq IN (
                 SELECT seq FROM outbox
                 WHERE next_attempt_ms <= $1 AND (claimed_until_ms <= $1 OR claimed_by = $3)
                 ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED)
             RETURNING {OUTBOX_COLUMNS}"
        ))
        .bind(now_ms)
        .bind(limit as i64)
        .bind(&self.node)
        .bind(now_ms.saturating_add(OUTBOX_CLAIM_MS))
        .fetch_all(&self.pool)
        .await
        .map_err(pg_err)?;
        let mut entries = rows.iter().map(outbox_entry).collect::<Result<Vec<_>>>()?;
        entries.sort_by_key(|e| e.seq);
        Ok(entries)
    }

    async fn outbox_status(&self) -> Result<(usize, Option<i64>)> {
        // An entry another process has claimed is due, for this one, when the claim ends.
        let row = sqlx::query(
            "SELECT count(*) AS n, min(greatest(next_attempt_ms, claimed_until_ms)) AS next FROM outbox",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(pg_err)?;
        let n: i64 = row.try_get("n").map_err(pg_err)?;
        Ok((n as usize, row.try_get("next").map_err(pg_err)?))
    }

    async fn complete_outbox(
        &self,
        entry: &OutboxEntry,
        interaction: &Interaction,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(pg_err)?;
        let inserted = insert_rows(&mut tx, std::slice::from_ref(interaction)).await? == 1;
        sqlx::query("DELETE FROM outbox WHERE seq = $1")
            .bind(entry.seq as i64)
            .execute(&mut *tx)
            .await
            .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        Ok(inserted)
    }

    async fn fail_outbox(
        &self,
        entry: &OutboxEntry,
        error: &str,
        max_retries: u32,
        retry_at_ms: i64,
    ) -> Result<OutboxFailure> {
        let mut tx = self.pool.begin().await.map_err(pg_err)?;
        let row = sqlx::query(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE seq = $1 FOR UPDATE"
        ))
        .bind(entry.seq as i64)
        .fetch_optional(&mut *tx)
        .await
        .map_err(pg_err)?;
        let Some(row) = row else {
            return Ok(OutboxFailure::Gone);
        };
        let current = outbox_entry(&row)?;
        let attempts = current.attempts + 1;
        let outcome = if attempts > max_retries {
            let letter = DeadLetter {
                attempts,
                last_error: error.to_owned(),
                dead_at_ms: now_ms(),
                record: current.record,
            };
            sqlx::query("DELETE FROM outbox WHERE seq = $1")
                .bind(entry.seq as i64)
                .execute(&mut *tx)
                .await
                .map_err(pg_err)?;
            sqlx::query(
                "INSERT INTO dead_letters (organization_id, id, letter) VALUES ($1, $2, $3::json)
                 ON CONFLICT (organization_id, id) DO UPDATE SET letter = EXCLUDED.letter",
            )
            .bind(&letter.record.organization_id)
            .bind(&letter.record.id)
            .bind(String::from_utf8(encode(&letter)).unwrap_or_default())
            .execute(&mut *tx)
            .await
            .map_err(pg_err)?;
            OutboxFailure::DeadLettered { attempts }
        } else {
            sqlx::query(
                "UPDATE outbox SET attempts = $2, last_error = $3, next_attempt_ms = $4,
                     claimed_by = NULL, claimed_until_ms = 0
                 WHERE seq = $1",
            )
            .bind(entry.seq as i64)
            .bind(attempts as i32)
            .bind(error)
            .bind(retry_at_ms)
            .execute(&mut *tx)
            .await
            .map_err(pg_err)?;
            OutboxFailure::Retry { attempts }
        };
        tx.commit().await.map_err(pg_err)?;
        Ok(outcome)
    }

    async fn list_dead_letters(
        &self,
        organization_id: &str,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<DeadLetterPage> {
        let (dead_letters, next_page_token) = self
            .page_by(
                "SELECT letter::text AS value FROM dead_letters
                 WHERE organization_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                organization_id,
                page_size,
                page_token,
                |d: &DeadLetter| &d.record.id,
            )
            .await?;
        Ok(DeadLetterPage {
            dead_letters,
            next_page_token,
        })
    }

    async fn retry_dead_letter(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<Option<OutboxEntry>> {
        let mut tx = self.pool.begin().await.map_err(pg_err)?;
        let letter: Option<String> = sqlx::query_scalar(
            "DELETE FROM dead_letters WHERE organization_id = $1 AND id = $2
             RETURNING letter::text",
        )
        .bind(organization_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(pg_err)?;
        let Some(letter) = letter else {
            return Ok(None);
        };
        let letter: DeadLetter = decode_json("dead_letters", &letter)?;
        let next_attempt_ms = now_ms();
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO outbox (id, organization_id, attempts, next_attempt_ms, record)
             VALUES ($1, $2, 0, $3, $4::json) RETURNING seq",
        )
        .bind(&letter.record.id)
        .bind(organization_id)
        .bind(next_attempt_ms)
        .bind(String::from_utf8(encode(&letter.record)).unwrap_or_default())
        .fetch_one(&mut *tx)
        .await
        .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        Ok(Some(OutboxEntry {
            seq: seq as u64,
            record: letter.record,
            attempts: 0,
            next_attempt_ms,
            last_error: None,
        }))
    }

    async fn interaction_state(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<Option<InteractionState>> {
        // The three lookups read one snapshot: an event that moves from the outbox to the records (or
        // to the dead letters) between two separate reads would be found in neither.
        let mut tx = self.pool.begin().await.map_err(pg_err)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(pg_err)?;
        let record: Option<String> =
            sqlx::query_scalar("SELECT record::text FROM interactions WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(pg_err)?;
        if let Some(record) = record {
            let i: Interaction = decode_json("interactions", &record)?;
            return Ok(
                (i.organization_id == organization_id).then_some(InteractionState::Stored(i))
            );
        }
        let pending = sqlx::query(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(pg_err)?;
        if let Some(row) = pending {
            let entry = outbox_entry(&row)?;
            return Ok((entry.record.organization_id == organization_id)
                .then_some(InteractionState::Pending(entry)));
        }
        let letter: Option<String> = sqlx::query_scalar(
            "SELECT letter::text FROM dead_letters WHERE organization_id = $1 AND id = $2",
        )
        .bind(organization_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(pg_err)?;
        letter
            .map(|l| decode_json("dead_letters", &l).map(InteractionState::DeadLetter))
            .transpose()
    }
}
