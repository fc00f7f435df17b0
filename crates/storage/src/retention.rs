//! Optional data and its retention: keyframes (the encoded bytes of described frames, kept as evidence)
//! and the per-frame tracking records of closed sessions. Both can be removed by age or, for keyframes,
//! by total size, oldest first, without touching interactions, batches, sessions or their counters.

use std::sync::atomic::Ordering;

use sled::Transactional;

use crate::keys;
use crate::model::{SessionRecord, SessionStatus};
use crate::store::{decode, tx_err, tx_put, Store};
use crate::{now_ms, Result, StorageError};

/// What one pruning pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Keyframes removed because they were older than the age limit.
    pub keyframes_by_age: u64,
    /// Keyframes removed to get under the byte limit.
    pub keyframes_by_size: u64,
    /// Bytes of keyframes removed.
    pub keyframe_bytes: u64,
    /// Sessions whose frame tracking records were removed.
    pub tracked_sessions: u64,
    /// Frame tracking records removed.
    pub frame_records: u64,
}

impl Store {
    /// The keyframe of a described frame, if kept. Its bytes are checked against the digest in the
    /// frame's tracking record (while that is kept): bytes that changed in storage are `Corrupt`.
    pub fn keyframe(&self, session_id: &str, frame_index: u64) -> Result<Option<Vec<u8>>> {
        let key = keys::indexed(session_id, frame_index);
        let Some(bytes) = self.inner.keyframes.get(&key)? else {
            return Ok(None);
        };
        self.check_digest(&key, &bytes)?;
        Ok(Some(bytes.to_vec()))
    }

    /// Frame indexes of a session that have a keyframe, in order.
    pub fn keyframe_indexes(&self, session_id: &str) -> Result<Vec<u64>> {
        let mut out = Vec::new();
        for item in self.inner.keyframes.scan_prefix(keys::prefix(session_id)) {
            let (k, _) = item?;
            out.extend(keys::index_of(&k));
        }
        Ok(out)
    }

    /// Total size of the stored keyframes, bytes.
    pub fn keyframe_bytes(&self) -> u64 {
        self.inner.keyframe_bytes.load(Ordering::SeqCst)
    }

    /// Number of stored keyframes.
    pub fn keyframe_count(&self) -> usize {
        self.inner.keyframe_order.len()
    }

    /// The database directory (`None` for a temporary database).
    pub fn path(&self) -> Option<&std::path::Path> {
        self.inner.path.as_deref()
    }

    /// Bytes the database takes on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.inner.db.size_on_disk()?)
    }

    /// Removes keyframes stored before `stored_before_ms`, then the oldest ones until the rest take at
    /// most `max_bytes`. Each removal is one transaction (keyframe and order entry).
    pub fn prune_keyframes(&self, stored_before_ms: i64, max_bytes: u64) -> Result<Pruned> {
        let i = &self.inner;
        let mut pruned = Pruned::default();
        for item in i.keyframe_order.iter() {
            let (order, size) = item?;
            let size = keys::keyframe_size(&order, &size)?;
            let (stored_at, frame_key) = keys::split_keyframe_order(&order)
                .ok_or_else(|| StorageError::corrupt(&order, "keyframe order key is too short"))?;
            let too_old = stored_at < stored_before_ms;
            if !too_old && self.keyframe_bytes() <= max_bytes {
                break;
            }
            (&i.keyframes, &i.keyframe_order)
                .transaction(|(keyframes, keyframe_order)| {
                    keyframes.remove(frame_key)?;
                    keyframe_order.remove(order.as_ref())?;
                    Ok(())
                })
                .map_err(tx_err)?;
            i.keyframe_bytes.fetch_sub(size, Ordering::SeqCst);
            pruned.keyframe_bytes += size;
            if too_old {
                pruned.keyframes_by_age += 1;
            } else {
                pruned.keyframes_by_size += 1;
            }
        }
        Ok(pruned)
    }

    /// Removes the frame tracking records of closed sessions created before `created_before_ms`; the
    /// sessions keep their counters and are marked [`SessionRecord::tracking_pruned_at_ms`].
    pub fn prune_frame_tracking(&self, created_before_ms: i64) -> Result<Pruned> {
        let i = &self.inner;
        let mut pruned = Pruned::default();
        for item in i.sessions.iter() {
            let (key, value) = item?;
            let mut session: SessionRecord = decode(&key, &value)?;
            if session.status != SessionStatus::Closed
                || session.tracking_pruned_at_ms.is_some()
                || session.created_at_ms >= created_before_ms
            {
                continue;
            }
            let frame_keys: Vec<sled::IVec> = i
                .frames
                .scan_prefix(keys::prefix(&session.id))
                .keys()
                .collect::<std::result::Result<_, _>>()?;
            session.tracking_pruned_at_ms = Some(now_ms());
            (&i.frames, &i.sessions)
                .transaction(|(frames, sessions)| {
                    for k in &frame_keys {
                        frames.remove(k.as_ref())?;
                    }
                    tx_put(sessions, session.id.as_bytes(), &session)?;
                    Ok(())
                })
                .map_err(tx_err)?;
            pruned.tracked_sessions += 1;
            pruned.frame_records += frame_keys.len() as u64;
        }
        Ok(pruned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FrameAnalysis, FrameDigest, FrameOutcome, FrameRecord};
    use crate::store::FrameWrite;

    fn described(store: &Store, session: &mut SessionRecord, index: u64, bytes: &[u8]) {
        let frame = FrameRecord {
            frame_index: index,
            captured_at_ms: 1_000 + index as i64,
            outcome: FrameOutcome::Accepted,
            description: None,
            digest: Some(FrameDigest::of(bytes)),
        };
        session.counters.received += 1;
        session.counters.accepted += 1;
        store
            .record_frame(FrameWrite {
                frame: &frame,
                session,
                undescribed_bytes: Some(bytes),
                gate_thumbnail: None,
            })
            .unwrap();
        let analysis = FrameAnalysis {
            frame_index: index,
            captured_at_ms: frame.captured_at_ms,
            describer: "test".into(),
            text: format!("frame {index}"),
            confidence: 1.0,
            tags: vec![],
            details: Default::default(),
        };
        session.counters.described += 1;
        assert!(store.record_description(session, &analysis, true).unwrap());
    }

    #[test]
    fn a_keyframe_whose_bytes_changed_in_storage_is_corrupt_not_served() {
        let store = Store::temporary().unwrap();
        let mut session = store.create_session("org", "cam").unwrap();
        described(
            &store,
            &mut session,
            0,
            b"\xff\xd8 the frame as sent \xff\xd9",
        );
        assert!(store.keyframe(&session.id, 0).unwrap().is_some());
        // One byte flipped on disk (what a failing disk or a stray writer leaves).
        let key = keys::indexed(&session.id, 0);
        store
            .inner
            .keyframes
            .insert(&key, &b"\xff\xd8 the frame as sEnt \xff\xd9"[..])
            .unwrap();
        match store.keyframe(&session.id, 0) {
            Err(StorageError::Corrupt { reason, .. }) => {
                assert!(reason.contains("digest"), "{reason}")
            }
            other => panic!("a changed keyframe must be refused: {other:?}"),
        }
        // Once retention removed the frame's tracking record there is nothing to check against.
        store.inner.frames.remove(&key).unwrap();
        assert!(store.keyframe(&session.id, 0).unwrap().is_some());
    }

    #[test]
    fn keyframes_are_pruned_oldest_first_by_size_and_age_and_counted_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut session = store.create_session("org", "cam").unwrap();
        for index in 0..10 {
            described(&store, &mut session, index, &[index as u8; 100]);
        }
        assert_eq!(store.keyframe_bytes(), 1_000);
        assert_eq!(store.keyframe(&session.id, 3).unwrap(), Some(vec![3; 100]));

        let pruned = store.prune_keyframes(i64::MIN, 350).unwrap();
        assert_eq!(pruned.keyframes_by_size, 7);
        assert_eq!(store.keyframe_bytes(), 300);
        assert_eq!(store.keyframe_indexes(&session.id).unwrap(), vec![7, 8, 9]);
        // The frames' descriptions are untouched.
        assert_eq!(store.pending_analyses(&session.id).unwrap().len(), 10);
        drop(store);

        let store = crate::store::tests_support::reopen(dir.path());
        assert_eq!(store.keyframe_bytes(), 300, "rebuilt from the order tree");
        let pruned = store.prune_keyframes(now_ms() + 1, u64::MAX).unwrap();
        assert_eq!(pruned.keyframes_by_age, 3);
        assert_eq!((store.keyframe_bytes(), store.keyframe_count()), (0, 0));
    }

    #[test]
    fn frame_tracking_of_closed_sessions_is_pruned_and_the_store_still_verifies() {
        let store = Store::temporary().unwrap();
        let mut open = store.create_session("org", "cam-a").unwrap();
        let mut closed = store.create_session("org", "cam-b").unwrap();
        for index in 0..3 {
            described(&store, &mut open, index, b"x");
            described(&store, &mut closed, index, b"y");
        }
        store.close_session(&closed).unwrap();
        let pruned = store.prune_frame_tracking(now_ms() + 1).unwrap();
        assert_eq!((pruned.tracked_sessions, pruned.frame_records), (1, 3));
        assert!(store.frames(&closed.id).unwrap().is_empty());
        assert_eq!(
            store.frames(&open.id).unwrap().len(),
            3,
            "open sessions keep theirs"
        );
        let after = store.get_session(&closed.id).unwrap().unwrap();
        assert_eq!(after.counters.received, 3);
        assert!(after.tracking_pruned_at_ms.is_some());
        let report = store.verify().unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }
}
