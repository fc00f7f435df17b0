//! [`PgStore`]: the [`RecordStore`] of a cluster, in PostgreSQL (15 or newer).
//!
//! Tables (`migrations/`): `interactions` (newest first per organization through the generated
//! `newest_first = -timestamp_ms`, with indexes per time, per source and a GIN index on the search words),
//! `interaction_counts` (kept by the inserting statement itself, so the summary is O(1)), `outbox`,
//! `idempotency_keys`, `dead_letters`, `products`, `cameras`, `analyses`. Records are stored as the same
//! JSON sled stores (a `json` column keeps the text as written), so both stores return identical records.
//!
//! Exactly-once rests on unique keys: an interaction's id is its primary key and every insert is
//! `ON CONFLICT DO NOTHING`, so a retried write stores nothing new and counts nothing twice. Several
//! statements that belong together (an outbox entry and the interaction it became) are one transaction.
//! Connection failures (the server restarting, the pool exhausted) are [`StorageError::Unavailable`], which
//! callers report as retryable; nothing is acknowledged before its transaction committed.

use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Postgres, QueryBuilder, Row};

use crate::embeddings::RecordVectors;
use crate::interactions::{checked_words, cursor_position, page_cursor};
use crate::keys;
use crate::model::{
    AnalysisRecord, AnalysisStatus, CameraConfig, DeadLetter, Enqueued, Interaction,
    InteractionFilter, InteractionState, NewInteraction, OutboxEntry, Product, Summary,
};
use crate::records::RecordStore;
use crate::store::encode;
use crate::text::interaction_words;
use crate::{
    now_ms, DeadLetterPage, InteractionPage, OutboxFailure, ProductPage, Result, StorageError,
    MAX_PAGE_SIZE,
};

/// The schema, in order; each runs once, in its own transaction, recorded in `crow_schema_migrations`.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "records", include_str!("../migrations/0001_records.sql")),
    (
        2,
        "outbox claims",
        include_str!("../migrations/0002_outbox_claims.sql"),
    ),
    (
        3,
        "analysis claims",
        include_str!("../migrations/0003_analysis_claims.sql"),
    ),
    (
        4,
        "embeddings",
        include_str!("../migrations/0004_embeddings.sql"),
    ),
];

/// How long an analysis stored unfinished by a process stays its own before it must renew the claim
/// ([`RecordStore::renew_analysis_claims`]).
pub const ANALYSIS_CLAIM_MS: i64 = 60_000;

/// Any constant: the advisory lock that makes nodes starting together migrate one after another.
const MIGRATION_LOCK: i64 = 0x6372_6f77_0001;

/// How to reach PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// A libpq-style URL, e.g. `postgres://crow:secret@db.internal:5432/crow` (a Unix socket:
    /// `postgres:///crow?host=/run/postgresql`).
    pub url: String,
    /// Connections this node keeps at most.
    pub max_connections: u32,
    /// How long a call waits for a free connection (or a new one) before it fails as unavailable.
    pub acquire_timeout: Duration,
}

impl PgOptions {
    /// Ten connections, five seconds' wait.
    pub fn new(url: impl Into<String>) -> PgOptions {
        PgOptions {
            url: url.into(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// crow's records in PostgreSQL. Cheap to clone (a connection pool).
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    /// This process's name on its outbox claims (random per connect).
    node: String,
}

/// Maps a driver error: the server going away is retryable, anything else is a failure to log.
fn pg_err(e: sqlx::Error) -> StorageError {
    let unavailable = match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // Class 08: connection exceptions; 57P0x: the server is shutting down or starting; 53300: too
        // many connections.
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c == "53300"),
        _ => false,
    };
    if unavailable {
        StorageError::Unavailable(e.to_string())
    } else {
        StorageError::Database(e.to_string())
    }
}

fn decode_json<T: DeserializeOwned>(what: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StorageError::corrupt(what.as_bytes(), e))
}

fn column<T: DeserializeOwned>(row: &PgRow, name: &str) -> Result<T> {
    let text: String = row.try_get(name).map_err(pg_err)?;
    decode_json(name, &text)
}

fn outbox_entry(row: &PgRow) -> Result<OutboxEntry> {
    let seq: i64 = row.try_get("seq").map_err(pg_err)?;
    let attempts: i32 = row.try_get("attempts").map_err(pg_err)?;
    Ok(OutboxEntry {
        seq: seq as u64,
        record: column(row, "record")?,
        attempts: attempts as u32,
        next_attempt_ms: row.try_get("next_attempt_ms").map_err(pg_err)?,
        last_error: row.try_get("last_error").map_err(pg_err)?,
    })
}

const OUTBOX_COLUMNS: &str = "seq, attempts, next_attempt_ms, last_error, record::text AS record";

/// Inserts interactions that are new (by id) and counts them, in one statement; returns how many were new.
async fn insert_rows<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    interactions: &[Interaction],
) -> Result<u64> {
    if interactions.is_empty() {
        return Ok(0);
    }
    let n = interactions.len();
    let (mut ids, mut orgs, mut sources, mut stamps, mut words, mut records) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for i in interactions {
        ids.push(i.id.as_str());
        orgs.push(i.organization_id.as_str());
        sources.push(i.source_type.as_str());
        stamps.push(i.timestamp_ms);
        // Search words are runs of letters and digits: a space joins them unambiguously.
        words.push(
            interaction_words(i)
                .into_iter()
                .collect::<Vec<_>>()
                .join(" "),
        );
        records.push(String::from_utf8(encode(i)).unwrap_or_default());
    }
    let inserted: i64 = sqlx::query_scalar(
        "WITH ins AS (
             INSERT INTO interactions (id, organization_id, source_type, timestamp_ms, words, record)
             SELECT id, org, source, ts, string_to_array(w, ' '), r::json
             FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[])
                  AS t(id, org, source, ts, w, r)
             ON CONFLICT (id) DO NOTHING
             RETURNING organization_id, source_type
         ), counted AS (
             INSERT INTO interaction_counts (organization_id, source_type, n)
             SELECT organization_id, source_type, count(*) FROM ins GROUP BY 1, 2
             ON CONFLICT (organization_id, source_type)
             DO UPDATE SET n = interaction_counts.n + EXCLUDED.n
         )
         SELECT count(*) FROM ins",
    )
    .bind(&ids)
    .bind(&orgs)
    .bind(&sources)
    .bind(&stamps)
    .bind(&words)
    .bind(&records)
    .fetch_one(executor)
    .await
    .map_err(pg_err)?;
    Ok(inserted as u64)
}

impl PgStore {
    /// Connects and brings the schema up to date (see `migrations/`).
    pub async fn connect(options: &PgOptions) -> Result<PgStore> {
        let connect: PgConnectOptions = options
            .url
            .parse()
            .map_err(|e| StorageError::Config(format!("postgres url: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(pg_err)?;
        let store = PgStore {
            pool,
            node: uuid::Uuid::new_v4().to_string(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the migrations this build knows and the database lacks, one transaction each, under an
    /// advisory lock (nodes that start together take turns). Returns how many were applied.
    pub async fn migrate(&self) -> Result<usize> {
        let mut tx = self.pool.begin().await.map_err(pg_err)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(pg_err)?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS crow_schema_migrations (
                 version integer PRIMARY KEY,
                 name text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .execute(&mut *tx)
        .await
        .map_err(pg_err)?;
        let applied: Vec<i32> = sqlx::query_scalar("SELECT version FROM crow_schema_migrations")
            .fetch_all(&mut *tx)
            .await
            .map_err(pg_err)?;
        let mut n = 0;
        for (version, name, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(pg_err)?;
            sqlx::query("INSERT INTO crow_schema_migrations (version, name) VALUES ($1, $2)")
                .bind(version)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(pg_err)?;
            tracing::info!(version, name, "postgres schema migrated");
            n += 1;
        }
        if let Some(newer) = applied
            .iter()
            .max()
            .filter(|v| **v > MIGRATIONS.len() as i32)
        {
            tracing::warn!(
                version = newer,
                "the database schema is newer than this build knows; running anyway"
            );
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(n)
    }

    /// Refreshes the planner's statistics of every table, as autovacuum does in time (call it after
    /// a bulk import, before measuring).
    pub async fn analyze(&self) -> Result<()> {
        sqlx::query("ANALYZE")
            .execute(&self.pool)
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    /// The connection pool (for tests and tools that need plain SQL).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn page_by<T: DeserializeOwned>(
        &self,
        sql: &str,
        organization_id: &str,
        page_size: usize,
        after: Option<&str>,
        id_of: impl Fn(&T) -> &str,
    ) -> Result<(Vec<T>, Option<String>)> {
        let page_size = page_size.max(1);
        let rows = sqlx::query(sql)
            .bind(organization_id)
            .bind(after.unwrap_or(""))
            .bind(page_size as i64 + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(pg_err)?;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows.iter().take(page_size) {
            items.push(column(row, "value")?);
        }
        let next = (rows.len() > page_size)
            .then(|| items.last().map(|t| id_of(t).to_owned()))
            .flatten();
        Ok((items, next))
    }
}

#[async_trait]
impl RecordStore for PgStore {
    fn backend(&self) -> crate::Backend {
        crate::Backend::Postgres
    }

    async fn ready(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    async fn sync(&self) -> Result<()> {
        // Every write is a committed transaction, durable with synchronous_commit (the default).
        Ok(())
    }

    async fn insert_interaction(&self, interaction: &Interaction) -> Result<bool> {
        Ok(insert_rows(&self.pool, std::slice::from_ref(interaction)).await? == 1)
    }

    async fn insert_interactions(&self, interactions: &[Interaction]) -> Result<usize> {
        Ok(insert_rows(&self.pool, interactions).await? as usize)
    }

    async fn get_interaction(&self, id: &str) -> Result<Option<Interaction>> {
        let row = sqlx::query("SELECT record::text AS record FROM interactions WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(pg_err)?;
        row.map(|r| column(&r, "record")).transpose()
    }

    async fn list_interactions(
        &self,
        organization_id: &str,
        filter: &InteractionFilter,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<InteractionPage> {
        let page_size = page_size.clamp(1, MAX_PAGE_SIZE);
        let words = checked_words(filter)?;
        let after = match page_token {
            Some(token) => {
                let position = cursor_position(organization_id, token)?;
                let position =
                    keys::parse_position(&position).ok_or(StorageError::InvalidPageToken)?;
                Some((position.0, position.1.to_owned()))
            }
            None => None,
        };
        let mut q = QueryBuilder::<Postgres>::new(
            "SELECT record::text AS record FROM interactions WHERE organization_id = ",
        );
        q.push_bind(organization_id);
        if let Some(source) = filter.source {
            q.push(" AND source_type = ").push_bind(source.as_str());
        }
        if !words.is_empty() {
            q.push(" AND words @> ").push_bind(words);
        }
        // timestamp_ms < to  <=>  newest_first > -to;  timestamp_ms >= from  <=>  newest_first <= -from.
        if let Some(to) = filter.to_ms {
            q.push(" AND newest_first > ")
                .push_bind(to.saturating_neg());
        }
        if let Some(from) = filter.from_ms {
            q.push(" AND newest_first <= ")
                .push_bind(from.saturating_neg());
        }
        if let Some((ts, id)) = after {
            q.push(" AND (newest_first, id) > (")
                .push_bind(ts.saturating_neg())
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        q.push(" ORDER BY newest_first, id LIMIT ")
            .push_bind(page_size as i64 + 1);
        let rows = q.build().fetch_all(&self.pool).await.map_err(pg_err)?;
        let mut page = InteractionPage::default();
        for row in rows.iter().take(page_size) {
            page.interactions.push(column(row, "record")?);
        }
        if rows.len() > page_size {
            page.next_page_token = page
                .interactions
                .last()
                .map(|i| page_cursor(organization_id, i.timestamp_ms, &i.id));
        }
        Ok(page)
    }

    async fn summary(&self, organization_id: &str) -> Result<Summary> {
        let rows =
            sqlx::query("SELECT source_type, n FROM interaction_counts WHERE organization_id = $1")
                .bind(organization_id)
                .fetch_all(&self.pool)
                .await
                .map_err(pg_err)?;
        let mut summary = Summary::default();
        for row in rows {
            let source: String = row.try_get("source_type").map_err(pg_err)?;
            let n = row.try_get::<i64, _>("n").map_err(pg_err)? as u64;
            match source.as_str() {
                "web" => summary.web = n,
                "cctv" => summary.cctv = n,
                "social" => summary.social = n,
                other => {
                    return Err(StorageError::corrupt(
                        other.as_bytes(),
                        "unknown source in interaction_counts",
                    ))
                }
            }
        }
        Ok(summary)
    }

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

    async fn claim_outbox(
        &self,
        now_ms: i64,
        limit: usize,
        lease_ms: i64,
    ) -> Result<Vec<OutboxEntry>> {
        // SKIP LOCKED: two processes claiming at once take different entries instead of waiting.
        let rows = sqlx::query(&format!(
            "UPDATE outbox SET claimed_by = $3, claimed_until_ms = $1 + $4
             WHERE seq IN (
                 SELECT seq FROM outbox
                 WHERE next_attempt_ms <= $1 AND (claimed_until_ms <= $1 OR claimed_by = $3)
                 ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED)
             RETURNING {OUTBOX_COLUMNS}"
        ))
        .bind(now_ms)
        .bind(limit as i64)
        .bind(&self.node)
        .bind(lease_ms)
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
        let inserted = insert_rows(&mut *tx, std::slice::from_ref(interaction)).await? == 1;
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

    async fn upsert_products(&self, products: &[Product]) -> Result<()> {
        let orgs: Vec<&str> = products
            .iter()
            .map(|p| p.organization_id.as_str())
            .collect();
        let ids: Vec<&str> = products.iter().map(|p| p.id.as_str()).collect();
        let values: Vec<String> = products
            .iter()
            .map(|p| String::from_utf8(encode(p)).unwrap_or_default())
            .collect();
        // Within one statement a key may be written once: the last occurrence wins, as in a sled batch.
        sqlx::query(
            "INSERT INTO products (organization_id, id, product)
             SELECT DISTINCT ON (org, id) org, id, p::json
             FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS t(org, id, p, n)
             ORDER BY org, id, n DESC
             ON CONFLICT (organization_id, id) DO UPDATE SET product = EXCLUDED.product",
        )
        .bind(&orgs)
        .bind(&ids)
        .bind(&values)
        .execute(&self.pool)
        .await
        .map_err(pg_err)?;
        Ok(())
    }

    async fn delete_product(&self, organization_id: &str, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM products WHERE organization_id = $1 AND id = $2")
            .bind(organization_id)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(pg_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_products(
        &self,
        organization_id: &str,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<ProductPage> {
        let (products, next_page_token) = self
            .page_by(
                "SELECT product::text AS value FROM products
                 WHERE organization_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                organization_id,
                page_size,
                page_token,
                |p: &Product| &p.id,
            )
            .await?;
        Ok(ProductPage {
            products,
            next_page_token,
        })
    }

    async fn catalog(&self, organization_id: &str, limit: usize) -> Result<Vec<Product>> {
        let rows = sqlx::query(
            "SELECT product::text AS value FROM products WHERE organization_id = $1
             ORDER BY id LIMIT $2",
        )
        .bind(organization_id)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(pg_err)?;
        rows.iter().map(|r| column(r, "value")).collect()
    }

    async fn upsert_camera(&self, camera: &CameraConfig) -> Result<()> {
        sqlx::query(
            "INSERT INTO cameras (organization_id, camera_id, camera) VALUES ($1, $2, $3::json)
             ON CONFLICT (organization_id, camera_id) DO UPDATE SET camera = EXCLUDED.camera",
        )
        .bind(&camera.organization_id)
        .bind(&camera.camera_id)
        .bind(String::from_utf8(encode(camera)).unwrap_or_default())
        .execute(&self.pool)
        .await
        .map_err(pg_err)?;
        Ok(())
    }

    async fn get_camera(
        &self,
        organization_id: &str,
        camera_id: &str,
    ) -> Result<Option<CameraConfig>> {
        let camera: Option<String> = sqlx::query_scalar(
            "SELECT camera::text FROM cameras WHERE organization_id = $1 AND camera_id = $2",
        )
        .bind(organization_id)
        .bind(camera_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(pg_err)?;
        camera.map(|c| decode_json("cameras", &c)).transpose()
    }

    async fn delete_camera(&self, organization_id: &str, camera_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM cameras WHERE organization_id = $1 AND camera_id = $2")
            .bind(organization_id)
            .bind(camera_id)
            .execute(&self.pool)
            .await
            .map_err(pg_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_cameras(
        &self,
        organization_id: &str,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<(Vec<CameraConfig>, Option<String>)> {
        self.page_by(
            "SELECT camera::text AS value FROM cameras
             WHERE organization_id = $1 AND camera_id > $2 ORDER BY camera_id LIMIT $3",
            organization_id,
            page_size,
            page_token,
            |c: &CameraConfig| &c.camera_id,
        )
        .await
    }

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

    async fn unfinished_analyses(&self) -> Result<Vec<AnalysisRecord>> {
        let rows =
            sqlx::query("SELECT record::text AS value FROM analyses WHERE unfinished ORDER BY id")
                .fetch_all(&self.pool)
                .await
                .map_err(pg_err)?;
        rows.iter().map(|r| column(r, "value")).collect()
    }

    async fn claim_analyses(&self, now_ms: i64, lease_ms: i64) -> Result<Vec<AnalysisRecord>> {
        // SKIP LOCKED: two processes claiming at once take different analyses instead of waiting.
        let mut rows: Vec<AnalysisRecord> = sqlx::query(
            "UPDATE analyses SET claimed_by = $2, claimed_until_ms = $1 + $3
             WHERE id IN (
                 SELECT id FROM analyses
                 WHERE unfinished AND (claimed_until_ms <= $1 OR claimed_by = $2)
                 ORDER BY id FOR UPDATE SKIP LOCKED)
             RETURNING record::text AS value",
        )
        .bind(now_ms)
        .bind(&self.node)
        .bind(lease_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(pg_err)?
        .iter()
        .map(|r| column(r, "value"))
        .collect::<Result<_>>()?;
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(rows)
    }

    async fn renew_analysis_claims(&self, now_ms: i64, lease_ms: i64) -> Result<()> {
        sqlx::query(
            "UPDATE analyses SET claimed_until_ms = $1 + $3 WHERE unfinished AND claimed_by = $2",
        )
        .bind(now_ms)
        .bind(&self.node)
        .bind(lease_ms)
        .execute(&self.pool)
        .await
        .map_err(pg_err)?;
        Ok(())
    }
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
