//! Sentence embeddings of interactions, for search by meaning.
//!
//! An interaction is stored first and embedded later, off the ingest path: inserting it also queues its
//! id (`embed_queue`), and the embedding worker drains that queue in bounded batches. What the worker
//! stores ([`RecordVectors`]) names the model that made it; switching models re-queues every interaction
//! ([`Store::use_embedding_model`]) so vectors of two models never mix.
//!
//! sled trees:
//! - `embed_queue`: `id` -> () for interactions that have no vectors of the current model yet;
//! - `embeddings`: `seq` (u64 BE, increasing) -> [`RecordVectors`] (encoded by [`RecordVectors::encode`]), so
//!   a reader catches up with everything stored after the last `seq` it saw;
//! - `embedding_ids`: `id` -> its `seq`, so a re-embedded record replaces its old entry;
//! - `embedding_meta`: `model` -> the model whose vectors the trees hold.

use serde::{Deserialize, Serialize};
use sled::Transactional;

use crate::model::{Interaction, SourceType};
use crate::store::tx_err;
use crate::{Result, StorageError, Store};

/// Most texts embedded per record: its summary and its first distinct descriptions.
pub const MAX_TEXTS_PER_RECORD: usize = 8;

/// Most characters of one text handed to the model (the model reads at most 512 tokens anyway).
const MAX_TEXT_CHARS: usize = 2_000;

/// The texts of an interaction that get a vector each: the summary first, then the distinct descriptions
/// of its frames (CCTV) or the distinct string values of its data (web, social), at most
/// [`MAX_TEXTS_PER_RECORD`] in all, each cut to a bounded length.
pub fn embedding_texts(i: &Interaction) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |text: &str| {
        let text = text.trim();
        if text.is_empty() || out.len() >= MAX_TEXTS_PER_RECORD {
            return;
        }
        let text: String = text.chars().take(MAX_TEXT_CHARS).collect();
        if !out.contains(&text) {
            out.push(text);
        }
    };
    add(&i.summary);
    if i.source_type == SourceType::Cctv {
        if let Some(frames) = i.data.get("frames").and_then(|f| f.as_array()) {
            for frame in frames {
                if let Some(text) = frame.get("text").and_then(|t| t.as_str()) {
                    add(text);
                }
            }
        }
    } else {
        // Free text a caller sent (messages, comments, page titles): depth-first, in document order.
        let mut stack = vec![&i.data];
        while let Some(v) = stack.pop() {
            match v {
                serde_json::Value::String(s) if s.contains(' ') => add(s),
                serde_json::Value::Array(a) => stack.extend(a.iter().rev()),
                serde_json::Value::Object(o) => stack.extend(o.values().rev()),
                _ => {}
            }
        }
    }
    out
}

/// The vectors of one interaction, as one model made them.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordVectors {
    /// The interaction.
    pub id: String,
    /// Its organization.
    pub organization_id: String,
    /// Its source, for the source filter.
    pub source_type: SourceType,
    /// Its time, for the time filter.
    pub timestamp_ms: i64,
    /// The model that made the vectors (see [`Store::use_embedding_model`]).
    pub model: String,
    /// One unit vector per text of [`embedding_texts`], all of one length.
    pub vectors: Vec<Vec<f32>>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    id: String,
    organization_id: String,
    source_type: SourceType,
    timestamp_ms: i64,
    model: String,
    count: usize,
    dimensions: usize,
}

impl RecordVectors {
    /// The vectors of `interaction`.
    pub fn of(interaction: &Interaction, model: &str, vectors: Vec<Vec<f32>>) -> RecordVectors {
        RecordVectors {
            id: interaction.id.clone(),
            organization_id: interaction.organization_id.clone(),
            source_type: interaction.source_type,
            timestamp_ms: interaction.timestamp_ms,
            model: model.to_owned(),
            vectors,
        }
    }

    /// Bytes: a little-endian u32 header length, the header (JSON), then the vectors as little-endian
    /// f32s, one after another.
    pub fn encode(&self) -> Vec<u8> {
        let dimensions = self.vectors.first().map_or(0, Vec::len);
        let header = serde_json::to_vec(&Header {
            id: self.id.clone(),
            organization_id: self.organization_id.clone(),
            source_type: self.source_type,
            timestamp_ms: self.timestamp_ms,
            model: self.model.clone(),
            count: self.vectors.len(),
            dimensions,
        })
        .unwrap_or_default();
        let mut out = Vec::with_capacity(4 + header.len() + 4 * dimensions * self.vectors.len());
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        for v in &self.vectors {
            for x in v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        out
    }

    /// Reads what [`RecordVectors::encode`] wrote; `what` names the place for the error.
    pub fn decode(what: &[u8], bytes: &[u8]) -> Result<RecordVectors> {
        let corrupt = |why: &str| StorageError::corrupt(what, why);
        let len = bytes
            .get(..4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| corrupt("embedding shorter than its header length"))?
            as usize;
        let header: Header = bytes
            .get(4..4 + len)
            .ok_or_else(|| corrupt("embedding shorter than its header"))
            .and_then(|h| serde_json::from_slice(h).map_err(|e| StorageError::corrupt(what, e)))?;
        let body = &bytes[4 + len..];
        if body.len() != 4 * header.count * header.dimensions {
            return Err(corrupt("embedding vectors of the wrong length"));
        }
        let floats: Vec<f32> = body
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let vectors = if header.dimensions == 0 {
            Vec::new()
        } else {
            floats
                .chunks_exact(header.dimensions)
                .map(<[f32]>::to_vec)
                .collect()
        };
        Ok(RecordVectors {
            id: header.id,
            organization_id: header.organization_id,
            source_type: header.source_type,
            timestamp_ms: header.timestamp_ms,
            model: header.model,
            vectors,
        })
    }
}

const META_MODEL: &[u8] = b"model";

impl Store {
    /// Makes `model` the one whose vectors this store keeps. When it differs from the model recorded
    /// before, every interaction is queued to be embedded again (the old vectors stay until replaced,
    /// and readers skip them by their model). Returns how many interactions were queued.
    pub fn use_embedding_model(&self, model: &str) -> Result<usize> {
        let i = &self.inner;
        if i.embedding_meta.get(META_MODEL)?.as_deref() == Some(model.as_bytes()) {
            return Ok(0);
        }
        let mut queued = 0;
        let mut batch = sled::Batch::default();
        for item in i.interaction_ids.iter() {
            let (id, _) = item?;
            batch.insert(id, &[]);
            queued += 1;
            if queued % 10_000 == 0 {
                i.embed_queue.apply_batch(std::mem::take(&mut batch))?;
            }
        }
        i.embed_queue.apply_batch(batch)?;
        // Recorded last: a crash before this line queues everything again on the next start.
        i.embedding_meta.insert(META_MODEL, model.as_bytes())?;
        Ok(queued)
    }

    /// Up to `limit` interactions waiting to be embedded, and how many wait in all.
    pub fn embedding_backlog(&self, limit: usize) -> Result<(Vec<Interaction>, usize)> {
        let i = &self.inner;
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for item in i.embed_queue.iter().take(limit) {
            let (id, _) = item?;
            match self.get_interaction(&String::from_utf8_lossy(&id))? {
                Some(interaction) => out.push(interaction),
                None => gone.push(id),
            }
        }
        for id in gone {
            i.embed_queue.remove(id)?;
        }
        Ok((out, i.embed_queue.len()))
    }

    /// Stores the vectors of interactions and takes them off the queue, in one transaction. A record
    /// embedded before gets its new vectors under a new `seq`.
    pub fn store_embeddings(&self, records: &[RecordVectors]) -> Result<()> {
        let i = &self.inner;
        let seqs = records
            .iter()
            // Positions start at 1, so `after = 0` reads everything.
            .map(|_| i.db.generate_id().map(|id| id + 1))
            .collect::<std::result::Result<Vec<u64>, _>>()?;
        (&i.embeddings, &i.embedding_ids, &i.embed_queue)
            .transaction(|(embeddings, ids, queue)| {
                for (r, seq) in records.iter().zip(&seqs) {
                    if let Some(old) = ids.get(r.id.as_bytes())? {
                        embeddings.remove(old)?;
                    }
                    let key = seq.to_be_bytes();
                    embeddings.insert(&key, r.encode())?;
                    ids.insert(r.id.as_bytes(), &key)?;
                    queue.remove(r.id.as_bytes())?;
                }
                Ok::<_, sled::transaction::ConflictableTransactionError<StorageError>>(())
            })
            .map_err(tx_err)?;
        Ok(())
    }

    /// Stored vectors of `model` with a `seq` above `after`, in `seq` order, at most `limit`, each with
    /// its `seq`.
    pub fn embeddings_after(
        &self,
        model: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, RecordVectors)>> {
        let mut out = Vec::new();
        let start = after.saturating_add(1).to_be_bytes();
        for item in self.inner.embeddings.range(start..) {
            let (key, value) = item?;
            let seq = <[u8; 8]>::try_from(key.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| StorageError::corrupt(&key, "embedding key is not a u64"))?;
            let r = RecordVectors::decode(&key, &value)?;
            if r.model == model {
                out.push((seq, r));
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: usize, source: SourceType, data: serde_json::Value) -> Interaction {
        Interaction {
            id: format!("id-{n}"),
            organization_id: "org".into(),
            source_type: source,
            session_id: None,
            data,
            summary: format!("summary {n}"),
            confidence: 1.0,
            tags: vec![],
            product_ids: vec![],
            timestamp_ms: n as i64,
            created_at_ms: 0,
        }
    }

    #[test]
    fn texts_are_the_summary_then_descriptions_or_free_text() {
        let cctv = record(
            1,
            SourceType::Cctv,
            serde_json::json!({"camera_id": "cam-1", "frames": [
                {"text": "a man looks at shoes", "describer": "opencv"},
                {"text": "a man looks at shoes"},
                {"text": "he leaves"}]}),
        );
        assert_eq!(
            embedding_texts(&cctv),
            ["summary 1", "a man looks at shoes", "he leaves"]
        );
        let web = record(
            2,
            SourceType::Web,
            serde_json::json!({"page": "/shoes", "comment": "Do you have these in blue?"}),
        );
        assert_eq!(
            embedding_texts(&web),
            ["summary 2", "Do you have these in blue?"]
        );
    }

    #[test]
    fn stored_interactions_queue_for_embedding_and_a_new_model_queues_them_again() {
        let store = Store::temporary().unwrap();
        assert_eq!(store.use_embedding_model("m1").unwrap(), 0);
        let records: Vec<Interaction> = (0..5)
            .map(|n| record(n, SourceType::Web, serde_json::json!({})))
            .collect();
        store.insert_interactions(&records).unwrap();
        let (backlog, waiting) = store.embedding_backlog(3).unwrap();
        assert_eq!((backlog.len(), waiting), (3, 5));
        let vectors: Vec<RecordVectors> = records
            .iter()
            .map(|r| RecordVectors::of(r, "m1", vec![vec![0.6, 0.8]]))
            .collect();
        store.store_embeddings(&vectors).unwrap();
        assert_eq!(store.embedding_backlog(10).unwrap().1, 0);
        let stored = store.embeddings_after("m1", 0, 100).unwrap();
        assert_eq!(stored.len(), 5);
        assert_eq!(
            stored[0].1, vectors[0],
            "the bytes read back are the vectors written"
        );
        let last = stored.last().unwrap().0;
        assert!(store.embeddings_after("m1", last, 100).unwrap().is_empty());
        // Another model: everything is queued again, and its vectors replace the old ones.
        assert_eq!(store.use_embedding_model("m2").unwrap(), 5);
        assert_eq!(store.use_embedding_model("m2").unwrap(), 0);
        store
            .store_embeddings(&[RecordVectors::of(&records[0], "m2", vec![vec![1.0, 0.0]])])
            .unwrap();
        assert_eq!(store.embedding_backlog(10).unwrap().1, 4);
        assert_eq!(store.embeddings_after("m1", 0, 100).unwrap().len(), 4);
        assert_eq!(store.embeddings_after("m2", 0, 100).unwrap().len(), 1);
        assert!(matches!(
            RecordVectors::decode(b"k", &[1, 0, 0, 0, b'{']),
            Err(StorageError::Corrupt { .. })
        ));
    }
}
