//! A fixed number of describer slots on dedicated threads, fed through a bounded queue.
//!
//! Inference blocks for milliseconds to seconds, so it never runs on the async runtime. Each slot owns one
//! [`FrameDescriber`] (its own model context, detector, ...). [`DescriberPool::submit`] waits while the
//! queue is full: the waiting session stops acknowledging frames, so its client runs out of credits — memory
//! stays bounded by `slots + queue` frames. Every such wait is counted (`crow_describe_queue_waits_total`).
//! A job whose session has stopped (closed, failed, shut down) is skipped when a slot takes it
//! (`crow_describe_cancelled_total`): its frame is still accepted-but-undescribed in sled, so a restarted
//! session describes it again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crow_inference::Mat;
use crow_inference::{DescribeInput, Description, FrameDescriber, InferenceError};
use tokio::sync::mpsc;

use crate::metrics_names as m;
use crate::PipelineError;

/// Builds one describer per slot.
pub type DescriberFactory =
    Arc<dyn Fn() -> Result<Box<dyn FrameDescriber>, InferenceError> + Send + Sync>;

/// Called on the worker thread with the outcome of a job.
pub type DescribeCallback = Box<dyn FnOnce(Result<(String, Description), String>) + Send>;

/// One frame to describe.
pub struct DescribeJob {
    /// The frame.
    pub image: Arc<Mat>,
    /// The previous accepted frame of the same session, for motion.
    pub previous: Option<Arc<Mat>>,
    /// Index within the session's stream.
    pub frame_index: u64,
    /// Capture time, ms since the Unix epoch.
    pub captured_at_ms: i64,
    /// The people the session's detector found in the frame, if it ran.
    pub people: Option<Arc<[crow_inference::Detection]>>,
    /// Set when the job's session stops: the job is skipped instead of described.
    pub cancelled: Arc<AtomicBool>,
    /// Receives `(describer name, description)` or an error message.
    pub done: DescribeCallback,
}

/// What the pool has counted since it started.
#[derive(Debug, Default)]
pub struct PoolStats {
    waits: AtomicU64,
    cancelled: AtomicU64,
    described: AtomicU64,
}

impl PoolStats {
    /// Submissions that found the queue full and waited for room.
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }
    /// Jobs skipped because their session had stopped.
    pub fn cancelled(&self) -> u64 {
        self.cancelled.load(Ordering::Relaxed)
    }
    /// Jobs a describer ran (successfully or not).
    pub fn described(&self) -> u64 {
        self.described.load(Ordering::Relaxed)
    }
}

/// Handle to the worker pool; cheap to clone.
#[derive(Clone)]
pub struct DescriberPool {
    queue: mpsc::Sender<DescribeJob>,
    slots: usize,
    stats: Arc<PoolStats>,
}

impl DescriberPool {
    /// Starts `slots` worker threads, each with its own describer from `factory`. Fails if any describer
    /// cannot be built, so configuration errors surface at start-up.
    pub fn start(
        factory: DescriberFactory,
        slots: usize,
        queue: usize,
    ) -> Result<DescriberPool, InferenceError> {
        let slots = slots.max(1);
        let (tx, rx) = mpsc::channel::<DescribeJob>(queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let stats = Arc::new(PoolStats::default());
        for slot in 0..slots {
            let mut describer = factory()?;
            let rx = Arc::clone(&rx);
            let worker_stats = Arc::clone(&stats);
            // Workers are detached: each exits when the last handle (the queue's sender) is dropped.
            std::thread::Builder::new()
                .name(format!("crow-describer-{slot}"))
                .spawn(move || worker(slot, describer.as_mut(), &rx, &worker_stats))
                .map_err(|e| InferenceError::Media {
                    path: "describer thread".into(),
                    reason: e.to_string(),
                })?;
        }
        Ok(DescriberPool {
            queue: tx,
            slots,
            stats,
        })
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Counters of waits, cancellations and describe calls.
    pub fn stats(&self) -> &PoolStats {
        &self.stats
    }

    /// Whether a job submitted now would be queued without waiting.
    pub fn has_room(&self) -> bool {
        self.queue.capacity() > 0
    }

    /// Queues a job, waiting (counted) while the queue is full.
    pub async fn submit(&self, job: DescribeJob) -> Result<(), PipelineError> {
        let stopped = || PipelineError::Unavailable("describer pool stopped".into());
        let result = match self.queue.try_send(job) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(stopped()),
            Err(mpsc::error::TrySendError::Full(job)) => {
                self.stats.waits.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(m::DESCRIBE_QUEUE_WAITS).increment(1);
                self.queue.send(job).await.map_err(|_| stopped())
            }
        };
        self.export_depth();
        result
    }

    /// Jobs waiting for a slot, as a gauge.
    fn export_depth(&self) {
        let depth = self.queue.max_capacity() - self.queue.capacity();
        metrics::gauge!(m::DESCRIBE_QUEUE_DEPTH).set(depth as f64);
    }
}

fn worker(
    slot: usize,
    describer: &mut dyn FrameDescriber,
    rx: &Mutex<mpsc::Receiver<DescribeJob>>,
    stats: &PoolStats,
) {
    let latency =
        metrics::histogram!(m::DESCRIBE_SECONDS, "describer" => describer.name().to_owned());
    loop {
        // Holding the lock only while waiting for one job; the describe call runs unlocked.
        let job = match rx.lock() {
            Ok(mut guard) => guard.blocking_recv(),
            Err(_) => None,
        };
        let Some(job) = job else {
            tracing::debug!(slot, "describer worker stopping");
            return;
        };
        if job.cancelled.load(Ordering::Acquire) {
            stats.cancelled.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(m::DESCRIBE_CANCELLED).increment(1);
            (job.done)(Err("cancelled: the session stopped".to_owned()));
            continue;
        }
        stats.described.fetch_add(1, Ordering::Relaxed);
        let input = DescribeInput {
            image: &job.image,
            previous: job.previous.as_deref(),
            frame_index: job.frame_index,
            captured_at_ms: job.captured_at_ms,
            people: job.people.as_deref(),
        };
        let started = std::time::Instant::now();
        let result = describer
            .describe(input)
            .map(|d| (describer.name().to_owned(), d))
            .map_err(|e| e.to_string());
        latency.record(started.elapsed().as_secs_f64());
        (job.done)(result);
    }
}
