//! [`LiveRef`]: the running actor of a supervised job, as the jobs that send to it hold it.
//!
//! A supervisor replaces a failed child with a new actor; the senders (session actors sending batches to
//! the analyzer, the record services sending to the outbox processor and the analysis pool) keep one
//! `LiveRef` each, which the supervisor points at the new actor when it restarts the child. Messages
//! therefore go straight to the actor that does the work, not through the supervisor.

use std::sync::{Arc, RwLock};

use ractor::{ActorRef, Message};

/// The actor is not running now (not started yet, or between a failure and its restart).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("{0} is not running")]
pub(crate) struct NotRunning(pub(crate) &'static str);

/// A shared, swappable reference to the running actor of one job. Cheap to clone.
pub(crate) struct LiveRef<M: Message> {
    job: &'static str,
    current: Arc<RwLock<Option<ActorRef<M>>>>,
}

impl<M: Message> Clone for LiveRef<M> {
    fn clone(&self) -> Self {
        Self {
            job: self.job,
            current: Arc::clone(&self.current),
        }
    }
}

impl<M: Message> LiveRef<M> {
    /// A reference to `job` (named in errors) before its actor starts.
    pub(crate) fn vacant(job: &'static str) -> Self {
        Self {
            job,
            current: Arc::default(),
        }
    }

    /// Points every clone at `actor` (the supervisor calls this when it starts or restarts the job).
    pub(crate) fn set(&self, actor: ActorRef<M>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(actor);
    }

    /// The running actor.
    pub(crate) fn get(&self) -> Result<ActorRef<M>, NotRunning> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(NotRunning(self.job))
    }

    /// Sends `msg` to the running actor without waiting.
    pub(crate) fn cast(&self, msg: M) -> Result<(), NotRunning> {
        self.get()?.cast(msg).map_err(|_| NotRunning(self.job))
    }
}
