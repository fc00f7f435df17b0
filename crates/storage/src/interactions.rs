//! Interaction records: insertion with secondary indexes and counters, filtered newest-first listing.
//!
//! Trees:
//! - `interactions`: `org \0 !ts id` -> record (JSON), newest first;
//! - `interaction_ids`: `id` -> primary key;
//! - `interaction_index`: `org \0 s \0 source \0 !ts id` and `org \0 t \0 word \0 !ts id` -> `()`: one
//!   entry per record and source, and per record and search word, in the same newest-first order, so a
//!   filtered page is a range scan of one index, O(page) and not O(organization);
//! - `org_counts`: `org \0 source` -> u64, so the summary is O(1).
//!
//! Every record's entries are written in one transaction with the record.

use base64::Engine as _;
use sled::transaction::TransactionalTree;
use sled::Transactional;

use crate::keys;
use crate::metrics::{add_metrics, MeasuredFacts};
use crate::model::{Interaction, InteractionFilter, SourceType, Summary};
use crate::store::{decode, encode, tx_err, Store, TxResult};
use crate::text::{interaction_words, words};
use crate::{Result, StorageError};

/// Largest page [`Store::list_interactions`] returns.
pub const MAX_PAGE_SIZE: usize = 500;
/// Most words a search query may have.
pub const MAX_QUERY_WORDS: usize = 8;

/// One page of interactions.
#[derive(Debug, Clone, Default)]
pub struct InteractionPage {
    /// Newest first. With a text or combined filter a page may hold fewer than `page_size` records (even
    /// none) and still have a next page: each page examines a bounded number of index entries.
    pub interactions: Vec<Interaction>,
    /// Opaque cursor for the next page; `None` when nothing is left.
    pub next_page_token: Option<String>,
}

/// Something to do in the same transaction as an insert.
#[derive(Default)]
pub(crate) struct AlongWith<'a> {
    /// Clear this batch's "unanalyzed" mark.
    pub unanalyzed: Option<&'a [u8]>,
    /// Remove this outbox entry `(seq, id)`.
    pub outbox: Option<(u64, &'a str)>,
}

/// The keys and values one record writes, computed once outside the transaction (which may re-run).
pub(crate) struct Prepared {
    pub(crate) key: Vec<u8>,
    value: Vec<u8>,
    id: String,
    pub(crate) count_key: Vec<u8>,
    pub(crate) index_keys: Vec<Vec<u8>>,
    /// A `cctv` record's camera, track events and occupancy: what its metrics are measured from.
    pub(crate) facts: Option<MeasuredFacts>,
}

pub(crate) fn prepare(i: &Interaction) -> Prepared {
    let org = &i.organization_id;
    let position = keys::position(i.timestamp_ms, &i.id);
    let with_position = |mut prefix: Vec<u8>| {
        prefix.extend_from_slice(&position);
        prefix
    };
    let mut index_keys = vec![with_position(keys::source_index(
        org,
        i.source_type.as_str(),
    ))];
    index_keys.extend(
        interaction_words(i)
            .iter()
            .map(|w| with_position(keys::word_index(org, w))),
    );
    Prepared {
        key: keys::interaction(org, i.timestamp_ms, &i.id),
        value: encode(i),
        id: i.id.clone(),
        count_key: keys::pair(org, i.source_type.as_str()),
        index_keys,
        facts: MeasuredFacts::of(i),
    }
}

fn read_count(tree: &TransactionalTree, key: &[u8]) -> TxResult<u64> {
    Ok(tree
        .get(key)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0))
}

impl Store {
    /// Stores an interaction unless one with the same id exists, with its index entries and the
    /// organization's counters, in one transaction. Returns `true` if it was inserted.
    pub fn insert_interaction(&self, interaction: &Interaction) -> Result<bool> {
        Ok(self.insert_with(std::slice::from_ref(interaction), AlongWith::default())?[0])
    }

    /// Stores many interactions in one transaction (bulk import); returns how many were new.
    pub fn insert_interactions(&self, interactions: &[Interaction]) -> Result<usize> {
        Ok(self
            .insert_with(interactions, AlongWith::default())?
            .into_iter()
            .filter(|new| *new)
            .count())
    }

    /// Like [`Store::insert_interaction`], and also marks the batch `(session, batch_index)` as analysed, in
    /// the same transaction: a crash leaves either both or neither.
    pub fn insert_batch_interaction(
        &self,
        interaction: &Interaction,
        session_id: &str,
        batch_index: u64,
    ) -> Result<bool> {
        let key = keys::indexed(session_id, batch_index);
        Ok(self.insert_with(
            std::slice::from_ref(interaction),
            AlongWith {
                unanalyzed: Some(&key),
                ..Default::default()
            },
        )?[0])
    }

    pub(crate) fn insert_with(
        &self,
        interactions: &[Interaction],
        along: AlongWith<'_>,
    ) -> Result<Vec<bool>> {
        let i = &self.inner;
        let prepared: Vec<Prepared> = interactions.iter().map(prepare).collect();
        let outbox_key = along.outbox.map(|(seq, _)| seq.to_be_bytes());
        (
            &i.interactions,
            &i.interaction_ids,
            &i.org_counts,
            &i.interaction_index,
            &i.unanalyzed,
            &i.outbox,
            &i.outbox_ids,
            &i.embed_queue,
            &i.metric_buckets,
            &i.metric_carry,
        )
            .transaction(
                |(
                    records,
                    ids,
                    counts,
                    index,
                    unanalyzed,
                    outbox,
                    outbox_ids,
                    embed_queue,
                    buckets,
                    carry,
                )| {
                    if let Some(k) = along.unanalyzed {
                        unanalyzed.remove(k)?;
                    }
                    if let (Some(k), Some((_, id))) = (&outbox_key, along.outbox) {
                        outbox.remove(k.as_slice())?;
                        outbox_ids.remove(id.as_bytes())?;
                    }
                    let mut inserted = Vec::with_capacity(prepared.len());
                    for p in &prepared {
                        if ids.get(p.id.as_bytes())?.is_some() {
                            inserted.push(false);
                            continue;
                        }
                        ids.insert(p.id.as_bytes(), p.key.as_slice())?;
                        records.insert(p.key.as_slice(), p.value.as_slice())?;
                        for k in &p.index_keys {
                            index.insert(k.as_slice(), &[])?;
                        }
                        embed_queue.insert(p.id.as_bytes(), &[])?;
                        let n = read_count(counts, &p.count_key)?;
                        counts.insert(p.count_key.as_slice(), &(n + 1).to_be_bytes())?;
                        if let Some(facts) = &p.facts {
                            add_metrics(buckets, carry, facts)?;
                        }
                        inserted.push(true);
                    }
                    Ok(inserted)
                },
            )
            .map_err(tx_err)
    }

    /// Fetches one stored interaction by id.
    pub fn get_interaction(&self, id: &str) -> Result<Option<Interaction>> {
        let Some(key) = self.inner.interaction_ids.get(id.as_bytes())? else {
            return Ok(None);
        };
        match self.inner.interactions.get(&key)? {
            Some(v) => decode(&key, &v).map(Some),
            None => Err(StorageError::corrupt(
                &key,
                "index points at a missing record",
            )),
        }
    }

    /// Lists an organization's interactions that pass `filter`, newest first (by timestamp, then id).
    /// `page_size` is clamped to 1..=[`MAX_PAGE_SIZE`]. The cursor is a position, not an offset: records
    /// stored while a client pages never make it repeat or skip a record that existed when it started.
    ///
    /// Cost is O(page): without a source or word filter it is a range scan of the records within the time
    /// range; with them it intersects the newest-first index of each word (and of the source) by leapfrog
    /// seeks, so only matching records are read. Each page makes a bounded number of seeks; a page cut
    /// short by that bound still returns a cursor.
    pub fn list_interactions(
        &self,
        organization_id: &str,
        filter: &InteractionFilter,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<InteractionPage> {
        let page_size = page_size.clamp(1, MAX_PAGE_SIZE);
        let org_prefix = keys::prefix(organization_id);
        let mut indexes: Vec<Vec<u8>> = checked_words(filter)?
            .iter()
            .map(|w| keys::word_index(organization_id, w))
            .collect();
        if let Some(s) = filter.source {
            indexes.push(keys::source_index(organization_id, s.as_str()));
        }

        // Positions (`!ts id`) to visit: from the window's newest end or just after the cursor, to the
        // window's oldest end.
        let (mut start, end) = window(filter.from_ms, filter.to_ms);
        if let Some(token) = page_token {
            let mut after = cursor_position(organization_id, token)?;
            after.push(0);
            start = start.max(after);
        }
        if end.as_ref().is_some_and(|e| start >= *e) {
            return Ok(InteractionPage::default());
        }

        let mut page = InteractionPage::default();
        let cursor = |pos: &[u8]| {
            let mut k = org_prefix.clone();
            k.extend_from_slice(pos);
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k)
        };
        if indexes.is_empty() {
            let lower = [org_prefix.as_slice(), &start].concat();
            let upper = match &end {
                Some(e) => [org_prefix.as_slice(), e].concat(),
                None => keys::prefix_end(&org_prefix),
            };
            for item in self.inner.interactions.range(lower..upper) {
                let (k, v) = item?;
                if page.interactions.len() == page_size {
                    let last = page
                        .interactions
                        .last()
                        .map(|i| keys::position(i.timestamp_ms, &i.id));
                    page.next_page_token = last.map(|p| cursor(&p));
                    break;
                }
                page.interactions.push(decode(&k, &v)?);
            }
            return Ok(page);
        }

        // Leapfrog intersection: every index must hold the position; each index jumps the candidate to the
        // next position it holds. Each index keeps a live iterator and steps forward over short gaps,
        // seeking anew only over long ones.
        let mut cursors: Vec<IndexCursor> = indexes
            .iter()
            .map(|prefix| IndexCursor::new(&self.inner.interaction_index, prefix, end.as_deref()))
            .collect();
        let budget = page_size * 40 + 2_000;
        let mut work = 0;
        let mut candidate = start;
        'search: loop {
            let mut agreed = 0;
            let mut i = 0;
            while agreed < cursors.len() {
                if work >= budget {
                    // Cut short: every position before the candidate is done; resume at the candidate.
                    page.next_page_token = Some(cursor(&before(&candidate)));
                    break 'search;
                }
                match cursors[i].advance_to(&candidate, &mut work)? {
                    None => break 'search,
                    Some(pos) if *pos == candidate => agreed += 1,
                    Some(pos) => {
                        candidate = pos.clone();
                        agreed = 1;
                    }
                }
                i = (i + 1) % cursors.len();
            }
            if page.interactions.len() == page_size {
                page.next_page_token = page
                    .interactions
                    .last()
                    .map(|r| cursor(&keys::position(r.timestamp_ms, &r.id)));
                break;
            }
            let pk = [org_prefix.as_slice(), &candidate].concat();
            match self.inner.interactions.get(&pk)? {
                Some(v) => page.interactions.push(decode(&pk, &v)?),
                None => return Err(StorageError::corrupt(&pk, "index entry without record")),
            }
            candidate.push(0);
        }
        Ok(page)
    }

    /// Counts an organization's interactions per source, from counters maintained on insert: O(1).
    pub fn summary(&self, organization_id: &str) -> Result<Summary> {
        let count = |source: SourceType| -> Result<u64> {
            let key = keys::pair(organization_id, source.as_str());
            Ok(self
                .inner
                .org_counts
                .get(&key)?
                .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0))
        };
        Ok(Summary {
            web: count(SourceType::Web)?,
            cctv: count(SourceType::Cctv)?,
            social: count(SourceType::Social)?,
        })
    }

    /// Visits every interaction of an organization in the time window, newest first, without indexes
    /// (analysis statistics, and the full-scan figure of the list benchmark). Stops early when `visit`
    /// returns `false`.
    pub fn scan_interactions(
        &self,
        organization_id: &str,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
        mut visit: impl FnMut(Interaction) -> bool,
    ) -> Result<()> {
        let prefix = keys::prefix(organization_id);
        let (first, last) = window(from_ms, to_ms);
        let start = [prefix.as_slice(), &first].concat();
        let end = match last {
            Some(e) => [prefix.as_slice(), &e].concat(),
            None => keys::prefix_end(&prefix),
        };
        if start >= end {
            return Ok(());
        }
        for item in self.inner.interactions.range(start..end) {
            let (k, v) = item?;
            if !visit(decode(&k, &v)?) {
                break;
            }
        }
        Ok(())
    }
}

/// Checks a listing filter the way every store does before listing: its words and its time range.
pub fn validate_filter(filter: &InteractionFilter) -> Result<()> {
    checked_words(filter).map(|_| ())
}

/// Checks a listing filter the same way for every store: the search words (sorted, deduplicated, at
/// least one and at most [`MAX_QUERY_WORDS`]) and a non-empty time range.
pub(crate) fn checked_words(filter: &InteractionFilter) -> Result<Vec<String>> {
    if let (Some(from), Some(to)) = (filter.from_ms, filter.to_ms) {
        if from >= to {
            return Err(StorageError::InvalidFilter(
                "the time range is empty: from must be before to",
            ));
        }
    }
    let Some(q) = &filter.query else {
        return Ok(Vec::new());
    };
    let mut w: Vec<String> = words(q).collect();
    w.sort();
    w.dedup();
    if w.is_empty() {
        return Err(StorageError::InvalidFilter(
            "q has no searchable word (words are runs of letters and digits)",
        ));
    }
    if w.len() > MAX_QUERY_WORDS {
        return Err(StorageError::InvalidFilter("q has more than 8 words"));
    }
    Ok(w)
}

/// The cursor of a newest-first page: `org \0` and the position of the page's last record, URL-safe
/// base64. Both stores issue and read the same form.
/// The position (`!ts id`) a page token of the organization points at; tokens of another organization,
/// or that no store issued, are [`StorageError::InvalidPageToken`].
pub(crate) fn cursor_position(organization_id: &str, token: &str) -> Result<Vec<u8>> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| StorageError::InvalidPageToken)?;
    let prefix = keys::prefix(organization_id);
    match bytes.strip_prefix(prefix.as_slice()) {
        Some(position) if position.len() >= 8 => Ok(position.to_vec()),
        _ => Err(StorageError::InvalidPageToken),
    }
}

pub(crate) fn page_cursor(organization_id: &str, timestamp_ms: i64, id: &str) -> String {
    let mut k = keys::prefix(organization_id);
    k.extend_from_slice(&keys::position(timestamp_ms, id));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k)
}

/// The positions (`!ts id`) of a time window `[from_ms, to_ms)`: where a newest-first scan starts, and
/// where it ends (exclusive; `None` = the end of the tree or index).
fn window(from_ms: Option<i64>, to_ms: Option<i64>) -> (Vec<u8>, Option<Vec<u8>>) {
    // Records with ts < to are those at or after !(to - 1); those with ts >= from are before !(from - 1).
    let start = to_ms.map_or_else(Vec::new, |to| {
        keys::newest_first(to.saturating_sub(1)).to_vec()
    });
    let end = from_ms
        .filter(|from| *from > i64::MIN)
        .map(|from| keys::newest_first(from - 1).to_vec());
    (start, end)
}

/// A forward cursor over one newest-first index, for the leapfrog intersection.
struct IndexCursor<'a> {
    tree: &'a sled::Tree,
    prefix: &'a [u8],
    upper: Vec<u8>,
    iter: Option<sled::Iter>,
    /// The position the iterator stands on.
    current: Option<Vec<u8>>,
    exhausted: bool,
}

impl<'a> IndexCursor<'a> {
    /// Steps taken with the live iterator before seeking anew.
    const MAX_STEPS: usize = 8;

    fn new(tree: &'a sled::Tree, prefix: &'a [u8], end: Option<&[u8]>) -> Self {
        let upper = match end {
            Some(e) => [prefix, e].concat(),
            None => keys::prefix_end(prefix),
        };
        IndexCursor {
            tree,
            prefix,
            upper,
            iter: None,
            current: None,
            exhausted: false,
        }
    }

    fn step(&mut self) -> Result<()> {
        self.current = match self.iter.as_mut().and_then(Iterator::next) {
            Some(item) => Some(item?.0[self.prefix.len()..].to_vec()),
            None => {
                self.exhausted = true;
                None
            }
        };
        Ok(())
    }

    /// The first position at or after `pos` this index holds (`None`: none left); counts its work.
    fn advance_to(&mut self, pos: &[u8], work: &mut usize) -> Result<Option<&Vec<u8>>> {
        if self.exhausted {
            return Ok(None);
        }
        if self.current.as_deref().is_some_and(|c| c >= pos) {
            return Ok(self.current.as_ref());
        }
        if self.iter.is_some() {
            for _ in 0..Self::MAX_STEPS {
                *work += 1;
                self.step()?;
                match self.current.as_deref() {
                    None => return Ok(None),
                    Some(c) if c >= pos => return Ok(self.current.as_ref()),
                    Some(_) => {}
                }
            }
        }
        *work += 1;
        let lower = [self.prefix, pos].concat();
        if lower >= self.upper {
            self.exhausted = true;
            return Ok(None);
        }
        self.iter = Some(self.tree.range(lower..self.upper.clone()));
        self.step()?;
        Ok(self.current.as_ref())
    }
}

/// A cursor position that resumes exactly at `pos`: every real position (`!ts id`, the id non-empty UTF-8
/// without NUL, so never holding 0xFF) below `pos` is below it, and its successor is not above `pos`.
fn before(pos: &[u8]) -> Vec<u8> {
    let mut p = pos.to_vec();
    match p.last_mut() {
        Some(last) if *last > 0 => {
            *last -= 1;
            p.extend_from_slice(&[0xFF; 4]);
        }
        _ => {
            p.pop();
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: i64, source: SourceType, summary: &str) -> Interaction {
        Interaction {
            id: format!("id-{n:04}"),
            organization_id: "org".into(),
            source_type: source,
            session_id: None,
            data: serde_json::json!({"note": format!("n{n}")}),
            summary: summary.into(),
            confidence: 1.0,
            tags: vec![source.as_str().into()],
            product_ids: vec![],
            timestamp_ms: 1_000 + n / 2,
            created_at_ms: 0,
        }
    }

    fn all(store: &Store, filter: &InteractionFilter, page: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let p = store
                .list_interactions("org", filter, page, token.as_deref())
                .unwrap();
            out.extend(p.interactions.into_iter().map(|i| i.id));
            match p.next_page_token {
                Some(t) => token = Some(t),
                None => return out,
            }
        }
    }

    #[test]
    fn a_sparse_intersection_is_paged_in_bounded_steps_without_losing_the_match() {
        let store = Store::temporary().unwrap();
        // 3,000 records with one word or the other, and the oldest with both.
        let records: Vec<Interaction> = (0..3_000)
            .map(|n| {
                let summary = match n {
                    0 => "aa bb",
                    n if n % 2 == 0 => "aa",
                    _ => "bb",
                };
                record(n, SourceType::Web, summary)
            })
            .collect();
        store.insert_interactions(&records).unwrap();
        let filter = InteractionFilter {
            query: Some("bb aa".into()),
            ..Default::default()
        };
        let (mut pages, mut found, mut token) = (0, Vec::new(), None::<String>);
        loop {
            let p = store
                .list_interactions("org", &filter, 1, token.as_deref())
                .unwrap();
            pages += 1;
            found.extend(p.interactions.into_iter().map(|i| i.id));
            match p.next_page_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(found, vec!["id-0000".to_owned()]);
        assert!(
            pages > 1,
            "each page's work is bounded, so the scan took several pages"
        );
    }

    #[test]
    fn a_cursor_before_a_position_resumes_exactly_there() {
        let p = keys::position(1_000, "0190-id");
        let q = keys::position(1_000, "0190-ic~");
        let c = before(&p);
        let mut resume = c.clone();
        resume.push(0);
        assert!(q < resume && resume <= p, "{q:?} < {resume:?} <= {p:?}");
    }

    #[test]
    fn filters_return_exactly_the_matching_records_newest_first() {
        let store = Store::temporary().unwrap();
        let sources = [SourceType::Web, SourceType::Cctv, SourceType::Social];
        let records: Vec<Interaction> = (0..60)
            .map(|n| {
                let summary = if n % 4 == 0 {
                    "red shoes tried on"
                } else {
                    "coffee bought"
                };
                record(n, sources[n as usize % 3], summary)
            })
            .collect();
        assert_eq!(store.insert_interactions(&records).unwrap(), 60);
        assert_eq!(
            store.insert_interactions(&records).unwrap(),
            0,
            "ids are unique"
        );
        let expect = |pred: &dyn Fn(&Interaction) -> bool| {
            let mut v: Vec<&Interaction> = records.iter().filter(|i| pred(i)).collect();
            v.sort_by(|a, b| b.timestamp_ms.cmp(&a.timestamp_ms).then(a.id.cmp(&b.id)));
            v.into_iter().map(|i| i.id.clone()).collect::<Vec<_>>()
        };
        let f = |source, query: Option<&str>, from_ms, to_ms| InteractionFilter {
            source,
            query: query.map(str::to_owned),
            from_ms,
            to_ms,
        };
        for page in [1, 7, 500] {
            assert_eq!(
                all(&store, &f(None, None, None, None), page),
                expect(&|_| true)
            );
            assert_eq!(
                all(&store, &f(Some(SourceType::Cctv), None, None, None), page),
                expect(&|i| i.source_type == SourceType::Cctv)
            );
            assert_eq!(
                all(&store, &f(None, Some("RED shoes"), None, None), page),
                expect(&|i| i.summary.starts_with("red"))
            );
            assert_eq!(
                all(
                    &store,
                    &f(
                        Some(SourceType::Web),
                        Some("shoes"),
                        Some(1_005),
                        Some(1_020)
                    ),
                    page
                ),
                expect(&|i| i.source_type == SourceType::Web
                    && i.summary.starts_with("red")
                    && (1_005..1_020).contains(&i.timestamp_ms))
            );
            assert_eq!(
                all(&store, &f(None, Some("n7"), None, None), page),
                vec!["id-0007".to_owned()],
                "strings in data are searchable"
            );
        }
        assert!(matches!(
            store.list_interactions("org", &f(None, Some("!"), None, None), 10, None),
            Err(StorageError::InvalidFilter(_))
        ));
        assert_eq!(store.summary("org").unwrap().total(), 60);
    }
}
