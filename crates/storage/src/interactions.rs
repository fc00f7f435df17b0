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
struct Prepared {
    key: Vec<u8>,
    value: Vec<u8>,
    id: String,
    count_key: Vec<u8>,
    index_keys: Vec<Vec<u8>>,
}

fn prepare(i: &Interaction) -> Prepared {
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
        )
            .transaction(
                |(records, ids, counts, index, unanalyzed, outbox, outbox_ids)| {
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
                        let n = read_count(counts, &p.count_key)?;
                        counts.insert(p.count_key.as_slice(), &(n + 1).to_be_bytes())?;
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
    /// Cost is O(page): the scan runs over the narrowest index the filter allows (a search word, else the
    /// source, else all records) within the time range, and examines at most a bounded number of entries
    /// per page; other conditions are checked on the records found.
    pub fn list_interactions(
        &self,
        organization_id: &str,
        filter: &InteractionFilter,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<InteractionPage> {
        let page_size = page_size.clamp(1, MAX_PAGE_SIZE);
        let org_prefix = keys::prefix(organization_id);
        let query_words: Vec<String> = match &filter.query {
            Some(q) => {
                let mut w: Vec<String> = words(q).collect();
                w.dedup();
                if w.is_empty() {
                    return Err(StorageError::InvalidFilter(
                        "q has no searchable word (words are runs of letters and digits)",
                    ));
                }
                if w.len() > MAX_QUERY_WORDS {
                    return Err(StorageError::InvalidFilter("q has more than 8 words"));
                }
                w
            }
            None => Vec::new(),
        };
        if let (Some(from), Some(to)) = (filter.from_ms, filter.to_ms) {
            if from >= to {
                return Err(StorageError::InvalidFilter(
                    "the time range is empty: from must be before to",
                ));
            }
        }
        // The index to scan, and which conditions remain to be checked on each record.
        let (tree, index_prefix, check_source) = match (query_words.first(), filter.source) {
            (Some(w), source) => (
                &self.inner.interaction_index,
                keys::word_index(organization_id, w),
                source,
            ),
            (None, Some(s)) => (
                &self.inner.interaction_index,
                keys::source_index(organization_id, s.as_str()),
                None,
            ),
            (None, None) => (&self.inner.interactions, org_prefix.clone(), None),
        };
        let primary = index_prefix == org_prefix;
        let position = |key: &[u8]| key[index_prefix.len()..].to_vec();

        // Lower bound: after the cursor, and at the window's newest end.
        let mut start = index_prefix.clone();
        if let Some(to) = filter.to_ms {
            // Records with ts < to are those at or after !(to - 1).
            start.extend_from_slice(&keys::newest_first(to.saturating_sub(1)));
        }
        if let Some(token) = page_token {
            let last = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token)
                .map_err(|_| StorageError::InvalidPageToken)?;
            if !last.starts_with(&org_prefix) || last.len() < org_prefix.len() + 8 {
                return Err(StorageError::InvalidPageToken);
            }
            let mut after = index_prefix.clone();
            after.extend_from_slice(&last[org_prefix.len()..]);
            after.push(0);
            start = start.max(after);
        }
        // Upper bound: the window's oldest end, else the end of the index.
        let end = match filter.from_ms {
            Some(from) if from > i64::MIN => {
                let mut e = index_prefix.clone();
                e.extend_from_slice(&keys::newest_first(from - 1));
                e
            }
            _ => keys::prefix_end(&index_prefix),
        };
        if start >= end {
            return Ok(InteractionPage::default());
        }

        let budget = page_size * 20 + 1_000;
        let mut page = InteractionPage::default();
        let mut last_position: Option<Vec<u8>> = None;
        let mut more = false;
        for (examined, item) in tree.range(start..end).enumerate() {
            let (k, v) = item?;
            if page.interactions.len() == page_size || examined == budget {
                more = true;
                break;
            }
            let pos = position(&k);
            let record: Interaction = if primary {
                decode(&k, &v)?
            } else {
                let mut pk = org_prefix.clone();
                pk.extend_from_slice(&pos);
                match self.inner.interactions.get(&pk)? {
                    Some(v) => decode(&pk, &v)?,
                    None => return Err(StorageError::corrupt(&k, "index entry without record")),
                }
            };
            last_position = Some(pos);
            if check_source.is_some_and(|s| s != record.source_type) {
                continue;
            }
            if query_words.len() > 1 {
                let have = interaction_words(&record);
                if !query_words[1..].iter().all(|w| have.contains(w)) {
                    continue;
                }
            }
            page.interactions.push(record);
        }
        if more {
            if let Some(pos) = last_position {
                let mut cursor = org_prefix;
                cursor.extend_from_slice(&pos);
                page.next_page_token =
                    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(cursor));
            }
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
        let mut start = prefix.clone();
        if let Some(to) = to_ms {
            start.extend_from_slice(&keys::newest_first(to.saturating_sub(1)));
        }
        let end = match from_ms {
            Some(from) if from > i64::MIN => {
                let mut e = prefix.clone();
                e.extend_from_slice(&keys::newest_first(from - 1));
                e
            }
            _ => keys::prefix_end(&prefix),
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
