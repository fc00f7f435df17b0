//! A fixed number of describer slots on dedicated threads, fed through a bounded queue.
//!
//! Inference blocks for milliseconds to seconds, so it never runs on the async runtime. Each slot owns one
//! [`FrameDescriber`] (its own model context, detector, ...). [`DescriberPool::submit`] waits while the
//! queue is full: the waiting session stops acknowledging frames, so its client runs out of credits — memory
//! stays bounded by `slots + queue` frames.

use std::sync::{Arc, Mutex};

use crow_inference::Mat;
use crow_inference::{DescribeInput, Description, FrameDescriber, InferenceError};
use tokio::sync::mpsc;

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
    /// Receives `(describer name, description)` or an error message.
    pub done: DescribeCallback,
}

/// Handle to the worker pool; cheap to clone.
#[derive(Clone)]
pub struct DescriberPool {
    queue: mpsc::Sender<DescribeJob>,
    slots: usize,
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
        for slot in 0..slots {
            let mut describer = factory()?;
            let rx = Arc::clone(&rx);
            // Workers are detached: each exits when the last handle (the queue's sender) is dropped.
            std::thread::Builder::new()
                .name(format!("crow-describer-{slot}"))
                .spawn(move || worker(slot, describer.as_mut(), &rx))
                .map_err(|e| InferenceError::Media {
                    path: "describer thread".into(),
                    reason: e.to_string(),
                })?;
        }
        Ok(DescriberPool { queue: tx, slots })
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Queues a job, waiting while the queue is full.
    pub async fn submit(&self, job: DescribeJob) -> Result<(), PipelineError> {
        self.queue
            .send(job)
            .await
            .map_err(|_| PipelineError::Unavailable("describer pool stopped".into()))
    }
}

fn worker(
    slot: usize,
    describer: &mut dyn FrameDescriber,
    rx: &Mutex<mpsc::Receiver<DescribeJob>>,
) {
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
        let input = DescribeInput {
            image: &job.image,
            previous: job.previous.as_deref(),
            frame_index: job.frame_index,
            captured_at_ms: job.captured_at_ms,
        };
        let result = describer
            .describe(input)
            .map(|d| (describer.name().to_owned(), d))
            .map_err(|e| e.to_string());
        (job.done)(result);
    }
}
