//! `crow bench search`: search by meaning against word search on a labelled set, the similarity floor
//! calibrated on it, and the vector index at scale against a brute-force scan.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use crow::actors::semantic::content_words;
use crow::actors::{ProductMatcher, SearchConfig, SemanticQuery, SemanticSearch};
use crow::storage::text::words;
use crow::storage::vector_index::{IndexFilter, VectorIndex};
use crow::storage::{Interaction, InteractionFilter, Product, RecordStore, SourceType, Store};
use serde::Deserialize;

use super::list::percentile;
use super::scratch::rss_bytes;
use crate::records::ProductFile;

#[derive(Args)]
pub(crate) struct SearchBenchArgs {
    /// The labelled set: topics with records and queries, and negative queries.
    #[arg(long, default_value = "tests/data/search/labelled.json")]
    labelled: PathBuf,
    /// The product set: a catalog and frame descriptions labelled with the products they show.
    #[arg(long, default_value = "tests/data/search/products.json")]
    products: PathBuf,
    /// Sentence-embedding model.
    #[arg(long, default_value = "models/all-minilm-l6-v2.gguf")]
    model: PathBuf,
    /// Records of the scale part: vectors spread around the labelled records' embeddings.
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    /// Timed index searches at scale.
    #[arg(long, default_value_t = 1_000)]
    calls: usize,
    /// Timed brute-force scans at scale (each reads every vector).
    #[arg(long, default_value_t = 50)]
    exact_calls: usize,
    /// Only the labelled-set part.
    #[arg(long)]
    skip_scale: bool,
    /// Also write every query's results (ids, similarity, score; word search ids) as JSON here.
    #[arg(long)]
    dump: Option<PathBuf>,
}

#[derive(Deserialize)]
struct Labelled {
    topics: Vec<Topic>,
    negative_queries: Vec<String>,
}

#[derive(Deserialize)]
struct Topic {
    id: String,
    records: Vec<LabelledRecord>,
    paraphrase_queries: Vec<String>,
    word_queries: Vec<String>,
}

#[derive(Deserialize)]
struct LabelledRecord {
    source: SourceType,
    summary: String,
    #[serde(default)]
    descriptions: Vec<String>,
}

const ORG: &str = "bench";

/// Kinds of query in the labelled set.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Paraphrase,
    Words,
    Negative,
}

struct Query {
    text: String,
    kind: Kind,
    /// Ids of the relevant records (empty for negatives).
    relevant: HashSet<String>,
}

/// Retrieval quality of one method over one kind of query.
#[derive(Default)]
struct Quality {
    recall: f64,
    precision: f64,
    empty: usize,
    results: usize,
    n: usize,
}

impl Quality {
    /// recall@10: relevant records in the first 10 results / min(relevant, 10). precision@10: relevant
    /// records among the results returned (at most 10); no result counts 0 for a topic query.
    fn add(&mut self, results: &[String], relevant: &HashSet<String>) {
        let top: Vec<&String> = results.iter().take(10).collect();
        let hits = top.iter().filter(|id| relevant.contains(**id)).count();
        self.n += 1;
        self.results += top.len();
        if top.is_empty() {
            self.empty += 1;
        }
        if !relevant.is_empty() {
            self.recall += hits as f64 / relevant.len().min(10) as f64;
            if !top.is_empty() {
                self.precision += hits as f64 / top.len() as f64;
            }
        }
    }

    fn line(&self) -> String {
        let n = self.n.max(1) as f64;
        format!(
            "recall@10 {:.3}  precision@10 {:.3}  no result {:>3}/{}",
            self.recall / n,
            self.precision / n,
            self.empty,
            self.n
        )
    }

    fn negatives(&self) -> String {
        format!(
            "answered \"nothing\" {:>3}/{}  ({:.2} false results per query)",
            self.empty,
            self.n,
            self.results as f64 / self.n.max(1) as f64
        )
    }
}

pub(crate) async fn run(args: SearchBenchArgs) -> Result<()> {
    let labelled: Labelled = serde_json::from_slice(
        &std::fs::read(&args.labelled).with_context(|| args.labelled.display().to_string())?,
    )
    .with_context(|| format!("parsing {}", args.labelled.display()))?;
    let (store, records, queries) = load(&labelled)?;
    println!(
        "crow bench search: {} records in {} topics, {} queries ({} paraphrases, {} word queries, {} negatives)",
        records.len(),
        labelled.topics.len(),
        queries.len(),
        queries.iter().filter(|q| q.kind == Kind::Paraphrase).count(),
        queries.iter().filter(|q| q.kind == Kind::Words).count(),
        queries.iter().filter(|q| q.kind == Kind::Negative).count(),
    );
    let config = SearchConfig {
        model: args.model.clone(),
        ..SearchConfig::default()
    };
    let shared: Arc<dyn RecordStore> = Arc::new(store.clone());
    let search = SemanticSearch::load(shared, config, true)
        .await?
        .context("the embedding model is missing: run scripts/setup-models.sh")?;
    let started = Instant::now();
    let embedded = search.embed_all().await?;
    let texts: usize = records
        .iter()
        .map(|r| crow::storage::embeddings::embedding_texts(r).len())
        .sum();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "embedded {embedded} records ({texts} texts) in {:.2} s: {:.0} texts/s",
        secs,
        texts as f64 / secs
    );

    // Every query by words, and by meaning at each similarity floor.
    const FLOORS: [f32; 7] = [0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5];
    let mut question_ms = Vec::new();
    let mut by_words: Vec<Vec<String>> = Vec::new();
    let mut by_meaning: Vec<Vec<Vec<String>>> = vec![Vec::new(); FLOORS.len()];
    let mut dump = Vec::new();
    for q in &queries {
        let t = Instant::now();
        search.embed(vec![q.text.clone()]).await?;
        question_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let filter = InteractionFilter {
            query: Some(q.text.clone()),
            ..Default::default()
        };
        // A question that is not a valid word query (no word, too many words) finds nothing.
        let words: Vec<String> = store
            .list_interactions(ORG, &filter, 10, None)
            .map(|p| p.interactions.into_iter().map(|i| i.id).collect())
            .unwrap_or_default();
        let mut hits_at = Vec::new();
        for (f, floor) in FLOORS.iter().enumerate() {
            let page = search
                .search(SemanticQuery {
                    organization_id: ORG,
                    question: &q.text,
                    filter: &InteractionFilter::default(),
                    page_size: 10,
                    page_token: None,
                    min_similarity: Some(*floor),
                })
                .await?;
            hits_at.push(
                page.hits
                    .iter()
                    .map(|h| (h.interaction.id.clone(), h.similarity, h.score))
                    .collect::<Vec<_>>(),
            );
            by_meaning[f].push(page.hits.into_iter().map(|h| h.interaction.id).collect());
        }
        dump.push(serde_json::json!({
            "query": q.text, "relevant": q.relevant, "words": words, "meaning": hits_at,
        }));
        by_words.push(words);
    }
    if let Some(path) = &args.dump {
        std::fs::write(path, serde_json::to_vec(&dump)?)?;
    }
    question_ms.sort_by(f64::total_cmp);
    println!(
        "embedding one question: p50 {:.1} ms  p99 {:.1} ms",
        percentile(&question_ms, 0.5),
        percentile(&question_ms, 0.99)
    );

    let quality = |kind: Kind, results: &dyn Fn(usize) -> Vec<String>| {
        let mut q = Quality::default();
        for (n, query) in queries.iter().enumerate().filter(|(_, q)| q.kind == kind) {
            q.add(&results(n), &query.relevant);
        }
        q
    };
    println!("\ncalibration of pipeline.search.min_similarity (results below it are dropped):");
    println!("floor  paraphrases R@10 P@10   word queries R@10 P@10   negatives answered nothing");
    for (f, floor) in FLOORS.iter().enumerate() {
        let at = |n: usize| by_meaning[f][n].clone();
        let (p, w, n) = (
            quality(Kind::Paraphrase, &at),
            quality(Kind::Words, &at),
            quality(Kind::Negative, &at),
        );
        let mean = |x: f64, q: &Quality| x / q.n.max(1) as f64;
        println!(
            "{floor:.2}   {:.3} {:.3}                {:.3} {:.3}              {}/{}",
            mean(p.recall, &p),
            mean(p.precision, &p),
            mean(w.recall, &w),
            mean(w.precision, &w),
            n.empty,
            n.n
        );
    }
    let floor = SearchConfig::default().min_similarity;
    let f = FLOORS
        .iter()
        .position(|x| (x - floor).abs() < 1e-6)
        .context("the default floor is not among the calibrated ones")?;
    let meaning = |n: usize| by_meaning[f][n].clone();
    let word = |n: usize| by_words[n].clone();
    println!("\nat the default floor {floor}:");
    for (label, kind) in [
        ("paraphrases ", Kind::Paraphrase),
        ("word queries", Kind::Words),
    ] {
        println!("{label}  meaning: {}", quality(kind, &meaning).line());
        println!("{label}  words:   {}", quality(kind, &word).line());
    }
    println!(
        "negatives     meaning: {}",
        quality(Kind::Negative, &meaning).negatives()
    );
    println!(
        "negatives     words:   {}",
        quality(Kind::Negative, &word).negatives()
    );

    products(&args, &search).await?;
    if !args.skip_scale {
        scale(&args, &search, &labelled, &queries).await?;
    }
    Ok(())
}

#[derive(Deserialize)]
struct ProductSet {
    catalog: Vec<ProductFile>,
    descriptions: Vec<LabelledDescription>,
}

#[derive(Deserialize)]
struct LabelledDescription {
    text: String,
    products: Vec<String>,
}

/// Precision and recall of product matches against the labels, and negatives left without one.
#[derive(Default)]
struct MatchQuality {
    right: usize,
    claimed: usize,
    labelled: usize,
    negatives: usize,
    clean_negatives: usize,
}

impl MatchQuality {
    fn add(&mut self, found: &HashSet<&str>, labelled: &[String]) {
        self.right += labelled
            .iter()
            .filter(|l| found.contains(l.as_str()))
            .count();
        self.claimed += found.len();
        self.labelled += labelled.len();
        if labelled.is_empty() {
            self.negatives += 1;
            self.clean_negatives += usize::from(found.is_empty());
        }
    }

    fn line(&self) -> String {
        format!(
            "{:.3}      {:.3}    {:>2}/{}",
            self.right as f64 / self.claimed.max(1) as f64,
            self.right as f64 / self.labelled.max(1) as f64,
            self.clean_negatives,
            self.negatives
        )
    }
}

/// Product matching by meaning on the labelled descriptions, at each similarity floor, next to the
/// word rule (every word of the name in the description).
async fn products(args: &SearchBenchArgs, search: &Arc<SemanticSearch>) -> Result<()> {
    let set: ProductSet = serde_json::from_slice(
        &std::fs::read(&args.products).with_context(|| args.products.display().to_string())?,
    )
    .with_context(|| format!("parsing {}", args.products.display()))?;
    let catalog: Vec<Product> = set
        .catalog
        .iter()
        .map(|p| Product {
            id: p.id.clone(),
            organization_id: "bench".into(),
            name: p.name.clone(),
            category: p.category.clone(),
            description: p.description.clone(),
            tags: p.tags.clone(),
            aliases: p.aliases.clone(),
            updated_at_ms: 0,
        })
        .collect();
    // Every match at any similarity: a floor only removes matches (a span's best products do not
    // depend on it), so one pass serves every floor.
    let matcher = ProductMatcher::new(Arc::clone(search), -1.0);
    matcher.match_descriptions(&catalog, &["warm-up"]).await?;
    let mut found = Vec::new();
    let mut ms = Vec::new();
    for d in &set.descriptions {
        let t = Instant::now();
        found.push(matcher.match_descriptions(&catalog, &[&d.text]).await?);
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    let negatives = set
        .descriptions
        .iter()
        .filter(|d| d.products.is_empty())
        .count();
    println!(
        "
product matching by meaning: {} products (name, aliases, description), {} descriptions ({} show none); {:.1} ms p50, {:.1} ms p99 per description",
        catalog.len(),
        set.descriptions.len(),
        negatives,
        percentile(&ms, 0.5),
        percentile(&ms, 0.99)
    );
    println!("floor  precision  recall   descriptions without products left without one");
    for floor in [0.45f32, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8] {
        let mut q = MatchQuality::default();
        for (d, f) in set.descriptions.iter().zip(&found) {
            let kept: HashSet<&str> = f
                .iter()
                .filter(|m| m.similarity >= floor)
                .map(|m| m.product_id.as_str())
                .collect();
            q.add(&kept, &d.products);
        }
        println!("{floor:.2}   {}", q.line());
    }
    let mut q = MatchQuality::default();
    for d in &set.descriptions {
        let text: HashSet<String> = words(&d.text).collect();
        let named: HashSet<&str> = catalog
            .iter()
            .filter(|p| words(&p.name).all(|w| text.contains(&w)))
            .map(|p| p.id.as_str())
            .collect();
        q.add(&named, &d.products);
    }
    println!(
        "words  {}   (every word of the name in the description)",
        q.line()
    );
    Ok(())
}

/// The labelled records in a temporary store, and the queries with their relevant ids.
fn load(labelled: &Labelled) -> Result<(Store, Vec<Interaction>, Vec<Query>)> {
    let store = Store::temporary()?;
    let mut records = Vec::new();
    let mut queries = Vec::new();
    for (t, topic) in labelled.topics.iter().enumerate() {
        let mut relevant = HashSet::new();
        for (n, r) in topic.records.iter().enumerate() {
            let id = format!("{}-{n}", topic.id);
            relevant.insert(id.clone());
            let frames: Vec<serde_json::Value> = r
                .descriptions
                .iter()
                .enumerate()
                .map(|(i, d)| serde_json::json!({"frame_index": i, "text": d}))
                .collect();
            records.push(Interaction {
                id,
                organization_id: ORG.into(),
                source_type: r.source,
                session_id: None,
                data: serde_json::json!({ "frames": frames }),
                summary: r.summary.clone(),
                confidence: 1.0,
                tags: Vec::new(),
                product_ids: Vec::new(),
                timestamp_ms: 1_780_000_000_000 + (t * 100 + n) as i64 * 60_000,
                created_at_ms: 0,
            });
        }
        for (kind, texts) in [
            (Kind::Paraphrase, &topic.paraphrase_queries),
            (Kind::Words, &topic.word_queries),
        ] {
            for text in texts {
                queries.push(Query {
                    text: text.clone(),
                    kind,
                    relevant: relevant.clone(),
                });
            }
        }
    }
    queries.extend(labelled.negative_queries.iter().map(|text| Query {
        text: text.clone(),
        kind: Kind::Negative,
        relevant: HashSet::new(),
    }));
    if queries.len() < 200 {
        bail!(
            "the labelled set has {} queries; at least 200 are needed",
            queries.len()
        );
    }
    // A paraphrase that shares a word with its records would test word search, not meaning.
    for q in queries.iter().filter(|q| q.kind == Kind::Paraphrase) {
        let asked = content_words(&q.text);
        for r in records.iter().filter(|r| q.relevant.contains(&r.id)) {
            let text = crow::storage::embeddings::embedding_texts(r).join(" ");
            let have: HashSet<String> = words(&text).collect();
            let shared: Vec<&String> = asked.iter().filter(|w| have.contains(*w)).collect();
            if !shared.is_empty() {
                bail!("paraphrase {:?} shares {:?} with {}", q.text, shared, r.id);
            }
        }
    }
    store.insert_interactions(&records)?;
    Ok((store, records, queries))
}

/// The index at scale: `records` vectors spread around the labelled records' embeddings, searched
/// through the HNSW graph and by a brute-force scan of the same vectors.
async fn scale(
    args: &SearchBenchArgs,
    search: &SemanticSearch,
    labelled: &Labelled,
    queries: &[Query],
) -> Result<()> {
    let texts: Vec<String> = labelled
        .topics
        .iter()
        .flat_map(|t| t.records.iter().map(|r| r.summary.clone()))
        .collect();
    let bases = search.embed(texts).await?;
    let questions = search
        .embed(queries.iter().map(|q| q.text.clone()).collect())
        .await?;
    let dim = bases[0].len();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "\nscale: {} records in one organization, {dim} dimensions, {cores} cores",
        args.records
    );
    let rss_before = rss_bytes();
    let mut rng = Rng(0x5eed);
    let mut index = VectorIndex::new(dim, 1);
    let started = Instant::now();
    const CHUNK: usize = 50_000;
    let mut made = 0;
    while made < args.records {
        let n = CHUNK.min(args.records - made);
        // Each record: a blend of two labelled records' embeddings (a continuum of meanings between
        // subjects, as in a month of footage), moved by a little noise.
        let chunk: Vec<(String, Vec<Vec<f32>>)> = (made..made + n)
            .map(|i| {
                let a = &bases[rng.below(bases.len())];
                let b = &bases[rng.below(bases.len())];
                let w = rng.next();
                let v: Vec<f32> = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| w * x + (1.0 - w) * y + 0.02 * rng.normal())
                    .collect();
                (format!("r{i:07}"), vec![unit(v)])
            })
            .collect();
        index.add_many(
            chunk
                .iter()
                .map(|(id, v)| (id.as_str(), SourceType::Cctv, 0, v.as_slice())),
        );
        made += n;
        if made % 200_000 == 0 || made == args.records {
            eprintln!(
                "  indexed {made} records, {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    let build_s = started.elapsed().as_secs_f64();
    let rss_after = rss_bytes();
    println!(
        "built the HNSW graph in {build_s:.0} s ({:.0} records/s); vectors {:.0} MB, process memory +{:.0} MB",
        args.records as f64 / build_s,
        index.vector_bytes() as f64 / 1e6,
        rss_after.saturating_sub(rss_before) as f64 / 1e6
    );
    let default_ef = SearchConfig::default().ef_search;
    let filter = IndexFilter::default();
    let probe = |n: usize| -> Vec<f32> {
        let mut rng = Rng(n as u64 + 1);
        let q = &questions[n % questions.len()];
        unit(q.iter().map(|x| x + 0.01 * rng.normal()).collect())
    };
    let mut exact_ms = Vec::new();
    let mut exact = Vec::new();
    for n in 0..args.exact_calls {
        let q = probe(n);
        let t = Instant::now();
        exact.push(index.search_exact(&q, 10, &filter));
        exact_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    exact_ms.sort_by(f64::total_cmp);
    let exact99 = percentile(&exact_ms, 0.99);
    println!(
        "brute-force scan (k 10)       p50 {:>8.3} ms  p99 {:>8.3} ms  ({} calls)",
        percentile(&exact_ms, 0.5),
        exact99,
        args.exact_calls
    );
    for ef in [96, 192, 384] {
        let mut ann_ms = Vec::new();
        for n in 0..args.calls {
            let q = probe(n);
            let t = Instant::now();
            std::hint::black_box(index.search(&q, 10, ef, &filter));
            ann_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let found: usize = exact
            .iter()
            .enumerate()
            .map(|(n, exact)| {
                index
                    .search(&probe(n), 10, ef, &filter)
                    .iter()
                    .filter(|h| exact.iter().any(|e| e.id == h.id))
                    .count()
            })
            .sum();
        ann_ms.sort_by(f64::total_cmp);
        let ann99 = percentile(&ann_ms, 0.99);
        println!(
            "HNSW search (k 10, ef {ef:>3}{})  p50 {:>8.3} ms  p99 {:>8.3} ms  ({} calls)  brute force p99 / HNSW p99 = {:.0}x, recall@10 against the scan {:.3}",
            if ef == default_ef { ", default" } else { "" },
            percentile(&ann_ms, 0.5),
            ann99,
            args.calls,
            exact99 / ann99,
            found as f64 / (args.exact_calls * 10).max(1) as f64
        );
    }
    Ok(())
}

fn unit(v: Vec<f32>) -> Vec<f32> {
    let n = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    v.into_iter().map(|x| x / n).collect()
}

/// A small deterministic generator (xorshift) with a normal draw (Box-Muller).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }

    fn below(&mut self, n: usize) -> usize {
        ((self.next() * n as f32) as usize).min(n - 1)
    }

    fn normal(&mut self) -> f32 {
        let (u, v) = (self.next(), self.next());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}
