//! The [`Store`]: all trees and the transactions that keep them consistent.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};
use sled::{Transactional, Tree};

use crate::keys;
use crate::model::{BatchRecord, FrameAnalysis, FrameRecord, SessionRecord, SessionStatus};
use crate::{now_ms, Result, StorageError};

/// Stored bytes of the frame at `key` are the bytes its record's digest was taken of (when it has one);
/// otherwise they are `Corrupt`.
fn bytes_match(key: &[u8], record: &FrameRecord, bytes: &[u8]) -> Result<()> {
    match record.digest {
        Some(digest) if !digest.matches(bytes) => Err(StorageError::corrupt(
            key,
            "stored frame bytes do not match the frame's digest",
        )),
        _ => Ok(()),
    }
}

/// What to record for one frame, in one transaction with the session record.
#[derive(Debug)]
pub struct FrameWrite<'a> {
    /// The tracking record.
    pub frame: &'a FrameRecord,
    /// The session after counting this frame.
    pub session: &'a SessionRecord,
    /// For an accepted frame that still has to be described: its encoded bytes, kept until the description is
    /// stored so that a crash does not lose acked work.
    pub undescribed_bytes: Option<&'a [u8]>,
    /// For an accepted frame: the gate's thumbnail of it, the reference for the next duplicate check.
    pub gate_thumbnail: Option<&'a [u8]>,
}

/// Handle to crow's sled database. Cheap to clone; all clones share the same trees.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) db: sled::Db,
    /// `org \0 !ts id` -> Interaction (JSON)
    pub(crate) interactions: Tree,
    /// `id` -> interaction key
    pub(crate) interaction_ids: Tree,
    /// `org \0 source` -> u64 BE
    pub(crate) org_counts: Tree,
    /// `org \0 s|t \0 source|word \0 !ts id` -> () (see `interactions.rs`)
    pub(crate) interaction_index: Tree,
    /// `seq` (u64 BE) -> OutboxEntry: accepted `CreateInteraction` requests not yet processed
    pub(crate) outbox: Tree,
    /// `id` -> seq of its outbox entry
    pub(crate) outbox_ids: Tree,
    /// `org \0 idempotency key` -> id
    pub(crate) idempotency: Tree,
    /// `org \0 id` -> DeadLetter
    pub(crate) dead_letters: Tree,
    /// `org \0 product id` -> Product
    pub(crate) products: Tree,
    /// `org \0 camera id` -> CameraConfig
    pub(crate) cameras: Tree,
    /// `id` -> AnalysisRecord
    pub(crate) analyses: Tree,
    /// `session id` -> SessionRecord
    pub(crate) sessions: Tree,
    /// `org \0 camera` -> open session id
    pub(crate) open_sessions: Tree,
    /// `session \0 frame_index` -> FrameRecord
    pub(crate) frames: Tree,
    /// `session \0 frame_index` -> encoded frame bytes (accepted, not yet described)
    pub(crate) undescribed: Tree,
    /// `session \0 frame_index` -> FrameAnalysis (described, not yet batched)
    pub(crate) pending: Tree,
    /// `session` -> thumbnail of the last accepted frame (gate reference)
    pub(crate) gate_refs: Tree,
    /// `session \0 batch_index` -> BatchRecord
    pub(crate) batches: Tree,
    /// `session \0 batch_index` -> () for batches whose interaction is not yet written
    pub(crate) unanalyzed: Tree,
    /// `session \0 frame_index` -> encoded frame bytes of described frames (optional evidence; pruned
    /// by age and total size, see `retention.rs`)
    pub(crate) keyframes: Tree,
    /// `stored_at_ms(8 bytes BE) session \0 frame_index` -> size (u64 BE): keyframes oldest first
    pub(crate) keyframe_order: Tree,
    /// `id` -> () for interactions not yet embedded (see `embeddings.rs`)
    pub(crate) embed_queue: Tree,
    /// `seq` (u64 BE) -> RecordVectors
    pub(crate) embeddings: Tree,
    /// `id` -> seq of its vectors
    pub(crate) embedding_ids: Tree,
    /// `model` -> the embedding model of the stored vectors
    pub(crate) embedding_meta: Tree,
    /// `name` -> value: facts about this database itself (see `identity.rs`)
    pub(crate) meta: Tree,
    /// `org \0 camera \0 width start` -> MetricBucket (see `metrics.rs`)
    pub(crate) metric_buckets: Tree,
    /// `org \0 camera` -> OccupancyCarry: the levels the camera's latest record left
    pub(crate) metric_carry: Tree,
    /// Sum of the keyframes' sizes (rebuilt from `keyframe_order` on open).
    pub(crate) keyframe_bytes: AtomicU64,
    /// The database directory (`None` for a temporary database).
    pub(crate) path: Option<std::path::PathBuf>,
    flush: GroupFlush,
}

/// Group commit for `fsync`: concurrent callers of [`Store::sync`] share one flush, and a caller only
/// returns once a flush that *started after it called* has completed.
struct GroupFlush {
    started: AtomicU64,
    completed: AtomicU64,
    lock: tokio::sync::Mutex<()>,
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising our own plain structs to JSON cannot fail (no maps with non-string keys, no I/O).
    serde_json::to_vec(value).unwrap_or_default()
}

pub(crate) fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StorageError::corrupt(key, e))
}

/// Converts the transaction error of a closure that only aborts with `StorageError`.
pub(crate) fn tx_err(e: TransactionError<StorageError>) -> StorageError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StorageError::Engine(e),
    }
}

pub(crate) fn abort(e: StorageError) -> ConflictableTransactionError<StorageError> {
    ConflictableTransactionError::Abort(e)
}

pub(crate) type TxResult<T> = std::result::Result<T, ConflictableTransactionError<StorageError>>;

pub(crate) fn tx_get<T: DeserializeOwned>(
    tree: &TransactionalTree,
    key: &[u8],
) -> TxResult<Option<T>> {
    match tree.get(key)? {
        Some(v) => decode(key, &v).map(Some).map_err(abort),
        None => Ok(None),
    }
}

pub(crate) fn tx_put<T: Serialize>(
    tree: &TransactionalTree,
    key: &[u8],
    value: &T,
) -> std::result::Result<(), UnabortableTransactionError> {
    tree.insert(key, encode(value))?;
    Ok(())
}

/// How long [`Store::open`] waits for a database directory's lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether sled failed to open because another handle holds the directory's file lock.
fn is_lock_conflict(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock")
}

impl Store {
    /// Opens (or creates) the database in `dir`.
    ///
    /// The directory's lock is waited for up to 2 s: a database of this process that was
    /// just dropped releases it only when sled's background flusher has stopped. Held longer (by
    /// another process), the open fails with sled's lock error.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        let config = sled::Config::new()
            .path(dir.as_ref())
            .mode(sled::Mode::HighThroughput);
        let waiting_since = std::time::Instant::now();
        let db = loop {
            match config.open() {
                Err(sled::Error::Io(e))
                    if is_lock_conflict(&e) && waiting_since.elapsed() < LOCK_WAIT =>
                {
                    // Opening is blocking work already (callers on async threads use spawn_blocking);
                    // this wait happens only while another handle holds the lock.
                    #[allow(clippy::disallowed_methods)]
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other?,
            }
        };
        let store = Self::from_db(db, Some(dir.as_ref().to_owned()))?;
        if let Some(buckets) = store.upgrade_metrics()? {
            tracing::info!(
                buckets,
                "store metrics measured from the stored records (first open by a build that keeps them)"
            );
        }
        Ok(store)
    }

    /// A throw-away database that lives in memory (for examples and benchmarks).
    pub fn temporary() -> Result<Store> {
        Self::from_db(sled::Config::new().temporary(true).open()?, None)
    }

    fn from_db(db: sled::Db, path: Option<std::path::PathBuf>) -> Result<Store> {
        let t = |name: &str| db.open_tree(name);
        let keyframe_order = t("keyframe_order")?;
        let mut keyframe_bytes = 0u64;
        for item in keyframe_order.iter() {
            let (key, size) = item?;
            keyframe_bytes += keys::keyframe_size(&key, &size)?;
        }
        Ok(Store {
            inner: Arc::new(Inner {
                interactions: t("interactions")?,
                interaction_ids: t("interaction_ids")?,
                org_counts: t("org_counts")?,
                interaction_index: t("interaction_index")?,
                outbox: t("outbox")?,
                outbox_ids: t("outbox_ids")?,
                idempotency: t("idempotency")?,
                dead_letters: t("dead_letters")?,
                products: t("products")?,
                cameras: t("cameras")?,
                analyses: t("analyses")?,
                sessions: t("sessions")?,
                open_sessions: t("open_sessions")?,
                frames: t("frames")?,
                undescribed: t("undescribed")?,
                pending: t("pending")?,
                gate_refs: t("gate_refs")?,
                batches: t("batches")?,
                unanalyzed: t("unanalyzed")?,
                keyframes: t("keyframes")?,
                keyframe_order,
                embed_queue: t("embed_queue")?,
                embeddings: t("embeddings")?,
                embedding_ids: t("embedding_ids")?,
                embedding_meta: t("embedding_meta")?,
                meta: t("meta")?,
                metric_buckets: t("metric_buckets")?,
                metric_carry: t("metric_carry")?,
                keyframe_bytes: AtomicU64::new(keyframe_bytes),
                path,
                flush: GroupFlush {
                    started: AtomicU64::new(0),
                    completed: AtomicU64::new(0),
                    lock: tokio::sync::Mutex::new(()),
                },
                db,
            }),
        })
    }

    /// Runs `f` on this store on a blocking thread: how async code calls the store, since any sled
    /// call may wait on the disk.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| StorageError::Task(e.to_string()))?
    }

    /// Makes every write that completed before this call durable (fsync). Concurrent callers share flushes
    /// (group commit), so calling it once per acked frame stays cheap under load.
    pub async fn sync(&self) -> Result<()> {
        let flush = &self.inner.flush;
        // Any flush numbered above `arrived` starts after this point, so it covers our writes.
        let arrived = flush.started.load(Ordering::SeqCst);
        let _guard = flush.lock.lock().await;
        if flush.completed.load(Ordering::SeqCst) > arrived {
            return Ok(());
        }
        let number = flush.started.fetch_add(1, Ordering::SeqCst) + 1;
        let db = self.inner.db.clone();
        // The one flush of the store: the group commit itself, on a blocking thread.
        #[allow(clippy::disallowed_methods)]
        let flushed = tokio::task::spawn_blocking(move || db.flush());
        flushed
            .await
            .map_err(|e| StorageError::Task(format!("flush: {e}")))??;
        flush.completed.store(number, Ordering::SeqCst);
        Ok(())
    }

    #[cfg(test)]
    fn flush_for_tests(&self) {
        self.inner.db.flush().unwrap();
    }

    // ---------------------------------------------------------------- sessions

    /// Creates a new open session for a camera and makes it the camera's open session. The caller closes the
    /// camera's previous session first if it had one.
    pub fn create_session(&self, organization_id: &str, camera_id: &str) -> Result<SessionRecord> {
        let record = SessionRecord::new_open(organization_id, camera_id);
        self.insert_session(&record)?;
        Ok(record)
    }

    /// Stores a session made elsewhere (e.g. replayed from a cluster's session journal) and, while it
    /// is open, makes it its camera's open session. A session already stored is left as it is: returns
    /// whether it was inserted.
    pub fn insert_session(&self, record: &SessionRecord) -> Result<bool> {
        let i = &self.inner;
        let camera_key = keys::pair(&record.organization_id, &record.camera_id);
        (&i.sessions, &i.open_sessions)
            .transaction(|(sessions, open)| {
                if sessions.get(record.id.as_bytes())?.is_some() {
                    return Ok(false);
                }
                tx_put(sessions, record.id.as_bytes(), record)?;
                if record.status == SessionStatus::Open {
                    open.insert(camera_key.as_slice(), record.id.as_bytes())?;
                }
                Ok(true)
            })
            .map_err(tx_err)
    }

    /// Fetches a session.
    pub fn get_session(&self, session_id: &str) -> Result<Option<SessionRecord>> {
        match self.inner.sessions.get(session_id.as_bytes())? {
            Some(v) => decode(session_id.as_bytes(), &v).map(Some),
            None => Ok(None),
        }
    }

    /// The camera's open session, if any.
    pub fn open_session_for_camera(
        &self,
        organization_id: &str,
        camera_id: &str,
    ) -> Result<Option<SessionRecord>> {
        match self
            .inner
            .open_sessions
            .get(keys::pair(organization_id, camera_id))?
        {
            Some(id) => self.get_session(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    /// Every session still open (for recovery at start-up).
    pub fn open_sessions(&self) -> Result<Vec<SessionRecord>> {
        let mut out = Vec::new();
        for item in self.inner.open_sessions.iter() {
            let (_, id) = item?;
            if let Some(s) = self.get_session(&String::from_utf8_lossy(&id))? {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Marks a session closed and no longer the camera's open session.
    pub fn close_session(&self, session: &SessionRecord) -> Result<()> {
        let i = &self.inner;
        let camera_key = keys::pair(&session.organization_id, &session.camera_id);
        let mut closed = session.clone();
        closed.status = SessionStatus::Closed;
        (&i.sessions, &i.open_sessions, &i.gate_refs)
            .transaction(|(sessions, open, gate_refs)| {
                tx_put(sessions, closed.id.as_bytes(), &closed)?;
                if open.get(&camera_key)?.as_deref() == Some(closed.id.as_bytes()) {
                    open.remove(camera_key.as_slice())?;
                }
                gate_refs.remove(closed.id.as_bytes())?;
                Ok(())
            })
            .map_err(tx_err)
    }

    // ---------------------------------------------------------------- frames

    /// The tracking record of one frame.
    pub fn get_frame(&self, session_id: &str, frame_index: u64) -> Result<Option<FrameRecord>> {
        let key = keys::indexed(session_id, frame_index);
        match self.inner.frames.get(&key)? {
            Some(v) => decode(&key, &v).map(Some),
            None => Ok(None),
        }
    }

    /// All tracking records of a session, in frame order.
    pub fn frames(&self, session_id: &str) -> Result<Vec<FrameRecord>> {
        self.scan(&self.inner.frames, session_id)
    }

    /// Records a frame's outcome together with the session's new counters (one transaction). If the frame
    /// index is already recorded nothing is written and the stored record is returned.
    pub fn record_frame(&self, write: FrameWrite<'_>) -> Result<Option<FrameRecord>> {
        let i = &self.inner;
        let session_id = write.session.id.as_str();
        let key = keys::indexed(session_id, write.frame.frame_index);
        (&i.frames, &i.sessions, &i.undescribed, &i.gate_refs)
            .transaction(|(frames, sessions, undescribed, gate_refs)| {
                if let Some(existing) = tx_get::<FrameRecord>(frames, &key)? {
                    return Ok(Some(existing));
                }
                tx_put(frames, &key, write.frame)?;
                tx_put(sessions, session_id.as_bytes(), write.session)?;
                if let Some(bytes) = write.undescribed_bytes {
                    undescribed.insert(key.as_slice(), bytes)?;
                }
                if let Some(thumb) = write.gate_thumbnail {
                    gate_refs.insert(session_id.as_bytes(), thumb)?;
                }
                Ok(None)
            })
            .map_err(tx_err)
    }

    /// The gate's reference thumbnail for a session (the last accepted frame's).
    pub fn gate_reference(&self, session_id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .inner
            .gate_refs
            .get(session_id.as_bytes())?
            .map(|v| v.to_vec()))
    }

    /// Accepted frames whose description is not stored yet: `(frame_index, captured_at_ms, bytes)`.
    pub fn undescribed_frames(&self, session_id: &str) -> Result<Vec<(FrameRecord, Vec<u8>)>> {
        let mut out = Vec::new();
        for item in self.inner.undescribed.scan_prefix(keys::prefix(session_id)) {
            let (k, bytes) = item?;
            let Some(record) = self.inner.frames.get(&k)? else {
                return Err(StorageError::corrupt(
                    &k,
                    "undescribed frame without tracking record",
                ));
            };
            let record: FrameRecord = decode(&k, &record)?;
            bytes_match(&k, &record, &bytes)?;
            out.push((record, bytes.to_vec()));
        }
        Ok(out)
    }

    /// Checks stored bytes of the frame at `key` (its keyframe) against the digest its tracking record
    /// holds, if the record is kept and has one.
    pub(crate) fn check_digest(&self, key: &[u8], bytes: &[u8]) -> Result<()> {
        let Some(record) = self.inner.frames.get(key)? else {
            return Ok(());
        };
        bytes_match(key, &decode(key, &record)?, bytes)
    }

    /// Stores a frame's description: it joins the session's pending (not yet batched) analyses, the frame's
    /// tracking record gets the text, the frame's bytes become its keyframe (`keep_keyframe`) or are
    /// dropped, and the session's counters are written — one transaction. Returns `false` (writing
    /// nothing) if the frame was already described.
    pub fn record_description(
        &self,
        session: &SessionRecord,
        analysis: &FrameAnalysis,
        keep_keyframe: bool,
    ) -> Result<bool> {
        let i = &self.inner;
        let key = keys::indexed(&session.id, analysis.frame_index);
        let stored_at = now_ms();
        let written = (
            &i.frames,
            &i.sessions,
            &i.undescribed,
            &i.pending,
            &i.keyframes,
            &i.keyframe_order,
        )
            .transaction(
                |(frames, sessions, undescribed, pending, keyframes, keyframe_order)| {
                    let Some(mut frame) = tx_get::<FrameRecord>(frames, &key)? else {
                        return Err(abort(StorageError::NotFound { what: "frame" }));
                    };
                    if frame.description.is_some() {
                        return Ok(None);
                    }
                    frame.description = Some(analysis.text.clone());
                    tx_put(frames, &key, &frame)?;
                    tx_put(pending, &key, analysis)?;
                    let bytes = undescribed.remove(key.as_slice())?;
                    let mut kept = 0;
                    if let (true, Some(bytes)) = (keep_keyframe, bytes) {
                        kept = bytes.len() as u64;
                        keyframe_order.insert(
                            keys::keyframe_order(stored_at, &key),
                            &kept.to_be_bytes()[..],
                        )?;
                        keyframes.insert(key.as_slice(), bytes)?;
                    }
                    tx_put(sessions, session.id.as_bytes(), session)?;
                    Ok(Some(kept))
                },
            )
            .map_err(tx_err)?;
        match written {
            Some(kept) => {
                i.keyframe_bytes.fetch_add(kept, Ordering::SeqCst);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Described frames not yet part of a batch, in frame order.
    pub fn pending_analyses(&self, session_id: &str) -> Result<Vec<FrameAnalysis>> {
        self.scan(&self.inner.pending, session_id)
    }

    // ---------------------------------------------------------------- batches

    /// Stores a batch under `(session, batch.batch_index)`, removes its frames from the pending analyses,
    /// marks it as awaiting analysis and writes the session's counters — one transaction. Writing the same
    /// batch index twice stores it once: the second call returns `false` and changes nothing.
    pub fn record_batch(&self, session: &SessionRecord, batch: &BatchRecord) -> Result<bool> {
        let i = &self.inner;
        let key = keys::indexed(&batch.session_id, batch.batch_index);
        (&i.batches, &i.pending, &i.unanalyzed, &i.sessions)
            .transaction(|(batches, pending, unanalyzed, sessions)| {
                if batches.get(&key)?.is_some() {
                    return Ok(false);
                }
                tx_put(batches, &key, batch)?;
                for frame in &batch.frames {
                    pending.remove(keys::indexed(&batch.session_id, frame.frame_index))?;
                }
                unanalyzed.insert(key.as_slice(), &[])?;
                tx_put(sessions, session.id.as_bytes(), session)?;
                Ok(true)
            })
            .map_err(tx_err)
    }

    /// One batch.
    pub fn get_batch(&self, session_id: &str, batch_index: u64) -> Result<Option<BatchRecord>> {
        let key = keys::indexed(session_id, batch_index);
        match self.inner.batches.get(&key)? {
            Some(v) => decode(&key, &v).map(Some),
            None => Ok(None),
        }
    }

    /// All batches of a session, in order.
    pub fn batches(&self, session_id: &str) -> Result<Vec<BatchRecord>> {
        self.scan(&self.inner.batches, session_id)
    }

    /// Batches stored but not yet turned into interactions (for recovery at start-up).
    pub fn unanalyzed_batches(&self) -> Result<Vec<BatchRecord>> {
        let mut out = Vec::new();
        for item in self.inner.unanalyzed.iter() {
            let (k, _) = item?;
            match self.inner.batches.get(&k)? {
                Some(v) => out.push(decode(&k, &v)?),
                None => return Err(StorageError::corrupt(&k, "unanalyzed marker without batch")),
            }
        }
        Ok(out)
    }

    /// Clears a batch's "awaiting analysis" mark, once its record is stored (in whichever
    /// [`RecordStore`](crate::RecordStore) holds records). Idempotent.
    pub fn mark_batch_analyzed(&self, session_id: &str, batch_index: u64) -> Result<()> {
        self.inner
            .unanalyzed
            .remove(keys::indexed(session_id, batch_index))?;
        Ok(())
    }

    /// Whether a stored batch still awaits its record (or, on an ingest node, its hand-off).
    pub fn is_unanalyzed(&self, session_id: &str, batch_index: u64) -> Result<bool> {
        Ok(self
            .inner
            .unanalyzed
            .contains_key(keys::indexed(session_id, batch_index))?)
    }

    /// How many batches of a session are not yet turned into a record.
    pub fn unanalyzed_count(&self, session_id: &str) -> Result<u64> {
        let mut n = 0;
        for item in self.inner.unanalyzed.scan_prefix(keys::prefix(session_id)) {
            item?;
            n += 1;
        }
        Ok(n)
    }

    /// One page of an organization's records in a tree keyed `org \0 id`, by id; the cursor is the last id.
    pub(crate) fn page_by_id<T: DeserializeOwned>(
        &self,
        tree: &Tree,
        organization_id: &str,
        page_size: usize,
        after_id: Option<&str>,
        id_of: impl Fn(&T) -> &str,
    ) -> Result<(Vec<T>, Option<String>)> {
        let prefix = keys::prefix(organization_id);
        let start = match after_id {
            Some(last) => {
                let mut k = keys::pair(organization_id, last);
                k.push(0);
                k
            }
            None => prefix.clone(),
        };
        let mut items = Vec::new();
        for item in tree.range(start..keys::prefix_end(&prefix)) {
            let (k, v) = item?;
            if items.len() == page_size.max(1) {
                let next = items.last().map(|t| id_of(t).to_owned());
                return Ok((items, next));
            }
            items.push(decode(&k, &v)?);
        }
        Ok((items, None))
    }

    fn scan<T: DeserializeOwned>(&self, tree: &Tree, session_id: &str) -> Result<Vec<T>> {
        let mut out = Vec::new();
        for item in tree.scan_prefix(keys::prefix(session_id)) {
            let (k, v) = item?;
            debug_assert!(keys::index_of(&k).is_some());
            out.push(decode(&k, &v)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::Store;

    /// Opens the database in `dir` again, waiting for the previous handle to let go of it: sled's
    /// background threads may hold the directory lock for a moment after the last handle drops.
    pub(crate) fn reopen(dir: &std::path::Path) -> Store {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match Store::open(dir) {
                Ok(s) => return s,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("reopening: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FrameOutcome, Interaction, SessionCounters, SourceType};

    fn analysis(frame_index: u64) -> FrameAnalysis {
        FrameAnalysis {
            frame_index,
            captured_at_ms: 1_000 + frame_index as i64,
            describer: "test".into(),
            text: format!("frame {frame_index}"),
            confidence: 0.5,
            tags: vec![],
            details: serde_json::Value::Null,
        }
    }

    #[test]
    fn a_batch_written_twice_is_stored_once_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let batch;
        {
            let store = Store::open(dir.path()).unwrap();
            let mut session = store.create_session("org", "cam").unwrap();
            for i in 0..2 {
                let frame = FrameRecord {
                    frame_index: i,
                    captured_at_ms: 1_000,
                    outcome: FrameOutcome::Accepted,
                    description: None,
                    digest: None,
                };
                session.counters.received += 1;
                store
                    .record_frame(FrameWrite {
                        frame: &frame,
                        session: &session,
                        undescribed_bytes: Some(b"jpeg"),
                        gate_thumbnail: None,
                    })
                    .unwrap();
                session.counters.described += 1;
                assert!(store
                    .record_description(&session, &analysis(i), false)
                    .unwrap());
                assert!(
                    !store
                        .record_description(&session, &analysis(i), false)
                        .unwrap(),
                    "described once"
                );
            }
            assert!(store.undescribed_frames(&session.id).unwrap().is_empty());
            assert_eq!(store.pending_analyses(&session.id).unwrap().len(), 2);
            batch = BatchRecord {
                session_id: session.id.clone(),
                organization_id: "org".into(),
                camera_id: "cam".into(),
                batch_index: 0,
                frames: vec![analysis(0), analysis(1)],
                created_at_ms: 0,
                frame_range: Some((0, 1)),
                events: vec![],
                occupancy: vec![],
            };
            session.counters.batches = 1;
            assert!(store.record_batch(&session, &batch).unwrap());
            assert!(
                !store.record_batch(&session, &batch).unwrap(),
                "second write of the same batch index"
            );
            assert!(store.pending_analyses(&session.id).unwrap().is_empty());
            assert_eq!(
                store.get_session(&session.id).unwrap().unwrap().counters,
                SessionCounters {
                    received: 2,
                    described: 2,
                    batches: 1,
                    ..Default::default()
                }
            );
            store.flush_for_tests();
        }
        let store = super::tests_support::reopen(dir.path());
        assert_eq!(
            store.batches(&batch.session_id).unwrap(),
            vec![batch.clone()]
        );
        assert_eq!(store.unanalyzed_batches().unwrap().len(), 1);
        let interaction = Interaction {
            id: "i-1".into(),
            organization_id: "org".into(),
            source_type: SourceType::Cctv,
            session_id: Some(batch.session_id.clone()),
            data: serde_json::json!({}),
            summary: "s".into(),
            confidence: 0.5,
            tags: vec![],
            product_ids: vec![],
            timestamp_ms: 1_000,
            created_at_ms: 1_000,
        };
        assert!(store
            .insert_batch_interaction(&interaction, &batch.session_id, 0)
            .unwrap());
        assert!(!store
            .insert_batch_interaction(&interaction, &batch.session_id, 0)
            .unwrap());
        assert!(store.unanalyzed_batches().unwrap().is_empty());
        assert_eq!(store.summary("org").unwrap().cctv, 1);
        assert_eq!(store.get_interaction("i-1").unwrap(), Some(interaction));
    }

    #[test]
    fn group_flush_returns_after_a_flush_that_started_later() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = Store::temporary().unwrap();
        rt.block_on(async {
            store.sync().await.unwrap();
            store.sync().await.unwrap();
        });
        assert_eq!(
            store.inner.flush.completed.load(Ordering::SeqCst),
            2,
            "each call after the last flush flushes again"
        );
    }
}
