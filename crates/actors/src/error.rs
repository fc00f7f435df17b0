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
    /// The pipeline cannot take the request now (restarting actor, shutting down); retrying may succeed.
    #[error("pipeline unavailable: {0}")]
    Unavailable(String),
    /// Storage failed.
    #[error("storage failure")]
    Storage(#[from] crow_storage::StorageError),
    /// A pipeline component failed.
    #[error("internal failure: {0}")]
    Internal(String),
}
