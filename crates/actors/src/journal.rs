//! The session journal: in a cluster, the durable facts of every camera session, on JetStream, so that a
//! camera can move to another ingest node (after a crash, or because its load balancer sent it
//! elsewhere) and the new node carries on exactly where the old one stopped.
//!
//! Every write the session actor makes to its node's sled (the session opened, a frame's outcome, a
//! description, a batch, the close) is first appended to the subject `crow.sessions.<session id>` of the
//! stream [`SESSION_STREAM`], then applied to sled: the journal is the truth, a node's sled is a view of
//! it. A node that takes a session over replays the subject into its own sled (every operation is
//! idempotent there) and resumes with the session actor's usual recovery: frames accepted but not
//! described are described again (their bytes are in the journal), pending descriptions are batched,
//! batches are handed to JetStream again (deduplicated by `Nats-Msg-Id`, and records are unique by
//! (session, batch index)).
//!
//! **Fencing.** Each append carries `Nats-Expected-Last-Subject-Sequence`: the sequence of the last
//! entry the writer knows. If another node has appended since (it took the session over), JetStream
//! refuses the append and the old writer stops ([`JournalError::Moved`]). Two nodes can therefore never
//! both extend a session, whatever their clocks or the network say.

use std::collections::HashSet;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use bytes::{BufMut as _, Bytes, BytesMut};
use crow_storage::{
    BatchRecord, FrameAnalysis, FrameRecord, FrameWrite, SessionRecord, StorageError, Store,
};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

/// Stream of the session journals (subjects `crow.sessions.<session id>`).
pub const SESSION_STREAM: &str = "CROW_SESSIONS";

/// One durable fact of a session, as journaled and as applied to a node's sled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum SessionOp {
    /// The session was opened.
    Opened { session: SessionRecord },
    /// A frame's outcome, with the session after counting it.
    Frame {
        frame: FrameRecord,
        session: SessionRecord,
    },
    /// A frame's description (it joins the pending descriptions).
    Described {
        session: SessionRecord,
        analysis: FrameAnalysis,
        keep_keyframe: bool,
    },
    /// A batch was formed from pending descriptions and events.
    Batched {
        session: SessionRecord,
        batch: BatchRecord,
    },
    /// The session was closed.
    Closed { session: SessionRecord },
    /// `node` took the session over and writes it from here on: appended right after its replay, so
    /// that the previous writer's next append is refused at once, not only when the new writer first
    /// has something to say. Changes nothing in sled.
    Resumed { node: String },
}

/// A [`SessionOp`] with the binary parts of a frame: its encoded bytes while it awaits description,
/// and the gate's thumbnail of it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JournalEntry {
    pub op: SessionOp,
    pub undescribed: Option<Bytes>,
    pub thumbnail: Option<Bytes>,
}

/// The JSON head of an encoded entry.
#[derive(Serialize, Deserialize)]
struct Head {
    #[serde(flatten)]
    op: SessionOp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    undescribed_len: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    thumbnail_len: Option<usize>,
}

impl From<SessionOp> for JournalEntry {
    fn from(op: SessionOp) -> JournalEntry {
        JournalEntry {
            op,
            undescribed: None,
            thumbnail: None,
        }
    }
}

impl JournalEntry {
    /// `len(head) as u32 BE`, the JSON head, then the undescribed bytes and the thumbnail.
    pub fn encode(&self) -> Bytes {
        let head = Head {
            op: self.op.clone(),
            undescribed_len: self.undescribed.as_ref().map(Bytes::len),
            thumbnail_len: self.thumbnail.as_ref().map(Bytes::len),
        };
        // Our own plain structs always serialize.
        let json = serde_json::to_vec(&head).unwrap_or_default();
        let parts = [&self.undescribed, &self.thumbnail];
        let mut out = BytesMut::with_capacity(
            4 + json.len()
                + parts
                    .iter()
                    .flat_map(|p| p.as_ref())
                    .map(Bytes::len)
                    .sum::<usize>(),
        );
        out.put_u32(json.len() as u32);
        out.put_slice(&json);
        for part in parts.into_iter().flatten() {
            out.put_slice(part);
        }
        out.freeze()
    }

    /// The inverse of [`JournalEntry::encode`]; `Err` names what is wrong with the bytes.
    pub fn decode(bytes: &Bytes) -> Result<JournalEntry, String> {
        let head_len = bytes
            .get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or("entry shorter than its length prefix")?;
        let json = bytes
            .get(4..4 + head_len)
            .ok_or("entry shorter than its head")?;
        let head: Head = serde_json::from_slice(json).map_err(|e| format!("entry head: {e}"))?;
        let mut at = 4 + head_len;
        let mut take = |len: Option<usize>| -> Result<Option<Bytes>, String> {
            let Some(len) = len else { return Ok(None) };
            if bytes.len() < at + len {
                return Err("entry shorter than its attachments".into());
            }
            at += len;
            Ok(Some(bytes.slice(at - len..at)))
        };
        let undescribed = take(head.undescribed_len)?;
        let thumbnail = take(head.thumbnail_len)?;
        if at != bytes.len() {
            return Err("entry longer than its head says".into());
        }
        Ok(JournalEntry {
            op: head.op,
            undescribed,
            thumbnail,
        })
    }

    /// Writes the entry's fact to a node's sled. Idempotent: a fact already there changes nothing.
    pub fn apply(&self, store: &Store) -> Result<(), StorageError> {
        match &self.op {
            SessionOp::Opened { session } => {
                store.insert_session(session)?;
            }
            SessionOp::Frame { frame, session } => {
                store.record_frame(FrameWrite {
                    frame,
                    session,
                    undescribed_bytes: self.undescribed.as_deref(),
                    gate_thumbnail: self.thumbnail.as_deref(),
                })?;
            }
            SessionOp::Described {
                session,
                analysis,
                keep_keyframe,
            } => {
                store.record_description(session, analysis, *keep_keyframe)?;
            }
            SessionOp::Batched { session, batch } => {
                store.record_batch(session, batch)?;
            }
            SessionOp::Closed { session } => {
                // A session closed here already (same journal) closes again to the same record.
                store.close_session(session)?;
            }
            SessionOp::Resumed { .. } => {}
        }
        Ok(())
    }
}

/// Why a journal operation failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Another node appended to the session since this writer last did (the session has moved), or
    /// the journal this writer knew is gone (the session finished elsewhere).
    #[error("session {0} has moved to another ingest node")]
    Moved(String),
    /// NATS could not be reached or refused the operation.
    #[error("session journal: {0}")]
    Unavailable(String),
    /// An entry in the journal does not decode.
    #[error("session journal: entry {seq} of session {session_id} is corrupt: {reason}")]
    Corrupt {
        session_id: String,
        seq: u64,
        reason: String,
    },
    /// Applying an entry to sled failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<JournalError> for crate::PipelineError {
    fn from(e: JournalError) -> Self {
        match e {
            JournalError::Moved(id) => crate::PipelineError::Moved(id),
            JournalError::Unavailable(_) => crate::PipelineError::Unavailable(e.to_string()),
            JournalError::Corrupt { .. } => crate::PipelineError::Internal(e.to_string()),
            JournalError::Storage(e) => crate::PipelineError::Storage(e),
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> JournalError {
    JournalError::Unavailable(e.to_string())
}

/// The stream's configuration: file storage, `replicas` copies, entries kept `max_age`.
pub(crate) fn stream_config(replicas: usize, max_age: Duration) -> stream::Config {
    stream::Config {
        name: SESSION_STREAM.into(),
        subjects: vec!["crow.sessions.*".into()],
        storage: stream::StorageType::File,
        num_replicas: replicas,
        max_age,
        ..Default::default()
    }
}

/// One session's journal, as its single writer (the session actor) or a reader (a node taking it over)
/// sees it.
pub(crate) struct SessionJournal {
    js: jetstream::Context,
    session_id: String,
    subject: String,
    /// Stream sequence of the last entry this writer knows of (0: none).
    last_seq: u64,
    /// This writer's own id, part of each append's `Nats-Msg-Id`: JetStream answers a repeated id as
    /// stored without checking the expected sequence, so two writers must never send the same id.
    writer: uuid::Uuid,
}

impl SessionJournal {
    /// The journal of `session_id` (nothing is read until [`SessionJournal::replay`]).
    pub fn new(js: jetstream::Context, session_id: &str) -> SessionJournal {
        SessionJournal {
            js,
            session_id: session_id.to_owned(),
            subject: format!("crow.sessions.{session_id}"),
            last_seq: 0,
            writer: uuid::Uuid::new_v4(),
        }
    }

    /// Applies every entry of the session to `store`, in order, and makes this journal's writer
    /// continue after the last one. Returns the number of entries (0: the cluster never saw the
    /// session).
    pub async fn replay(&mut self, store: &Store) -> Result<usize, JournalError> {
        let stream = self
            .js
            .get_stream(SESSION_STREAM)
            .await
            .map_err(unavailable)?;
        let last = match stream.get_last_raw_message_by_subject(&self.subject).await {
            Ok(m) => m.sequence,
            Err(e) if matches!(e.kind(), stream::LastRawMessageErrorKind::NoMessageFound) => {
                self.last_seq = 0;
                return Ok(0);
            }
            Err(e) => return Err(unavailable(e)),
        };
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: self.subject.clone(),
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        let mut messages = consumer.messages().await.map_err(unavailable)?;
        let mut applied = 0;
        loop {
            // Entries purged meanwhile (the session finished elsewhere) never arrive: do not wait forever.
            let message = match tokio::time::timeout(REPLAY_IDLE, messages.next()).await {
                Ok(Some(message)) => message.map_err(unavailable)?,
                Ok(None) => return Err(unavailable("the journal's consumer ended early")),
                Err(_) => {
                    return Err(unavailable(format!(
                        "no journal entry for {} s while replaying",
                        REPLAY_IDLE.as_secs()
                    )))
                }
            };
            let seq = message.info().map_err(unavailable)?.stream_sequence;
            let entry =
                JournalEntry::decode(&message.payload).map_err(|reason| JournalError::Corrupt {
                    session_id: self.session_id.clone(),
                    seq,
                    reason,
                })?;
            store.run(move |s| entry.apply(s)).await?;
            applied += 1;
            if seq >= last {
                break;
            }
        }
        self.last_seq = last;
        Ok(applied)
    }

    /// Deletes a finished session's journal but its last entry, the close: call it once the session is
    /// closed and every batch of it has been handed on (the journal would only replay to the same
    /// state). The close stays as the session's tombstone until `max_age`: a node replaying the session
    /// later (its stale sled still says open) learns that it is closed, and a stale writer's next append
    /// is refused. `max_age` also removes what a crash leaves behind.
    pub async fn forget(js: &jetstream::Context, session_id: &str) {
        let subject = format!("crow.sessions.{session_id}");
        let purged = match js.get_stream(SESSION_STREAM).await {
            Ok(stream) => stream
                .purge()
                .filter(subject)
                .keep(1)
                .await
                .map(|r| r.purged)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match purged {
            Ok(entries) => tracing::debug!(session_id, entries, "session journal purged"),
            // The entries expire with the stream's max_age.
            Err(e) => tracing::warn!(session_id, error = %e, "session journal not purged"),
        }
    }

    /// [`SessionJournal::forget`] for this journal's session.
    pub async fn forget_all(&self) {
        SessionJournal::forget(&self.js, &self.session_id).await;
    }

    /// Appends one entry; returns once JetStream stored it. Fails with [`JournalError::Moved`] when
    /// another writer appended since this one's last append or replay. While NATS does not answer
    /// (a server failing over, a leader election) the append is retried for [`APPEND_RETRY`]; the
    /// entry's `Nats-Msg-Id` (session, position and writer) makes a retry of an append whose answer was lost
    /// land once.
    pub async fn append(&mut self, entry: &JournalEntry) -> Result<(), JournalError> {
        if self.last_seq == 0 && !matches!(entry.op, SessionOp::Opened { .. }) {
            // Only the opening starts a journal: a writer that knows no entry of its session (its
            // journal expired, or it never replayed one) must not start a second history of it.
            return Err(JournalError::Moved(self.session_id.clone()));
        }
        let payload = entry.encode();
        let deadline = tokio::time::Instant::now() + APPEND_RETRY;
        let mut pause = Duration::from_millis(50);
        loop {
            match self.try_append(payload.clone()).await {
                Ok(seq) => {
                    self.last_seq = seq;
                    return Ok(());
                }
                Err(AppendFailure::Moved) => {
                    return Err(JournalError::Moved(self.session_id.clone()))
                }
                Err(AppendFailure::Final(e)) => return Err(unavailable(e)),
                Err(AppendFailure::Transient(e)) => {
                    if tokio::time::Instant::now() + pause > deadline {
                        return Err(unavailable(e));
                    }
                    tracing::warn!(session_id = %self.session_id, error = %e, "session journal append failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    async fn try_append(&self, payload: Bytes) -> Result<u64, AppendFailure> {
        use jetstream::context::PublishErrorKind as Kind;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Nats-Expected-Last-Subject-Sequence",
            self.last_seq.to_string().as_str(),
        );
        headers.insert(
            "Nats-Msg-Id",
            format!(
                "{}:{}:{}",
                self.session_id,
                self.last_seq,
                self.writer.simple()
            )
            .as_str(),
        );
        let classify = |e: jetstream::context::PublishError| match e.kind() {
            Kind::WrongLastSequence => AppendFailure::Moved,
            Kind::MaxPayloadExceeded => AppendFailure::Final(e.to_string()),
            _ => AppendFailure::Transient(e.to_string()),
        };
        let ack = self
            .js
            .publish_with_headers(self.subject.clone(), headers, payload)
            .await
            .map_err(classify)?
            .await
            .map_err(classify)?;
        Ok(ack.sequence)
    }
}

/// How long [`SessionJournal::replay`] waits for the next entry.
const REPLAY_IDLE: Duration = Duration::from_secs(10);

/// How long [`SessionJournal::append`] keeps trying while NATS does not answer.
pub const APPEND_RETRY: Duration = Duration::from_secs(20);

enum AppendFailure {
    /// Another writer appended first.
    Moved,
    /// Retrying cannot help (e.g. the entry exceeds the servers' `max_payload`).
    Final(String),
    /// NATS did not answer or is electing a leader.
    Transient(String),
}

/// Whether a session is closed and every batch of it handed on, as this node's sled says: its journal
/// is no longer needed.
pub(crate) async fn finished(store: &Store, session_id: &str) -> Result<bool, StorageError> {
    let session_id = session_id.to_owned();
    store
        .run(move |store| {
            Ok(store
                .get_session(&session_id)?
                .is_some_and(|s| s.status == crow_storage::SessionStatus::Closed)
                && store.unanalyzed_count(&session_id)? == 0)
        })
        .await
}

/// Key-value bucket naming each camera's current session across the cluster.
pub const CAMERA_BUCKET: &str = "crow_cameras";

/// Which session is each camera's current one, cluster-wide (JetStream KV, compare-and-set): a camera
/// that reconnects to any ingest node without naming its session continues that session.
#[derive(Clone)]
pub(crate) struct CameraSessions {
    kv: jetstream::kv::Store,
}

/// A camera's current session as the bucket holds it, with the revision to compare against.
pub(crate) struct CurrentSession {
    pub session_id: Option<String>,
    pub revision: Option<u64>,
    /// The node serving the session.
    pub node: Option<String>,
}

impl CurrentSession {
    /// Whether the entry names `session_id` as served by a node other than `node`.
    pub fn names_other_node(&self, session_id: &str, node: &str) -> bool {
        self.session_id.as_deref() == Some(session_id)
            && self.node.as_deref().is_some_and(|n| n != node)
    }
}

/// A camera's entry: its current session and the node that serves it. The entry changes only by
/// compare-and-set: when a session opens, and whenever another node takes the session over (the camera
/// reconnected there, or its node died and a survivor adopted it).
#[derive(Serialize, Deserialize)]
struct CameraValue {
    session_id: String,
    /// The node serving the session now: its owner, for as long as the node says it is alive.
    node: String,
}

/// A KV key for a camera: `<org>/<camera>`, with `.` (a token separator in NATS) written `=2e`; ids
/// are `[A-Za-z0-9._-]`, so the key is unambiguous and valid.
fn camera_key(organization_id: &str, camera_id: &str) -> String {
    let escape = |s: &str| s.replace('.', "=2e");
    format!("{}/{}", escape(organization_id), escape(camera_id))
}

/// The organization and camera of a [`camera_key`].
fn parse_camera_key(key: &str) -> Option<(String, String)> {
    let (org, camera) = key.split_once('/')?;
    let unescape = |s: &str| s.replace("=2e", ".");
    Some((unescape(org), unescape(camera)))
}

/// A camera's entry in the bucket, as the orphan sweep reads it.
pub(crate) struct CameraEntry {
    pub organization_id: String,
    pub camera_id: String,
    /// The session, the node serving it and the entry's revision, for a compare-and-set.
    pub current: CurrentSession,
}

/// Key-value bucket of the live ingest nodes: each node puts its name every third of
/// `orphan_after_ms`, and the bucket forgets a name `orphan_after_ms` after its last put.
pub const NODE_BUCKET: &str = "crow_ingest_nodes";

/// The ingest nodes alive now, by heartbeat (JetStream KV whose entries expire).
#[derive(Clone)]
pub(crate) struct LiveNodes {
    kv: jetstream::kv::Store,
}

impl LiveNodes {
    /// The bucket (created if missing): a name is forgotten `ttl` after its last heartbeat.
    pub async fn open(
        js: &jetstream::Context,
        replicas: usize,
        ttl: Duration,
    ) -> Result<LiveNodes, JournalError> {
        let kv = bucket(js, NODE_BUCKET, replicas, ttl).await?;
        Ok(LiveNodes { kv })
    }

    /// Says this node is alive.
    pub async fn heartbeat(&self, node: &str) -> Result<(), JournalError> {
        self.kv
            .put(node_key(node), Bytes::from(node.to_owned()))
            .await
            .map(drop)
            .map_err(unavailable)
    }

    /// The names of the nodes whose last heartbeat is younger than the bucket's `ttl`.
    pub async fn alive(&self) -> Result<HashSet<String>, JournalError> {
        Ok(keys(&self.kv).await?.into_iter().collect())
    }
}

/// A key-value bucket of one entry per key, created if missing; `max_age` zero keeps entries forever.
async fn bucket(
    js: &jetstream::Context,
    name: &str,
    replicas: usize,
    max_age: Duration,
) -> Result<jetstream::kv::Store, JournalError> {
    match js.get_key_value(name).await {
        Ok(kv) => Ok(kv),
        Err(_) => js
            .create_key_value(jetstream::kv::Config {
                bucket: name.into(),
                history: 1,
                max_age,
                storage: stream::StorageType::File,
                num_replicas: replicas,
                ..Default::default()
            })
            .await
            .map_err(unavailable),
    }
}

/// Every key of a bucket.
async fn keys(kv: &jetstream::kv::Store) -> Result<Vec<String>, JournalError> {
    let mut keys = kv.keys().await.map_err(unavailable)?;
    let mut out = Vec::new();
    while let Some(key) = keys.next().await {
        out.push(key.map_err(unavailable)?);
    }
    Ok(out)
}

/// A node name as a KV key (names are free-form; keys are `[-/_=.a-zA-Z0-9]`).
pub(crate) fn node_key(node: &str) -> String {
    node.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl CameraSessions {
    /// The bucket (created if missing) with `replicas` copies.
    pub async fn open(
        js: &jetstream::Context,
        replicas: usize,
    ) -> Result<CameraSessions, JournalError> {
        let kv = bucket(js, CAMERA_BUCKET, replicas, Duration::ZERO).await?;
        Ok(CameraSessions { kv })
    }

    /// The camera's current session, if the cluster has one for it.
    pub async fn current(
        &self,
        organization_id: &str,
        camera_id: &str,
    ) -> Result<CurrentSession, JournalError> {
        let entry = self
            .kv
            .entry(camera_key(organization_id, camera_id))
            .await
            .map_err(unavailable)?;
        let Some(entry) = entry else {
            return Ok(CurrentSession {
                session_id: None,
                revision: None,
                node: None,
            });
        };
        let value = (entry.operation == jetstream::kv::Operation::Put)
            .then(|| serde_json::from_slice::<CameraValue>(&entry.value).ok())
            .flatten();
        Ok(CurrentSession {
            session_id: value.as_ref().map(|v| v.session_id.clone()),
            revision: Some(entry.revision),
            node: value.map(|v| v.node),
        })
    }

    /// Every camera's entry that names a session.
    pub async fn entries(&self) -> Result<Vec<CameraEntry>, JournalError> {
        let mut out = Vec::new();
        for key in keys(&self.kv).await? {
            let Some((organization_id, camera_id)) = parse_camera_key(&key) else {
                continue;
            };
            let Some(entry) = self.kv.entry(key).await.map_err(unavailable)? else {
                continue;
            };
            if entry.operation != jetstream::kv::Operation::Put {
                continue;
            }
            let Ok(value) = serde_json::from_slice::<CameraValue>(&entry.value) else {
                continue;
            };
            out.push(CameraEntry {
                organization_id,
                camera_id,
                current: CurrentSession {
                    session_id: Some(value.session_id),
                    revision: Some(entry.revision),
                    node: Some(value.node),
                },
            });
        }
        Ok(out)
    }

    /// Makes `session_id`, served by `node`, the camera's current session if the bucket still holds
    /// what `seen` read. `Ok(false)`: another node changed it first (read it again).
    pub async fn replace(
        &self,
        organization_id: &str,
        camera_id: &str,
        seen: &CurrentSession,
        session_id: &str,
        node: &str,
    ) -> Result<bool, JournalError> {
        let key = camera_key(organization_id, camera_id);
        let value: Bytes = serde_json::to_vec(&CameraValue {
            session_id: session_id.to_owned(),
            node: node.to_owned(),
        })
        .unwrap_or_default()
        .into();
        let result = match seen.revision {
            Some(revision) => self
                .kv
                .update(key, value, revision)
                .await
                .map(drop)
                .map_err(|e| {
                    (
                        matches!(e.kind(), jetstream::kv::UpdateErrorKind::WrongLastRevision),
                        e.to_string(),
                    )
                }),
            None => self.kv.create(key, value).await.map(drop).map_err(|e| {
                (
                    matches!(e.kind(), jetstream::kv::CreateErrorKind::AlreadyExists),
                    e.to_string(),
                )
            }),
        };
        match result {
            Ok(()) => Ok(true),
            Err((true, _)) => Ok(false),
            Err((false, e)) => Err(JournalError::Unavailable(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crow_storage::FrameOutcome;

    #[test]
    fn entries_round_trip_with_and_without_attachments() {
        let session = SessionRecord::new_open("org", "cam");
        let plain = JournalEntry::from(SessionOp::Opened {
            session: session.clone(),
        });
        assert_eq!(JournalEntry::decode(&plain.encode()).unwrap(), plain);
        let frame = JournalEntry {
            op: SessionOp::Frame {
                frame: FrameRecord {
                    frame_index: 7,
                    captured_at_ms: 1_000,
                    outcome: FrameOutcome::Accepted,
                    description: None,
                    digest: Some(crow_storage::FrameDigest::of(b"\xff\xd8jpeg\xff\xd9")),
                },
                session,
            },
            undescribed: Some(Bytes::from_static(b"\xff\xd8jpeg\xff\xd9")),
            thumbnail: Some(Bytes::from_static(b"thumb")),
        };
        let bytes = frame.encode();
        assert_eq!(JournalEntry::decode(&bytes).unwrap(), frame);
        // Cut short or padded, an entry is refused rather than misread.
        assert!(JournalEntry::decode(&bytes.slice(..bytes.len() - 1)).is_err());
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(JournalEntry::decode(&Bytes::from(longer)).is_err());
        assert!(JournalEntry::decode(&Bytes::from_static(b"\0\0")).is_err());
    }

    #[test]
    fn applying_an_entry_twice_changes_nothing() {
        let store = Store::temporary().unwrap();
        let mut session = SessionRecord::new_open("org", "cam");
        let opened = JournalEntry::from(SessionOp::Opened {
            session: session.clone(),
        });
        opened.apply(&store).unwrap();
        session.counters.received = 1;
        session.counters.accepted = 1;
        session.last_frame_index = Some(0);
        let frame = JournalEntry {
            op: SessionOp::Frame {
                frame: FrameRecord {
                    frame_index: 0,
                    captured_at_ms: 5,
                    outcome: FrameOutcome::Accepted,
                    description: None,
                    digest: None,
                },
                session: session.clone(),
            },
            undescribed: Some(Bytes::from_static(b"bytes")),
            thumbnail: None,
        };
        for _ in 0..2 {
            opened.apply(&store).unwrap();
            frame.apply(&store).unwrap();
        }
        assert_eq!(store.get_session(&session.id).unwrap().unwrap(), session);
        assert_eq!(store.undescribed_frames(&session.id).unwrap().len(), 1);
        assert_eq!(
            store
                .open_session_for_camera("org", "cam")
                .unwrap()
                .map(|s| s.id),
            Some(session.id)
        );
    }
}
