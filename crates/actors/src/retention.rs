//! `RetentionActor`: every `sweep_interval_ms` it measures the data directory's free space against the
//! disk floor, removes keyframes past their age or byte limit (all of them while the disk is low), removes
//! the frame tracking of old closed sessions, and exports what storage holds. Interactions, batches and
//! sessions are never touched.
//!
//! The disk state is shared with the session actors through [`DiskState`]: while it is low they stop
//! storing keyframes (the optional data) and keep storing everything interactions need.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crow_storage::{now_ms, Pruned, Store};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::config::RetentionConfig;
use crate::metrics_names as m;

/// Free space of the data directory as last measured, shared by the retention actor (which measures)
/// and the session actors (which stop storing optional data while it is low).
#[derive(Debug, Default)]
pub struct DiskState {
    low: AtomicBool,
    free_bytes: AtomicU64,
    measured: AtomicBool,
}

impl DiskState {
    /// Whether free space is below `pipeline.retention.min_free_disk_bytes`.
    pub fn is_low(&self) -> bool {
        self.low.load(Ordering::Acquire)
    }

    /// Free bytes at the last measurement; `None` before the first (or for a temporary database).
    pub fn free_bytes(&self) -> Option<u64> {
        self.measured
            .load(Ordering::Acquire)
            .then(|| self.free_bytes.load(Ordering::Acquire))
    }
}

/// Bytes available to an unprivileged process on the file system holding `path`.
pub fn free_disk_bytes(path: &std::path::Path) -> std::io::Result<u64> {
    let stat = rustix::fs::statvfs(path)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

pub(crate) enum RetentionMsg {
    /// Run one pass (sent to itself every sweep interval).
    Sweep,
}

#[derive(Clone)]
pub(crate) struct RetentionArgs {
    pub store: Store,
    pub config: RetentionConfig,
    pub disk: Arc<DiskState>,
}

pub(crate) struct RetentionActor;

impl Actor for RetentionActor {
    type Msg = RetentionMsg;
    type State = RetentionArgs;
    type Arguments = RetentionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: RetentionArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        // One pass at once, so the disk state is known before the first frames arrive.
        myself.cast(RetentionMsg::Sweep)?;
        myself.send_interval(
            Duration::from_millis(args.config.sweep_interval_ms.max(1)),
            || RetentionMsg::Sweep,
        );
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RetentionMsg::Sweep => {
                let args = state.clone();
                // sled and statvfs block; keep them off the async threads.
                tokio::task::spawn_blocking(move || sweep(&args))
                    .await
                    .map_err(|e| format!("retention task: {e}"))??;
            }
        }
        Ok(())
    }
}

fn sweep(args: &RetentionArgs) -> Result<(), ActorProcessingErr> {
    let RetentionArgs {
        store,
        config,
        disk,
    } = args;
    if let Some(path) = store.path() {
        match free_disk_bytes(path) {
            Ok(free) => {
                disk.free_bytes.store(free, Ordering::Release);
                disk.measured.store(true, Ordering::Release);
                metrics::gauge!(m::DISK_FREE_BYTES).set(free as f64);
                let low = free < config.min_free_disk_bytes;
                let was_low = disk.low.swap(low, Ordering::AcqRel);
                metrics::gauge!(m::DISK_LOW).set(if low { 1.0 } else { 0.0 });
                if low && !was_low {
                    tracing::warn!(
                        free_bytes = free,
                        floor_bytes = config.min_free_disk_bytes,
                        "disk nearly full: keyframes are no longer stored and stored ones are removed; interactions are still stored (pipeline.retention.min_free_disk_bytes)"
                    );
                } else if was_low && !low {
                    tracing::info!(
                        free_bytes = free,
                        "free disk space back above the floor: keyframes are stored again"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot measure free disk space"),
        }
    }
    let now = now_ms();
    let age_cutoff = now.saturating_sub(config.keyframe_max_age_ms.min(i64::MAX as u64) as i64);
    let byte_limit = if disk.is_low() {
        0
    } else {
        config.keyframe_max_bytes
    };
    let keyframes = store.prune_keyframes(age_cutoff, byte_limit)?;
    let tracking_cutoff =
        now.saturating_sub(config.frame_tracking_max_age_ms.min(i64::MAX as u64) as i64);
    let tracking = store.prune_frame_tracking(tracking_cutoff)?;
    report(&keyframes, &tracking, disk.is_low());
    metrics::gauge!(m::KEYFRAME_BYTES).set(store.keyframe_bytes() as f64);
    metrics::gauge!(m::KEYFRAMES).set(store.keyframe_count() as f64);
    if let Ok(size) = store.size_on_disk() {
        metrics::gauge!(m::SLED_SIZE_BYTES).set(size as f64);
    }
    Ok(())
}

fn report(keyframes: &Pruned, tracking: &Pruned, disk_low: bool) {
    let size_reason = if disk_low { "disk_low" } else { "size" };
    metrics::counter!(m::KEYFRAMES_PRUNED, "reason" => "age").increment(keyframes.keyframes_by_age);
    metrics::counter!(m::KEYFRAMES_PRUNED, "reason" => size_reason)
        .increment(keyframes.keyframes_by_size);
    metrics::counter!(m::FRAME_RECORDS_PRUNED).increment(tracking.frame_records);
    if keyframes.keyframes_by_age + keyframes.keyframes_by_size > 0 || tracking.frame_records > 0 {
        tracing::info!(
            keyframes_by_age = keyframes.keyframes_by_age,
            keyframes_by_size = keyframes.keyframes_by_size,
            keyframe_bytes = keyframes.keyframe_bytes,
            disk_low,
            sessions = tracking.tracked_sessions,
            frame_records = tracking.frame_records,
            "retention removed optional data"
        );
    }
}
