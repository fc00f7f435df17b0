use thiserror::Error;

/// Failures the pipeline reports to its callers. Messages are safe to show to clients: they never contain
/// internal paths, keys or schema.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// A request argument is invalid.
    #[error("{0}")]
    InvalidArgument(String),
    /// The session does not exist for this organization.
    #[error("session {0} not found")]
    SessionNotFound(String),
    /// The session is closed and takes no more frames.
    #[error("session {0} is closed")]
    SessionClosed(String),
    /// The organization has no such record (or it is another organization's: the answer is the same).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request cannot run in the current state (e.g. no text model is loaded).
    #[error("{0}")]
    FailedPrecondition(String),
    /// A capacity limit is reached (e.g. the analysis queue is full); retrying later may succeed.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The pipeline cannot take the request now (restarting actor, shutting down); retrying may succeed.
    #[error("pipeline unavailable: {0}")]
    Unavailable(String),
    /// Another ingest node took the session over and writes it now; this node no longer does.
    /// Retryable: reconnect (any ingest node takes the camera) and resend the frame.
    #[error("session {0} has moved to another ingest node; reconnect and resend the frame")]
    Moved(String),
    /// Storage failed.
    #[error("storage failure")]
    Storage(#[from] crow_storage::StorageError),
    /// A pipeline component failed.
    #[error("internal failure: {0}")]
    Internal(String),
}

/// Why a node is not ready to serve ([`crate::Pipeline::ready`]): which dependency does not answer.
#[derive(Debug, Error)]
pub enum Unready {
    /// The record store (sled or PostgreSQL) does not answer.
    #[error("{backend} record store: {error}")]
    RecordStore {
        /// Which store.
        backend: crow_storage::Backend,
        /// What it answered.
        error: crow_storage::StorageError,
    },
    /// The node has lost its connection to NATS (ingest and analyze roles).
    #[error("NATS is not connected")]
    NatsDisconnected,
    /// No answer came within the caller's time limit.
    #[error("no answer in time")]
    NoAnswer,
}

impl From<crow_storage::validate::Invalid> for PipelineError {
    fn from(e: crow_storage::validate::Invalid) -> Self {
        PipelineError::InvalidArgument(e.0)
    }
}

/// Checks an identifier from outside: 1..=128 characters of `[A-Za-z0-9._-]` (see
/// [`crow_storage::validate::id`]).
pub fn validate_id(what: &str, id: &str) -> Result<(), PipelineError> {
    Ok(crow_storage::validate::id(what, id)?)
}

/// Logs an internal failure with its details under a fresh correlation id and returns the id: clients
/// get the id (never the details), operators find the log line by it.
pub fn log_internal(component: &str, error: impl std::fmt::Display) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    tracing::error!(correlation_id = %id, component, error = %error, "internal failure");
    id
}
