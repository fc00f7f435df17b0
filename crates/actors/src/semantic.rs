//! Search by meaning over an organization's interactions.
//!
//! - An **embedding worker** drains the record store's embedding backlog in bounded batches, off the
//!   ingest path: each interaction's summary and descriptions ([`embedding_texts`]) become unit vectors
//!   of the sentence-embedding model (all-MiniLM-L6-v2 by default), stored with the record's id and the
//!   model that made them.
//! - A **[`VectorIndex`] per organization** in memory, caught up from the store by position: an exact
//!   scan while the organization is small, an HNSW graph (`hnsw_rs`) once it holds
//!   [`SearchConfig::ann_from`] vectors, so a query's cost grows sub-linearly with the records.
//! - **[`SemanticSearch::search`]** embeds the question, ranks records by their best-matching text
//!   (cosine similarity). Records that hold every content word of the question come first (so nothing
//!   word search finds is lost); the others must reach [`SearchConfig::min_similarity`] (plus
//!   [`EXACT_WORDS_MARGIN`] when some record holds all the words) and gain a small bonus for the
//!   question's words they hold. Pages go by position (score, id), so a page never repeats a record
//!   of an earlier one. Word, source and time filters narrow the ranked set.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use crow_inference::llama::Embedder;
use crow_storage::embeddings::{embedding_texts, RecordVectors};
use crow_storage::text::{interaction_words, words};
use crow_storage::vector_index::{IndexFilter, IndexHit, VectorIndex};
use crow_storage::{Interaction, InteractionFilter, Records, StorageError};
use serde::{Deserialize, Serialize};

use crate::PipelineError;

/// Search by meaning (`[pipeline.search]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// Off: no embeddings are made and a meaning query fails with `FAILED_PRECONDITION`.
    pub enabled: bool,
    /// The sentence-embedding model: a BERT GGUF with mean pooling, made by `scripts/setup-models.sh`.
    /// Missing, search by meaning is off (said in the log) and the rest of crow runs.
    pub model: PathBuf,
    /// CPU threads of one embedding call.
    pub threads: i32,
    /// Interactions embedded per round of the worker.
    pub embed_batch: usize,
    /// How often the worker looks for new interactions when it has none, and how often an API node
    /// catches up with vectors other nodes stored, ms.
    pub poll_ms: u64,
    /// Records whose best text is less similar than this to the question are not results (0..1,
    /// cosine). Calibrated on the labelled set of `crow bench search`.
    pub min_similarity: f32,
    /// An organization with at least this many vectors is searched through an HNSW graph; below,
    /// exactly.
    pub ann_from: usize,
    /// Breadth of the HNSW search (candidates kept per step), at least the number of results asked.
    pub ef_search: usize,
    /// Most records one query ranks (deeper pages end there).
    pub max_results: usize,
    /// `Ask` shows the model only records at least this similar to the question (stricter than
    /// `min_similarity`: an answer must not rest on weak matches).
    pub ask_min_similarity: f32,
    /// A description span matches a catalog product (name, alias or description) only at least this
    /// similar (cosine). Calibrated on the product set of `crow bench search`.
    pub product_min_similarity: f32,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            enabled: true,
            model: PathBuf::from("models/all-minilm-l6-v2.gguf"),
            threads: 2,
            embed_batch: 32,
            poll_ms: 500,
            min_similarity: 0.3,
            ann_from: 10_000,
            ef_search: 384,
            max_results: 1_000,
            ask_min_similarity: 0.4,
            product_min_similarity: 0.7,
        }
    }
}

/// Weight of the question's own words: a record holding all of them gains this much score.
pub const WORD_BONUS: f32 = 0.15;

/// With records that hold every word of the question, how much closer than
/// [`SearchConfig::min_similarity`] other records must be to be results as well (calibrated by `crow
/// bench search`: word queries keep word search's precision).
pub const EXACT_WORDS_MARGIN: f32 = 0.2;

/// Most records the word filter (`q`) hands to the meaning ranking.
pub const MAX_WORD_CANDIDATES: usize = 5_000;

/// One record found by meaning.
#[derive(Debug, Clone)]
pub struct SemanticHit {
    /// The record.
    pub interaction: Interaction,
    /// Its rank score: 1 + the similarity when it holds every content word of the question (such
    /// records come first), else the similarity plus [`WORD_BONUS`] times the share of the question's
    /// words it holds.
    pub score: f32,
    /// The cosine similarity alone.
    pub similarity: f32,
    /// The record's text that matched best (its summary or one description).
    pub matched: String,
}

/// One page of a search by meaning.
#[derive(Debug, Clone, Default)]
pub struct SemanticPage {
    /// Best first.
    pub hits: Vec<SemanticHit>,
    /// Where the next page starts; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// One search by meaning ([`SemanticSearch::search`]).
#[derive(Debug, Clone, Copy)]
pub struct SemanticQuery<'a> {
    /// The organization searched.
    pub organization_id: &'a str,
    /// The question, in words.
    pub question: &'a str,
    /// Narrows the ranked records: words, source, time.
    pub filter: &'a InteractionFilter,
    /// Records per page.
    pub page_size: usize,
    /// Where the page starts: the previous page's `next_page_token`.
    pub page_token: Option<&'a str>,
    /// Similarity floor; `None`: `pipeline.search.min_similarity`.
    pub min_similarity: Option<f32>,
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    /// Organization the token was issued for.
    o: String,
    /// Score and id of the last record returned.
    s: f32,
    i: String,
    /// Records returned so far.
    n: usize,
}

/// Search by meaning for the API: the embedding model, every organization's [`VectorIndex`], and the
/// worker that embeds new interactions.
pub struct SemanticSearch {
    embedder: Arc<Embedder>,
    model: String,
    records: Records,
    config: SearchConfig,
    orgs: RwLock<HashMap<String, Arc<RwLock<VectorIndex>>>>,
    /// Whether this node keeps the indexes (it answers searches) or only embeds.
    indexes: bool,
    /// The stored vectors have been read once (searches wait for it: a half-loaded index would
    /// answer wrong).
    loaded: std::sync::atomic::AtomicBool,
    /// Store position of the last vectors indexed.
    position: tokio::sync::Mutex<u64>,
}

impl std::fmt::Debug for SemanticSearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SemanticSearch")
            .field("model", &self.model)
            .finish()
    }
}

/// How far below its last position an index re-reads: PostgreSQL sequence values of concurrent
/// writers become visible out of order.
const REREAD_MARGIN: u64 = 1_024;

impl SemanticSearch {
    /// Loads the model. With `index` (nodes that answer searches) the node keeps the organizations'
    /// indexes, which [`SemanticSearch::run`] fills from the stored vectors first; without, it only
    /// embeds. `None` when search is disabled or the model file is missing (said in the log).
    pub async fn load(
        records: Records,
        config: SearchConfig,
        index: bool,
    ) -> Result<Option<Arc<SemanticSearch>>, PipelineError> {
        if !config.enabled {
            return Ok(None);
        }
        if !config.model.exists() {
            tracing::warn!(model = %config.model.display(), "search by meaning is off: the embedding model is missing (scripts/setup-models.sh installs it)");
            return Ok(None);
        }
        let (path, threads) = (config.model.clone(), config.threads);
        let (embedder, model) = tokio::task::spawn_blocking(move || {
            let embedder = Embedder::load(&path, threads).map_err(|e| {
                PipelineError::InvalidArgument(format!("pipeline.search.model: {e}"))
            })?;
            let model = model_id(&path)?;
            Ok::<_, PipelineError>((embedder, model))
        })
        .await
        .map_err(|e| PipelineError::Internal(format!("loading the embedding model: {e}")))??;
        let queued = records
            .use_embedding_model(&model)
            .await
            .map_err(PipelineError::Storage)?;
        if queued > 0 {
            tracing::info!(%model, queued, "embedding model changed: every interaction is embedded again");
        }
        let search = Arc::new(SemanticSearch {
            embedder,
            model,
            records,
            config,
            orgs: RwLock::new(HashMap::new()),
            indexes: index,
            loaded: std::sync::atomic::AtomicBool::new(false),
            position: tokio::sync::Mutex::new(0),
        });
        tracing::info!(model = %search.model, "search by meaning on; the worker loads the stored vectors");
        Ok(Some(search))
    }

    /// The model's identity: its file name, length and SHA-256 prefix.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The settings in use.
    pub fn config(&self) -> &SearchConfig {
        &self.config
    }

    /// The embedding model.
    pub fn embedder(&self) -> &Arc<Embedder> {
        &self.embedder
    }

    /// Embeds texts off the async workers.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, PipelineError> {
        let embedder = Arc::clone(&self.embedder);
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            embedder.embed(&refs)
        })
        .await
        .map_err(|e| PipelineError::Internal(format!("embedding task: {e}")))?
        .map_err(|e| PipelineError::Internal(format!("embedding: {e}")))
    }

    /// Indexes the vectors stored since the last call; returns how many records it read (none on a
    /// node that only embeds).
    pub async fn catch_up(&self) -> Result<usize, PipelineError> {
        if !self.indexes {
            return Ok(0);
        }
        let mut position = self.position.lock().await;
        let mut read = 0;
        let mut after = position.saturating_sub(REREAD_MARGIN);
        loop {
            let page = self
                .records
                .embeddings_after(&self.model, after, 4_096)
                .await
                .map_err(PipelineError::Storage)?;
            let Some((last, _)) = page.last() else { break };
            after = *last;
            let full = page.len() == 4_096;
            read += page.len();
            let known = *position;
            let mut by_org: HashMap<String, Vec<(bool, RecordVectors)>> = HashMap::new();
            for (seq, r) in page {
                // Below the last position: read again only for a writer that committed late.
                by_org
                    .entry(r.organization_id.clone())
                    .or_default()
                    .push((seq > known, r));
            }
            for (org, rs) in by_org {
                let index = self.index(&org);
                // Building the graph is CPU work (seconds for a large catch-up): off the async workers.
                tokio::task::spawn_blocking(move || {
                    let mut index = index.write().unwrap_or_else(|e| e.into_inner());
                    let fresh: Vec<&RecordVectors> = rs
                        .iter()
                        .filter(|(new, r)| *new || !index.contains(&r.id))
                        .map(|(_, r)| r)
                        .collect();
                    index.add_many(fresh.into_iter().map(|r| {
                        (
                            r.id.as_str(),
                            r.source_type,
                            r.timestamp_ms,
                            r.vectors.as_slice(),
                        )
                    }));
                })
                .await
                .map_err(|e| PipelineError::Internal(format!("indexing vectors: {e}")))?;
            }
            *position = (*position).max(after);
            if !full {
                break;
            }
        }
        if !self.loaded.swap(true, std::sync::atomic::Ordering::AcqRel) {
            tracing::info!(model = %self.model, records = read, "search by meaning ready");
        }
        Ok(read)
    }

    fn index(&self, org: &str) -> Arc<RwLock<VectorIndex>> {
        if let Some(i) = self.orgs.read().unwrap_or_else(|e| e.into_inner()).get(org) {
            return Arc::clone(i);
        }
        let mut orgs = self.orgs.write().unwrap_or_else(|e| e.into_inner());
        Arc::clone(orgs.entry(org.to_owned()).or_insert_with(|| {
            Arc::new(RwLock::new(VectorIndex::new(
                self.embedder.dimensions(),
                self.config.ann_from,
            )))
        }))
    }

    /// Embeds up to one batch of the backlog and indexes it; returns how many records it embedded.
    pub async fn embed_backlog(&self) -> Result<usize, PipelineError> {
        let batch = self
            .records
            .embedding_backlog(&self.model, self.config.embed_batch)
            .await
            .map_err(PipelineError::Storage)?;
        if batch.is_empty() {
            return Ok(0);
        }
        let texts: Vec<Vec<String>> = batch.iter().map(embedding_texts).collect();
        let flat: Vec<String> = texts.iter().flatten().cloned().collect();
        let mut vectors = self.embed(flat).await?.into_iter();
        let stored: Vec<RecordVectors> = batch
            .iter()
            .zip(&texts)
            .map(|(i, t)| {
                RecordVectors::of(i, &self.model, vectors.by_ref().take(t.len()).collect())
            })
            .collect();
        self.records
            .store_embeddings(&stored)
            .await
            .map_err(PipelineError::Storage)?;
        metrics::counter!(crate::metrics_names::INTERACTIONS_EMBEDDED)
            .increment(stored.len() as u64);
        self.catch_up().await?;
        Ok(stored.len())
    }

    /// Embeds until the backlog is empty and indexes everything stored (tests, tools).
    pub async fn embed_all(&self) -> Result<usize, PipelineError> {
        let mut total = 0;
        loop {
            let n = self.embed_backlog().await?;
            if n == 0 {
                self.catch_up().await?;
                return Ok(total);
            }
            total += n;
        }
    }

    /// The worker: embeds new interactions as they are stored (when `embed` is set) and keeps the
    /// indexes caught up; runs until the task is aborted.
    pub async fn run(self: Arc<Self>, embed: bool) {
        let idle = Duration::from_millis(self.config.poll_ms.max(10));
        // The stored vectors first (searches are refused until then).
        while let Err(e) = self.catch_up().await {
            tracing::warn!(error = %e, "loading the stored vectors; retrying");
            tokio::time::sleep(idle).await;
        }
        loop {
            let result = if embed {
                self.embed_backlog().await
            } else {
                self.catch_up().await.map(|_| 0)
            };
            match result {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "embedding worker"),
            }
            tokio::time::sleep(idle).await;
        }
    }

    /// The organization's records ranked by meaning against the question, narrowed by the filter
    /// (words, source, time), one page.
    pub async fn search(&self, query: SemanticQuery<'_>) -> Result<SemanticPage, PipelineError> {
        let SemanticQuery {
            organization_id,
            question,
            filter,
            page_size,
            page_token,
            min_similarity,
        } = query;
        let min_similarity = min_similarity.unwrap_or(self.config.min_similarity);
        if !self.loaded.load(std::sync::atomic::Ordering::Acquire) {
            return Err(PipelineError::Unavailable(
                "search by meaning is still loading the stored vectors; try again shortly".into(),
            ));
        }
        let cursor = page_token
            .map(|t| decode_cursor(organization_id, t))
            .transpose()?;
        let query = self
            .embed(vec![question.to_owned()])
            .await?
            .pop()
            .unwrap_or_default();
        let only = match &filter.query {
            Some(_) => Some(self.word_candidates(organization_id, filter).await?),
            None => None,
        };
        let index_filter = IndexFilter {
            source: filter.source,
            from_ms: filter.from_ms,
            to_ms: filter.to_ms,
            only,
        };
        let seen = cursor.as_ref().map_or(0, |c| c.n);
        let k = (seen + page_size + 1).min(self.config.max_results.max(1));
        let question_words: HashSet<String> = content_words(question);
        // Records holding every word of the question come first, whatever their similarity: search
        // by meaning loses nothing that search by words finds.
        let exact = self
            .exact_word_matches(organization_id, filter, &question_words)
            .await?;
        let (found, exact_found) = {
            let index = self.index(organization_id);
            let index = index.read().unwrap_or_else(|e| e.into_inner());
            let found = index.search(&query, k, self.config.ef_search, &index_filter);
            let exact_found = match &exact {
                Some(ids) if !ids.is_empty() => {
                    let only = match &index_filter.only {
                        Some(allowed) => ids.intersection(allowed).cloned().collect(),
                        None => ids.clone(),
                    };
                    let f = IndexFilter {
                        only: Some(only),
                        ..index_filter.clone()
                    };
                    index.search_exact(&query, ids.len(), &f)
                }
                _ => Vec::new(),
            };
            (found, exact_found)
        };
        // With records that hold the question's words, others must be clearly closer in meaning.
        let floor = if exact_found.is_empty() {
            min_similarity
        } else {
            min_similarity + EXACT_WORDS_MARGIN
        };
        let exact_ids: HashSet<&str> = exact_found.iter().map(|h| h.id.as_str()).collect();
        let mut candidates: Vec<(IndexHit, bool)> =
            exact_found.iter().map(|h| (h.clone(), true)).collect();
        candidates.extend(
            found
                .into_iter()
                .filter(|h| !exact_ids.contains(h.id.as_str()) && h.score >= floor)
                .map(|h| (h, false)),
        );
        let mut ranked = Vec::new();
        for (hit, all_words) in candidates {
            let Some(interaction) = self
                .records
                .get_interaction(&hit.id)
                .await
                .map_err(PipelineError::Storage)?
            else {
                continue;
            };
            if interaction.organization_id != organization_id {
                continue;
            }
            let score = if all_words {
                1.0 + hit.score
            } else {
                hit.score + WORD_BONUS * word_share(&question_words, &interaction)
            };
            let matched = embedding_texts(&interaction)
                .into_iter()
                .nth(hit.text)
                .unwrap_or_default();
            ranked.push(SemanticHit {
                interaction,
                score,
                similarity: hit.score,
                matched,
            });
        }
        ranked.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.interaction.id.cmp(&b.interaction.id))
        });
        if let Some(c) = &cursor {
            ranked.retain(|h| {
                h.score < c.s || (h.score == c.s && h.interaction.id.as_str() > c.i.as_str())
            });
        }
        let more = ranked.len() > page_size && seen + page_size < self.config.max_results;
        ranked.truncate(page_size);
        let next_page_token = match (more, ranked.last()) {
            (true, Some(last)) => Some(encode_cursor(&Cursor {
                o: organization_id.to_owned(),
                s: last.score,
                i: last.interaction.id.clone(),
                n: seen + ranked.len(),
            })),
            _ => None,
        };
        Ok(SemanticPage {
            hits: ranked,
            next_page_token,
        })
    }

    /// Ids of the records (passing `filter`) that hold every content word of the question, at most
    /// [`SearchConfig::max_results`]; `None` when the question has no content word or too many to be a
    /// word query.
    async fn exact_word_matches(
        &self,
        organization_id: &str,
        filter: &InteractionFilter,
        question_words: &HashSet<String>,
    ) -> Result<Option<HashSet<String>>, PipelineError> {
        if question_words.is_empty() || question_words.len() > crow_storage::MAX_QUERY_WORDS {
            return Ok(None);
        }
        let mut asked: Vec<&str> = question_words.iter().map(String::as_str).collect();
        asked.sort_unstable();
        let words = match &filter.query {
            Some(q) => format!("{q} {}", asked.join(" ")),
            None => asked.join(" "),
        };
        if words.split_whitespace().count() > crow_storage::MAX_QUERY_WORDS * 2 {
            return Ok(None);
        }
        let filter = InteractionFilter {
            query: Some(words),
            ..filter.clone()
        };
        match self
            .collect_ids(organization_id, &filter, self.config.max_results)
            .await
        {
            Ok(ids) => Ok(Some(ids)),
            // The caller's words and the question's together may be more than a word query allows.
            Err(PipelineError::Storage(StorageError::InvalidFilter(_))) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Ids of the records that pass the word filter (newest first, at most [`MAX_WORD_CANDIDATES`]).
    async fn word_candidates(
        &self,
        organization_id: &str,
        filter: &InteractionFilter,
    ) -> Result<HashSet<String>, PipelineError> {
        self.collect_ids(organization_id, filter, MAX_WORD_CANDIDATES)
            .await
    }

    /// Ids of the records that pass `filter`, newest first, at most about `limit`.
    async fn collect_ids(
        &self,
        organization_id: &str,
        filter: &InteractionFilter,
        limit: usize,
    ) -> Result<HashSet<String>, PipelineError> {
        let mut ids = HashSet::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .records
                .list_interactions(
                    organization_id,
                    filter,
                    crow_storage::MAX_PAGE_SIZE,
                    token.as_deref(),
                )
                .await
                .map_err(PipelineError::Storage)?;
            ids.extend(page.interactions.into_iter().map(|i| i.id));
            token = page.next_page_token;
            if token.is_none() || ids.len() >= limit {
                return Ok(ids);
            }
        }
    }
}

/// The words of a question that carry meaning: search words of three letters or more that are not
/// among the most common English function words.
pub fn content_words(text: &str) -> HashSet<String> {
    const COMMON: &[&str] = &[
        "the", "and", "for", "with", "who", "what", "that", "this", "was", "were", "are", "any",
        "did", "does", "from", "into", "onto", "near", "there", "their", "them", "they", "has",
        "had", "have", "been", "but", "not", "all", "when", "where", "which", "while", "about",
        "some", "someone", "somebody", "people", "person",
    ];
    words(text)
        .filter(|w| w.chars().count() >= 3 && !COMMON.contains(&w.as_str()))
        .collect()
}

/// Share of `question` words the record holds (0 when the question has none).
fn word_share(question: &HashSet<String>, interaction: &Interaction) -> f32 {
    if question.is_empty() {
        return 0.0;
    }
    let have = interaction_words(interaction);
    question.iter().filter(|w| have.contains(*w)).count() as f32 / question.len() as f32
}

fn encode_cursor(c: &Cursor) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(c).unwrap_or_default())
}

fn decode_cursor(organization_id: &str, token: &str) -> Result<Cursor, PipelineError> {
    let invalid = || PipelineError::Storage(StorageError::InvalidPageToken);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid())?;
    let c: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if c.o != organization_id || !c.s.is_finite() {
        return Err(invalid());
    }
    Ok(c)
}

/// The model's identity for stored vectors: file name, length and the first 16 hex digits of its
/// SHA-256, so a replaced file under the same name is a new model.
fn model_id(path: &std::path::Path) -> Result<String, PipelineError> {
    use sha2::Digest as _;
    use std::io::Read as _;
    let io = |e: std::io::Error| {
        PipelineError::InvalidArgument(format!("reading {}: {e}", path.display()))
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        len += n as u64;
        hasher.update(&buf[..n]);
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(format!("{name}:{len}:{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_belong_to_their_organization() {
        let token = encode_cursor(&Cursor {
            o: "acme".into(),
            s: 0.5,
            i: "x".into(),
            n: 10,
        });
        assert!(decode_cursor("acme", &token).is_ok());
        assert!(decode_cursor("other", &token).is_err());
        assert!(decode_cursor("acme", "not a token").is_err());
    }
}
