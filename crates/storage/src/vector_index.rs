//! [`VectorIndex`]: one organization's sentence-embedding vectors in memory, searchable by cosine
//! similarity — exactly (every vector compared) while small, through an HNSW graph (`hnsw_rs`) from
//! `ann_from` vectors on, so a query's cost grows sub-linearly with the records. A record may have
//! several vectors (its summary and descriptions); it scores by its best one.

use std::collections::{HashMap, HashSet};

use hnsw_rs::prelude::{Distance, Hnsw};

use crate::SourceType;

/// Which records a [`VectorIndex`] search may return.
#[derive(Debug, Clone, Default)]
pub struct IndexFilter {
    /// Only this source.
    pub source: Option<SourceType>,
    /// Only records at or after this time, ms.
    pub from_ms: Option<i64>,
    /// Only records before this time, ms.
    pub to_ms: Option<i64>,
    /// Only these records (ids).
    pub only: Option<HashSet<String>>,
}

/// One record found by a [`VectorIndex`] search.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexHit {
    /// The record.
    pub id: String,
    /// Cosine similarity of its best-matching vector to the query.
    pub score: f32,
    /// Which of its vectors matched best (the position in `embedding_texts`).
    pub text: usize,
}

struct Entry {
    id: String,
    source: SourceType,
    timestamp_ms: i64,
    /// Its vectors are `first..first + count`.
    first: usize,
    count: usize,
    /// Replaced by a later entry of the same record.
    live: bool,
}

impl Entry {
    fn passes(&self, f: &IndexFilter) -> bool {
        self.live
            && f.source.is_none_or(|s| s == self.source)
            && f.from_ms.is_none_or(|from| self.timestamp_ms >= from)
            && f.to_ms.is_none_or(|to| self.timestamp_ms < to)
            && f.only.as_ref().is_none_or(|only| only.contains(&self.id))
    }
}

/// The vectors of one organization's records, searchable by cosine similarity: exactly while small,
/// through an HNSW graph from `ann_from` vectors on. Vectors must be unit length.
pub struct VectorIndex {
    dimensions: usize,
    ann_from: usize,
    entries: Vec<Entry>,
    by_id: HashMap<String, usize>,
    /// Vector number -> entry.
    owner: Vec<u32>,
    flat: Vec<f32>,
    ann: Option<Hnsw<'static, f32, UnitCosine>>,
}

impl std::fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorIndex")
            .field("records", &self.by_id.len())
            .field("vectors", &self.owner.len())
            .field("ann", &self.ann.is_some())
            .finish()
    }
}

/// HNSW graph shape: links per node and the breadth while inserting.
const HNSW_LINKS: usize = 16;
const HNSW_EF_CONSTRUCTION: usize = 100;
const HNSW_LAYERS: usize = 16;

impl VectorIndex {
    /// An empty index of `dimensions`-long vectors that switches to HNSW at `ann_from` vectors.
    pub fn new(dimensions: usize, ann_from: usize) -> VectorIndex {
        VectorIndex {
            dimensions,
            ann_from,
            entries: Vec::new(),
            by_id: HashMap::new(),
            owner: Vec::new(),
            flat: Vec::new(),
            ann: None,
        }
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether it holds vectors of the record `id`.
    pub fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Whether searches go through the HNSW graph.
    pub fn is_approximate(&self) -> bool {
        self.ann.is_some()
    }

    /// Adds (or replaces) the vectors of one record. Vectors of another length are ignored.
    pub fn add(&mut self, id: &str, source: SourceType, timestamp_ms: i64, vectors: &[Vec<f32>]) {
        self.add_many([(id, source, timestamp_ms, vectors)]);
    }

    /// Adds (or replaces) the vectors of many records at once: the graph takes them in parallel.
    pub fn add_many<'a>(
        &mut self,
        records: impl IntoIterator<Item = (&'a str, SourceType, i64, &'a [Vec<f32>])>,
    ) {
        let start = self.owner.len();
        for (id, source, timestamp_ms, vectors) in records {
            let vectors: Vec<&Vec<f32>> = vectors
                .iter()
                .filter(|v| v.len() == self.dimensions)
                .collect();
            if vectors.is_empty() {
                continue;
            }
            if let Some(old) = self.by_id.get(id) {
                self.entries[*old].live = false;
            }
            let slot = self.entries.len();
            self.entries.push(Entry {
                id: id.to_owned(),
                source,
                timestamp_ms,
                first: self.owner.len(),
                count: vectors.len(),
                live: true,
            });
            self.by_id.insert(id.to_owned(), slot);
            for v in &vectors {
                self.owner.push(slot as u32);
                self.flat.extend_from_slice(v);
            }
        }
        match &self.ann {
            Some(ann) => {
                let points: Vec<(&[f32], usize)> = (start..self.owner.len())
                    .map(|n| (self.vector(n), n))
                    .collect();
                if points.len() == 1 {
                    ann.insert_slice(points[0]);
                } else {
                    ann.parallel_insert_slice(&points);
                }
            }
            None if self.owner.len() >= self.ann_from => self.build_ann(),
            None => {}
        }
    }

    /// Bytes held by the vectors and their bookkeeping (the graph's links not included).
    pub fn vector_bytes(&self) -> usize {
        self.flat.len() * 4 + self.owner.len() * 4
    }

    fn build_ann(&mut self) {
        let ann = Hnsw::new(
            HNSW_LINKS,
            self.owner.len().max(1_000_000),
            HNSW_LAYERS,
            HNSW_EF_CONSTRUCTION,
            UnitCosine,
        );
        let points: Vec<(&[f32], usize)> = self
            .flat
            .chunks_exact(self.dimensions)
            .enumerate()
            .map(|(n, v)| (v, n))
            .collect();
        ann.parallel_insert_slice(&points);
        self.ann = Some(ann);
    }

    fn vector(&self, n: usize) -> &[f32] {
        &self.flat[n * self.dimensions..(n + 1) * self.dimensions]
    }

    /// The `k` records most similar to `query` that pass `filter`, best first (ties by id). Exact below
    /// `ann_from` vectors or when the filter names its records; approximate (HNSW, `ef` breadth) above.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: &IndexFilter,
    ) -> Vec<IndexHit> {
        match (&self.ann, &filter.only) {
            (Some(ann), None) => self.search_ann(ann, query, k, ef, filter),
            _ => self.search_exact(query, k, filter),
        }
    }

    /// The exact answer of [`VectorIndex::search`]: every vector compared (the brute-force reference).
    pub fn search_exact(&self, query: &[f32], k: usize, filter: &IndexFilter) -> Vec<IndexHit> {
        let mut hits = Vec::new();
        let mut consider = |slot: usize, entry: &Entry| {
            if !entry.passes(filter) {
                return;
            }
            let (text, score) = (0..entry.count)
                .map(|t| (t, dot(query, self.vector(entry.first + t))))
                .fold((0, f32::MIN), |best, x| if x.1 > best.1 { x } else { best });
            hits.push((slot, score, text));
        };
        match &filter.only {
            Some(only) => {
                for id in only {
                    if let Some(&slot) = self.by_id.get(id) {
                        consider(slot, &self.entries[slot]);
                    }
                }
            }
            None => {
                for (slot, entry) in self.entries.iter().enumerate() {
                    consider(slot, entry);
                }
            }
        }
        self.best(hits, k)
    }

    fn search_ann(
        &self,
        ann: &Hnsw<'static, f32, UnitCosine>,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: &IndexFilter,
    ) -> Vec<IndexHit> {
        // A record has several vectors: ask for more vectors than records wanted.
        let want = (k * 2).max(k + 8);
        let passes = |n: &usize| {
            self.owner
                .get(*n)
                .is_some_and(|&slot| self.entries[slot as usize].passes(filter))
        };
        let found = ann.search_filter(query, want, ef.max(want), Some(&passes));
        let mut best: HashMap<usize, (f32, usize)> = HashMap::new();
        for n in found {
            let slot = self.owner[n.d_id] as usize;
            let text = n.d_id - self.entries[slot].first;
            let score = 1.0 - n.distance;
            let e = best.entry(slot).or_insert((score, text));
            if score > e.0 {
                *e = (score, text);
            }
        }
        self.best(
            best.into_iter()
                .map(|(slot, (score, text))| (slot, score, text))
                .collect(),
            k,
        )
    }

    fn best(&self, mut hits: Vec<(usize, f32, usize)>, k: usize) -> Vec<IndexHit> {
        let order = |a: &(usize, f32, usize), b: &(usize, f32, usize)| {
            b.1.total_cmp(&a.1)
                .then_with(|| self.entries[a.0].id.cmp(&self.entries[b.0].id))
        };
        // The k best first, then only those sorted: a scan of a million records sorts ten.
        if k == 0 {
            return Vec::new();
        }
        if hits.len() > k {
            hits.select_nth_unstable_by(k - 1, order);
            hits.truncate(k);
        }
        hits.sort_by(order);
        hits.into_iter()
            .map(|(slot, score, text)| IndexHit {
                id: self.entries[slot].id.clone(),
                score,
                text,
            })
            .collect()
    }
}

/// Cosine distance of unit vectors, `1 - a·b`, clamped at 0 (rounding may push `a·b` of a vector with
/// itself above 1). `hnsw_rs`'s own `DistDot` sums in one serial chain, which the compiler may not
/// reorder; [`dot`] keeps independent lanes that it turns into vector instructions.
#[derive(Debug, Clone, Copy, Default)]
struct UnitCosine;

impl Distance<f32> for UnitCosine {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).max(0.0)
    }
}

/// The dot product, summed in sixteen independent accumulators.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0.0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    /// Deterministic pseudo-random unit vectors.
    fn vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                unit(
                    &(0..dim)
                        .map(|_| {
                            s = s
                                .wrapping_mul(6364136223846793005)
                                .wrapping_add(1442695040888963407);
                            ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
                        })
                        .collect::<Vec<_>>(),
                )
            })
            .collect()
    }

    #[test]
    fn lane_dot_product_matches_the_serial_sum() {
        for len in [3, 16, 31, 384] {
            let v = vectors(2, len, len as u64);
            let serial: f32 = v[0].iter().zip(&v[1]).map(|(x, y)| x * y).sum();
            assert!((dot(&v[0], &v[1]) - serial).abs() < 1e-5, "length {len}");
            let own = UnitCosine.eval(&v[0], &v[0]);
            assert!((0.0..1e-6).contains(&own), "distance to itself {own}");
        }
    }

    #[test]
    fn exact_search_ranks_by_best_vector_and_filters() {
        let mut index = VectorIndex::new(3, 100);
        index.add("a", SourceType::Cctv, 10, &[unit(&[1.0, 0.0, 0.0])]);
        index.add(
            "b",
            SourceType::Web,
            20,
            &[unit(&[0.0, 1.0, 0.0]), unit(&[0.9, 0.1, 0.0])],
        );
        index.add("c", SourceType::Cctv, 30, &[unit(&[0.0, 0.0, 1.0])]);
        let q = unit(&[1.0, 0.05, 0.0]);
        let hits = index.search(&q, 10, 10, &IndexFilter::default());
        assert_eq!(
            hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(hits[1].text, 1, "b matched through its second vector");
        let cctv = IndexFilter {
            source: Some(SourceType::Cctv),
            from_ms: Some(15),
            ..Default::default()
        };
        let hits = index.search(&q, 10, 10, &cctv);
        assert_eq!(
            hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
            ["c"]
        );
        // Replacing a record's vectors drops the old ones.
        index.add("a", SourceType::Cctv, 10, &[unit(&[0.0, 0.0, 1.0])]);
        let hits = index.search(&q, 1, 10, &IndexFilter::default());
        assert_eq!(hits[0].id, "b");
        assert_eq!(index.len(), 3);
    }

    #[test]
    fn the_hnsw_graph_finds_what_the_exact_scan_finds() {
        let dim = 32;
        let mut index = VectorIndex::new(dim, 500);
        // Clustered, like sentence embeddings of records about a few subjects.
        let centres = vectors(30, dim, 3);
        let noise = vectors(3_000, dim, 7);
        for (n, v) in noise.iter().enumerate() {
            let c = &centres[n % centres.len()];
            let v: Vec<f32> = c.iter().zip(v).map(|(c, v)| c + 0.6 * v).collect();
            index.add(&format!("r{n:05}"), SourceType::Web, n as i64, &[unit(&v)]);
        }
        assert!(index.is_approximate());
        let mut found = 0;
        let queries = vectors(50, dim, 99);
        for q in &queries {
            let exact = index.search_exact(q, 10, &IndexFilter::default());
            let ann = index.search(q, 10, 100, &IndexFilter::default());
            found += ann
                .iter()
                .filter(|h| exact.iter().any(|e| e.id == h.id))
                .count();
        }
        let recall = found as f32 / (queries.len() * 10) as f32;
        assert!(recall > 0.9, "recall@10 {recall}");
        // A filter is honoured by the graph search too.
        let late = IndexFilter {
            from_ms: Some(2_900),
            ..Default::default()
        };
        let hits = index.search(&queries[0], 10, 64, &late);
        assert!(!hits.is_empty());
        assert!(hits.iter().all(|h| h.id.as_str() >= "r02900"));
    }
}
