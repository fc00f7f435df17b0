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

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Postgres, QueryBuilder, Row};

use crate::embeddings::RecordVectors;
use crate::interactions::{checked_words, cursor_position, page_cursor};
use crate::keys;
use crate::metrics::{BucketWidth, MeasuredFacts, MetricBucket, OccupancyCarry};
use crate::model::{
    AnalysisRecord, AnalysisStatus, CameraConfig, DeadLetter, Enqueued, Interaction,
    InteractionFilter, InteractionState, NewInteraction, OutboxEntry, Product, Summary,
};
use crate::records::{
    AnalysisRecords, CameraRecords, CatalogRecords, EmbeddingRecords, InteractionRecords,
    OutboxRecords, RecordStore,
};
use crate::store::encode;
use crate::text::interaction_words;
use crate::{
    now_ms, DeadLetterPage, InteractionPage, OutboxFailure, ProductPage, Result, StorageError,
    MAX_PAGE_SIZE,
};

mod analyses;
mod cameras;
mod catalog;
mod embeddings;
mod interactions;
mod metrics;
mod outbox;

/// The schema, in order; each runs once, in its own transaction, recorded in `crow_schema_migrations`.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "records",
        include_str!("../../migrations/0001_records.sql"),
    ),
    (
        2,
        "outbox claims",
        include_str!("../../migrations/0002_outbox_claims.sql"),
    ),
    (
        3,
        "analysis claims",
        include_str!("../../migrations/0003_analysis_claims.sql"),
    ),
    (
        4,
        "embeddings",
        include_str!("../../migrations/0004_embeddings.sql"),
    ),
    (
        5,
        "metrics",
        include_str!("../../migrations/0005_metrics.sql"),
    ),
];

/// How long an analysis stored unfinished by a process stays its own before it must renew the claim
/// ([`AnalysisRecords::renew_analysis_claims`]).
pub const ANALYSIS_CLAIM_MS: i64 = 60_000;

/// How long an outbox entry a process claimed ([`OutboxRecords::claim_outbox`]) is its alone: far
/// longer than processing takes, so a process that dies holding claims delays those events by at most
/// this.
pub const OUTBOX_CLAIM_MS: i64 = 30_000;

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

/// Inserts interactions that are new (by id) and counts them, in one statement, then adds the new
/// `cctv` records to their cameras' metrics ([`add_metrics`]), inside the caller's
/// transaction; returns how many were new.
async fn insert_rows(conn: &mut sqlx::PgConnection, interactions: &[Interaction]) -> Result<u64> {
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
    let inserted: Vec<String> = sqlx::query_scalar(
        "WITH ins AS (
             INSERT INTO interactions (id, organization_id, source_type, timestamp_ms, words, record)
             SELECT id, org, source, ts, string_to_array(w, ' '), r::json
             FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[])
                  AS t(id, org, source, ts, w, r)
             ON CONFLICT (id) DO NOTHING
             RETURNING id, organization_id, source_type
         ), counted AS (
             INSERT INTO interaction_counts (organization_id, source_type, n)
             SELECT organization_id, source_type, count(*) FROM ins GROUP BY 1, 2
             ON CONFLICT (organization_id, source_type)
             DO UPDATE SET n = interaction_counts.n + EXCLUDED.n
         )
         SELECT id FROM ins",
    )
    .bind(&ids)
    .bind(&orgs)
    .bind(&sources)
    .bind(&stamps)
    .bind(&words)
    .bind(&records)
    .fetch_all(&mut *conn)
    .await
    .map_err(pg_err)?;
    // Each new id once: a bulk insert may repeat one (the first copy is the one stored).
    let mut new: std::collections::HashSet<&str> = inserted.iter().map(String::as_str).collect();
    let measured: Vec<MeasuredFacts> = interactions
        .iter()
        .filter(|i| new.remove(i.id.as_str()))
        .filter_map(MeasuredFacts::of)
        .collect();
    add_metrics(conn, &measured).await?;
    Ok(inserted.len() as u64)
}

/// Adds new records' facts to their cameras' buckets, in the caller's transaction.
///
/// Nodes of a cluster may store records of one camera at once: each transaction first locks the
/// camera's `metric_carry` row (cameras in sorted order, so two transactions never wait on each other
/// in a cycle), which serializes every change to that camera's buckets.
async fn add_metrics(conn: &mut sqlx::PgConnection, measured: &[MeasuredFacts]) -> Result<()> {
    let mut by_camera: BTreeMap<(&str, &str), Vec<&MeasuredFacts>> = BTreeMap::new();
    for facts in measured {
        by_camera
            .entry((&facts.organization_id, &facts.camera_id))
            .or_default()
            .push(facts);
    }
    for ((org, camera), records) in by_camera {
        sqlx::query(
            "INSERT INTO metric_carry (organization_id, camera_id, levels) VALUES ($1, $2, '{}')
             ON CONFLICT DO NOTHING",
        )
        .bind(org)
        .bind(camera)
        .execute(&mut *conn)
        .await
        .map_err(pg_err)?;
        let levels: String = sqlx::query_scalar(
            "SELECT levels::text FROM metric_carry
             WHERE organization_id = $1 AND camera_id = $2 FOR UPDATE",
        )
        .bind(org)
        .bind(camera)
        .fetch_one(&mut *conn)
        .await
        .map_err(pg_err)?;
        let mut levels: OccupancyCarry = decode_json("metric_carry", &levels)?;
        let mut deltas: BTreeMap<(BucketWidth, i64), MetricBucket> = BTreeMap::new();
        for facts in records {
            for (key, delta) in facts.deltas(&mut levels) {
                deltas.entry(key).or_default().merge(&delta);
            }
        }
        let (widths, starts): (Vec<i16>, Vec<i64>) = deltas
            .keys()
            .map(|(w, s)| (i16::from(w.code()), *s))
            .unzip();
        let stored = sqlx::query(
            "SELECT width, start_ms, bucket::text AS bucket FROM metric_buckets
             WHERE organization_id = $1 AND camera_id = $2
               AND (width, start_ms) IN (SELECT * FROM unnest($3::smallint[], $4::bigint[]))",
        )
        .bind(org)
        .bind(camera)
        .bind(&widths)
        .bind(&starts)
        .fetch_all(&mut *conn)
        .await
        .map_err(pg_err)?;
        for row in stored {
            let width: i16 = row.try_get("width").map_err(pg_err)?;
            let start: i64 = row.try_get("start_ms").map_err(pg_err)?;
            let Some(width) = u8::try_from(width).ok().and_then(BucketWidth::from_code) else {
                return Err(StorageError::Database(format!(
                    "metric_buckets: unknown width {width}"
                )));
            };
            let mut bucket: MetricBucket = column(&row, "bucket")?;
            if let Some(delta) = deltas.get(&(width, start)) {
                bucket.merge(delta);
                deltas.insert((width, start), bucket);
            }
        }
        let buckets: Vec<String> = deltas
            .values()
            .map(|b| String::from_utf8(encode(b)).unwrap_or_default())
            .collect();
        sqlx::query(
            "INSERT INTO metric_buckets (organization_id, camera_id, width, start_ms, bucket)
             SELECT $1, $2, w, s, b::json FROM unnest($3::smallint[], $4::bigint[], $5::text[])
                  AS t(w, s, b)
             ON CONFLICT (organization_id, camera_id, width, start_ms)
             DO UPDATE SET bucket = EXCLUDED.bucket",
        )
        .bind(org)
        .bind(camera)
        .bind(&widths)
        .bind(&starts)
        .bind(&buckets)
        .execute(&mut *conn)
        .await
        .map_err(pg_err)?;
        sqlx::query(
            "UPDATE metric_carry SET levels = $3::json
             WHERE organization_id = $1 AND camera_id = $2",
        )
        .bind(org)
        .bind(camera)
        .bind(String::from_utf8(encode(&levels)).unwrap_or_default())
        .execute(&mut *conn)
        .await
        .map_err(pg_err)?;
    }
    Ok(())
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
}
