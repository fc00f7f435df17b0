//! The agent's store-and-forward spool for one camera: every sampled frame is written here before it is
//! sent, and deleted only once the server acknowledged it durably, so that an unreachable server, an
//! agent killed mid-stream or a restart loses nothing that fits the spool.
//!
//! Layout of a camera's directory: one file per frame, `<frame index, 20 digits>-<capture time ms>.jpg`
//! (written to a `.tmp` file, synced, then renamed, so a listed frame is always whole), and `next_index`,
//! the index the next captured frame gets (kept across restarts: frame indexes only grow, and the
//! server's idempotent frame keys make a resend of a spooled frame a replay, never a second frame).
//! The spool is bounded in bytes; a frame that does not fit pushes out the oldest ones, each counted as
//! dropped.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A frame waiting in the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpooledFrame {
    /// The frame's index (its key on the server, within the camera's session).
    pub index: u64,
    /// When it was captured, ms since the Unix epoch.
    pub captured_at_ms: i64,
    /// Its size in bytes.
    pub bytes: u64,
}

/// What the spool holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Frames waiting.
    pub frames: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Capture time of the oldest waiting frame.
    pub oldest_captured_at_ms: Option<i64>,
    /// Frames pushed out to make room, since this spool was opened.
    pub dropped: u64,
}

/// Why the spool failed.
#[derive(Debug, thiserror::Error)]
#[error("spool {dir}: {action}: {source}")]
pub struct SpoolError {
    dir: String,
    action: &'static str,
    #[source]
    source: std::io::Error,
}

struct State {
    frames: BTreeMap<u64, SpooledFrame>,
    bytes: u64,
    next_index: u64,
    dropped: u64,
}

/// One camera's spool. Its methods do file I/O: call them from a blocking thread.
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    state: Mutex<State>,
}

const NEXT_INDEX: &str = "next_index";

fn frame_name(frame: &SpooledFrame) -> String {
    format!("{:020}-{}.jpg", frame.index, frame.captured_at_ms)
}

/// The index and capture time a frame file's name holds.
fn parse_frame_name(name: &str) -> Option<(u64, i64)> {
    let (index, rest) = name.strip_suffix(".jpg")?.split_once('-')?;
    Some((index.parse().ok()?, rest.parse().ok()?))
}

impl Spool {
    /// Opens (creating) the spool in `dir`, bounded to `max_bytes`: lists the frames a previous run left
    /// and removes half-written ones.
    pub fn open(dir: impl Into<PathBuf>, max_bytes: u64) -> Result<Spool, SpoolError> {
        let dir = dir.into();
        let fail = |action, source| SpoolError {
            dir: dir.display().to_string(),
            action,
            source,
        };
        std::fs::create_dir_all(&dir).map_err(|e| fail("creating it", e))?;
        let mut frames = BTreeMap::new();
        let mut bytes = 0;
        for entry in std::fs::read_dir(&dir).map_err(|e| fail("listing it", e))? {
            let entry = entry.map_err(|e| fail("listing it", e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                // A frame the previous run did not finish writing: never acknowledged, never listed.
                std::fs::remove_file(entry.path())
                    .map_err(|e| fail("removing a partial frame", e))?;
                continue;
            }
            let Some((index, captured_at_ms)) = parse_frame_name(&name) else {
                continue;
            };
            let size = entry
                .metadata()
                .map_err(|e| fail("reading a frame's size", e))?
                .len();
            bytes += size;
            frames.insert(
                index,
                SpooledFrame {
                    index,
                    captured_at_ms,
                    bytes: size,
                },
            );
        }
        let kept = match std::fs::read_to_string(dir.join(NEXT_INDEX)) {
            Ok(text) => text.trim().parse::<u64>().unwrap_or(0),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(fail("reading next_index", e)),
        };
        let next_index = kept.max(frames.keys().next_back().map_or(0, |i| i + 1));
        Ok(Spool {
            dir,
            max_bytes,
            state: Mutex::new(State {
                frames,
                bytes,
                next_index,
                dropped: 0,
            }),
        })
    }

    fn fail(&self, action: &'static str, source: std::io::Error) -> SpoolError {
        SpoolError {
            dir: self.dir.display().to_string(),
            action,
            source,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes a captured frame durably under the next index, pushing out the oldest frames if it does
    /// not fit; returns it and how many frames were dropped for it.
    pub fn push(
        &self,
        captured_at_ms: i64,
        jpeg: &[u8],
    ) -> Result<(SpooledFrame, u64), SpoolError> {
        let mut state = self.lock();
        let frame = SpooledFrame {
            index: state.next_index,
            captured_at_ms,
            bytes: jpeg.len() as u64,
        };
        // The index is taken before the frame exists, so a crash in between skips it, never reuses it.
        write_atomically(
            &self.dir.join(NEXT_INDEX),
            (frame.index + 1).to_string().as_bytes(),
        )
        .map_err(|e| self.fail("keeping next_index", e))?;
        state.next_index = frame.index + 1;
        write_atomically(&self.dir.join(frame_name(&frame)), jpeg)
            .map_err(|e| self.fail("writing a frame", e))?;
        state.frames.insert(frame.index, frame);
        state.bytes += frame.bytes;
        let mut dropped = 0;
        while state.bytes > self.max_bytes {
            let Some((&oldest, &old)) = state.frames.iter().next() else {
                break;
            };
            if oldest == frame.index {
                break; // never the frame just captured
            }
            self.delete(&mut state, &old)?;
            dropped += 1;
        }
        state.dropped += dropped;
        Ok((frame, dropped))
    }

    fn delete(&self, state: &mut State, frame: &SpooledFrame) -> Result<(), SpoolError> {
        match std::fs::remove_file(self.dir.join(frame_name(frame))) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.fail("removing a frame", e)),
        }
        state.frames.remove(&frame.index);
        state.bytes -= frame.bytes;
        Ok(())
    }

    /// The first waiting frame after `after` (from the oldest when `None`).
    pub fn next_after(&self, after: Option<u64>) -> Option<SpooledFrame> {
        let state = self.lock();
        let from = after.map_or(0, |i| i + 1);
        state.frames.range(from..).next().map(|(_, f)| *f)
    }

    /// A waiting frame's bytes (`None`: acknowledged or dropped meanwhile).
    pub fn read(&self, frame: &SpooledFrame) -> Result<Option<Vec<u8>>, SpoolError> {
        if !self.lock().frames.contains_key(&frame.index) {
            return Ok(None);
        }
        match std::fs::read(self.dir.join(frame_name(frame))) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.fail("reading a frame", e)),
        }
    }

    /// Forgets a frame the server acknowledged durably.
    pub fn acknowledged(&self, index: u64) -> Result<(), SpoolError> {
        let mut state = self.lock();
        let Some(frame) = state.frames.get(&index).copied() else {
            return Ok(());
        };
        self.delete(&mut state, &frame)
    }

    /// What the spool holds now.
    pub fn stats(&self) -> SpoolStats {
        let state = self.lock();
        SpoolStats {
            frames: state.frames.len() as u64,
            bytes: state.bytes,
            oldest_captured_at_ms: state.frames.values().next().map(|f| f.captured_at_ms),
            dropped: state.dropped,
        }
    }
}

/// Writes `bytes` to `path` through a synced temporary file and a rename: after a crash `path` holds
/// either its old content or all of `bytes`.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_data()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_wait_in_order_until_acknowledged_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1_000_000).unwrap();
        let (a, _) = spool.push(1_000, b"first").unwrap();
        let (b, _) = spool.push(2_000, b"second").unwrap();
        assert_eq!((a.index, b.index), (0, 1));
        assert_eq!(spool.next_after(None), Some(a));
        assert_eq!(spool.next_after(Some(0)), Some(b));
        spool.acknowledged(0).unwrap();
        assert_eq!(spool.read(&a).unwrap(), None);
        drop(spool);
        // A run killed while writing frame 2: its index was taken, its file is half-written.
        std::fs::write(dir.path().join("next_index"), b"3").unwrap();
        std::fs::write(dir.path().join("00000000000000000002-3000.tmp"), b"half").unwrap();
        let spool = Spool::open(dir.path(), 1_000_000).unwrap();
        assert_eq!(spool.next_after(None), Some(b));
        assert_eq!(spool.read(&b).unwrap().as_deref(), Some(&b"second"[..]));
        let (c, _) = spool.push(4_000, b"third").unwrap();
        assert_eq!(
            c.index, 3,
            "indexes only grow, across restarts and skipped ones"
        );
        assert_eq!(spool.stats().frames, 2);
    }

    #[test]
    fn a_full_spool_drops_the_oldest_frames_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 10).unwrap();
        for i in 0..5 {
            spool.push(i, b"abcd").unwrap();
        }
        let stats = spool.stats();
        assert_eq!((stats.frames, stats.bytes, stats.dropped), (2, 8, 3));
        assert_eq!(spool.next_after(None).map(|f| f.index), Some(3));
        assert_eq!(stats.oldest_captured_at_ms, Some(3));
    }
}
