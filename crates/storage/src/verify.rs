//! A full consistency check of the database ([`Store::verify`]): what `crow doctor`, the crash tests and
//! the hostile-input tests use to show that nothing stored was lost or corrupted.

use std::collections::{HashMap, HashSet};

use serde::de::DeserializeOwned;
use sled::Tree;

use crate::interactions::prepare;
use crate::keys;
use crate::metrics::{MetricBucket, OccupancyCarry};
use crate::model::{
    AnalysisRecord, BatchRecord, DeadLetter, FrameAnalysis, FrameRecord, Interaction, OutboxEntry,
    Product, SessionRecord,
};
use crate::store::{decode, Store};
use crate::Result;

/// What [`Store::verify`] read, and every broken invariant it found (empty when the database is sound).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntegrityReport {
    /// Interaction records.
    pub interactions: u64,
    /// Session records.
    pub sessions: u64,
    /// Frame tracking records.
    pub frames: u64,
    /// Batch records.
    pub batches: u64,
    /// One line per problem, naming the tree and the record.
    pub problems: Vec<String>,
}

impl IntegrityReport {
    /// True when no invariant is broken.
    pub fn is_sound(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Store {
    /// Reads the whole database and checks its invariants: every stored value decodes; every interaction
    /// sits under the key its content implies, is reachable by its id and has exactly the index entries
    /// and counter contributions its content implies; every index entry and counter is accounted for;
    /// every frame belongs to a stored session whose counters add up to its frames. Reads only.
    pub fn verify(&self) -> Result<IntegrityReport> {
        let i = &self.inner;
        let mut report = IntegrityReport::default();
        let mut expected_index: HashSet<Vec<u8>> = HashSet::new();
        let mut counts: HashMap<Vec<u8>, u64> = HashMap::new();
        for item in i.interactions.iter() {
            let (key, value) = item?;
            report.interactions += 1;
            let Some(record) = decoded::<Interaction>(&mut report, "interactions", &key, &value)
            else {
                continue;
            };
            let p = prepare(&record);
            if p.key != key.as_ref() {
                report.problems.push(format!(
                    "interactions: record {} is stored under a key that does not match it",
                    record.id
                ));
            }
            if i.interaction_ids.get(record.id.as_bytes())?.as_deref() != Some(&key[..]) {
                report.problems.push(format!(
                    "interaction_ids: {} does not point at its record",
                    record.id
                ));
            }
            expected_index.extend(p.index_keys);
            *counts.entry(p.count_key).or_default() += 1;
        }
        if i.interaction_ids.len() as u64 != report.interactions {
            report.problems.push(format!(
                "interaction_ids: {} ids for {} records",
                i.interaction_ids.len(),
                report.interactions
            ));
        }
        let mut indexed = 0usize;
        for item in i.interaction_index.iter() {
            let (key, _) = item?;
            indexed += 1;
            if !expected_index.contains(key.as_ref()) {
                report
                    .problems
                    .push("interaction_index: an entry points at no record".to_owned());
            }
        }
        if indexed != expected_index.len() {
            report.problems.push(format!(
                "interaction_index: {indexed} entries where the records imply {}",
                expected_index.len()
            ));
        }
        for item in i.org_counts.iter() {
            let (key, value) = item?;
            let stored = <[u8; 8]>::try_from(value.as_ref())
                .ok()
                .map(u64::from_be_bytes);
            let counted = counts.remove(key.as_ref()).unwrap_or(0);
            if stored != Some(counted) {
                report.problems.push(format!(
                    "org_counts: a counter says {stored:?} where {counted} records exist"
                ));
            }
        }
        if counts.values().any(|&n| n > 0) {
            report
                .problems
                .push("org_counts: records without a counter".to_owned());
        }

        let mut sessions: HashMap<String, SessionRecord> = HashMap::new();
        for item in i.sessions.iter() {
            let (key, value) = item?;
            report.sessions += 1;
            if let Some(s) = decoded::<SessionRecord>(&mut report, "sessions", &key, &value) {
                sessions.insert(s.id.clone(), s);
            }
        }
        let mut frames_per_session: HashMap<String, u64> = HashMap::new();
        for item in i.frames.iter() {
            let (key, value) = item?;
            report.frames += 1;
            if decoded::<FrameRecord>(&mut report, "frames", &key, &value).is_some() {
                *frames_per_session.entry(owner(&key)).or_default() += 1;
            }
        }
        for (id, s) in &sessions {
            let c = s.counters;
            let frames = frames_per_session.remove(id).unwrap_or(0);
            // Retention may have removed a closed session's frame records; its counters stay.
            let tracked = s.tracking_pruned_at_ms.is_none();
            if c.received != c.accepted + c.skipped + c.rejected + c.no_person + c.gated + c.shed
                || (tracked && c.received != frames)
            {
                report.problems.push(format!(
                    "sessions: session {id} counts {} received ({} accepted, {} skipped, {} rejected, \
                     {} without people, {} gated, {} shed) but has {frames} frame records",
                    c.received, c.accepted, c.skipped, c.rejected, c.no_person, c.gated, c.shed
                ));
            }
        }
        for id in frames_per_session.keys() {
            report.problems.push(format!(
                "frames: records of session {id}, which does not exist"
            ));
        }
        for item in i.batches.iter() {
            let (key, value) = item?;
            report.batches += 1;
            decoded::<BatchRecord>(&mut report, "batches", &key, &value);
        }
        check_all::<FrameAnalysis>(&mut report, "pending", &i.pending)?;
        check_all::<OutboxEntry>(&mut report, "outbox", &i.outbox)?;
        check_all::<DeadLetter>(&mut report, "dead_letters", &i.dead_letters)?;
        check_all::<Product>(&mut report, "products", &i.products)?;
        check_all::<AnalysisRecord>(&mut report, "analyses", &i.analyses)?;
        self.verify_keyframes(&mut report)?;
        self.verify_metrics(&mut report)?;
        Ok(report)
    }

    /// The metric trees hold exactly what the stored `cctv` records measure, oldest first.
    fn verify_metrics(&self, report: &mut IntegrityReport) -> Result<()> {
        let i = &self.inner;
        let (mut buckets, mut carries) = self.measured_metrics()?;
        let mut wrong = 0usize;
        for item in i.metric_buckets.iter() {
            let (key, value) = item?;
            let Some(stored) = decoded::<MetricBucket>(report, "metric_buckets", &key, &value)
            else {
                continue;
            };
            if buckets.remove(key.as_ref()).unwrap_or_default() != stored {
                wrong += 1;
            }
        }
        wrong += buckets.values().filter(|b| !b.is_empty()).count();
        for item in i.metric_carry.iter() {
            let (key, value) = item?;
            let Some(stored) = decoded::<OccupancyCarry>(report, "metric_carry", &key, &value)
            else {
                continue;
            };
            if carries.remove(key.as_ref()).unwrap_or_default() != stored {
                wrong += 1;
            }
        }
        wrong += carries
            .values()
            .filter(|c| **c != OccupancyCarry::default())
            .count();
        if wrong > 0 {
            report.problems.push(format!(
                "metric_buckets: {wrong} bucket(s) or carried level(s) differ from what the stored records \
                 measure (`crow verify --repair` measures them again)"
            ));
        }
        Ok(())
    }

    /// Every keyframe has one order entry that records its size, and the sizes add up to the total.
    fn verify_keyframes(&self, report: &mut IntegrityReport) -> Result<()> {
        let i = &self.inner;
        let mut sizes: HashMap<Vec<u8>, u64> = HashMap::new();
        let mut total = 0u64;
        for item in i.keyframe_order.iter() {
            let (order, size) = item?;
            match (order.get(8..), keys::keyframe_size(&order, &size)) {
                (Some(frame_key), Ok(size)) if frame_key.len() > 8 => {
                    total += size;
                    if sizes.insert(frame_key.to_vec(), size).is_some() {
                        report.problems.push(format!(
                            "keyframe_order: two entries for a keyframe of session {}",
                            owner(frame_key)
                        ));
                    }
                }
                _ => report
                    .problems
                    .push("keyframe_order: an entry that does not decode".to_owned()),
            }
        }
        for item in i.keyframes.iter() {
            let (key, bytes) = item?;
            match sizes.remove(key.as_ref()) {
                Some(size) if size == bytes.len() as u64 => {}
                Some(size) => report.problems.push(format!(
                    "keyframes: a keyframe of session {} has {} bytes but its order entry says {size}",
                    owner(&key),
                    bytes.len()
                )),
                None => report.problems.push(format!(
                    "keyframes: a keyframe of session {} has no order entry (retention would never remove it)",
                    owner(&key)
                )),
            }
        }
        if !sizes.is_empty() {
            report.problems.push(format!(
                "keyframe_order: {} entries for keyframes that do not exist",
                sizes.len()
            ));
        }
        if total != self.keyframe_bytes() {
            report.problems.push(format!(
                "keyframes: {total} bytes stored but {} counted",
                self.keyframe_bytes()
            ));
        }
        Ok(())
    }
}

/// The session id of a `session \0 frame_index` key.
fn owner(key: &[u8]) -> String {
    let end = key.len().saturating_sub(9);
    String::from_utf8_lossy(&key[..end]).into_owned()
}

fn decoded<T: DeserializeOwned>(
    report: &mut IntegrityReport,
    tree: &str,
    key: &[u8],
    value: &[u8],
) -> Option<T> {
    match decode::<T>(key, value) {
        Ok(v) => Some(v),
        Err(e) => {
            report.problems.push(format!("{tree}: {e}"));
            None
        }
    }
}

fn check_all<T: DeserializeOwned>(
    report: &mut IntegrityReport,
    name: &str,
    tree: &Tree,
) -> Result<()> {
    for item in tree.iter() {
        let (key, value) = item?;
        decoded::<T>(report, name, &key, &value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SourceType;

    fn record(n: i64, source: SourceType) -> Interaction {
        Interaction {
            id: format!("id-{n}"),
            organization_id: "org".into(),
            source_type: source,
            session_id: None,
            data: serde_json::json!({ "n": n }),
            summary: format!("customer {n} looked at shoes"),
            confidence: 1.0,
            tags: vec!["web".into()],
            product_ids: vec![],
            timestamp_ms: 1_000 + n,
            created_at_ms: 1_000 + n,
        }
    }

    #[test]
    fn a_sound_database_passes_and_each_kind_of_damage_is_named() {
        let store = Store::temporary().unwrap();
        for n in 0..20 {
            let source = [SourceType::Web, SourceType::Social][n as usize % 2];
            store.insert_interaction(&record(n, source)).unwrap();
        }
        store.create_session("org", "cam").unwrap();
        let report = store.verify().unwrap();
        assert!(report.is_sound(), "{:?}", report.problems);
        assert_eq!((report.interactions, report.sessions), (20, 1));

        let i = &store.inner;
        // A value that no longer decodes.
        let (key, _) = i.interactions.first().unwrap().unwrap();
        i.interactions.insert(&key, &b"{not json"[..]).unwrap();
        // An index entry without a record, and a counter that disagrees.
        i.interaction_index
            .insert(b"org\0t\0ghost\0x", &[][..])
            .unwrap();
        let (count_key, _) = i.org_counts.first().unwrap().unwrap();
        i.org_counts
            .insert(&count_key, &99u64.to_be_bytes()[..])
            .unwrap();
        let problems = store.verify().unwrap().problems.join("\n");
        assert!(problems.contains("interactions:"), "{problems}");
        assert!(problems.contains("interaction_index:"), "{problems}");
        assert!(problems.contains("org_counts:"), "{problems}");
    }
}
