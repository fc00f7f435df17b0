use thiserror::Error;

/// What can go wrong in the storage layer.
#[derive(Debug, Error)]
pub enum StorageError {
    /// sled failed (I/O error, corruption detected by sled, ...).
    #[error("storage engine error: {0}")]
    Engine(#[from] sled::Error),
    /// A stored value does not decode; the key names the record.
    #[error("corrupt record at {key}: {reason}")]
    Corrupt {
        /// Printable form of the key.
        key: String,
        /// Why it does not decode.
        reason: String,
    },
    /// A page token that this store did not issue, or issued for another organization.
    #[error("invalid page token")]
    InvalidPageToken,
    /// A listing filter that cannot be applied; the message is safe to show to the client.
    #[error("{0}")]
    InvalidFilter(&'static str),
    /// A record that was expected to exist does not.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. "session".
        what: &'static str,
    },
    /// The database cannot be reached now (PostgreSQL restarting, the connection pool exhausted); the
    /// call may be retried. Nothing of it was stored.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// PostgreSQL refused a statement.
    #[error("database error: {0}")]
    Database(String),
    /// The store's configuration is unusable (e.g. a malformed database URL).
    #[error("storage configuration: {0}")]
    Config(String),
    /// A storage call run off the async workers panicked or was cancelled before it finished.
    #[error("storage task failed: {0}")]
    Task(String),
    /// A metrics query that cannot be answered as asked; the message says what to change.
    #[error("{0}")]
    InvalidQuery(String),
}

impl StorageError {
    pub(crate) fn corrupt(key: &[u8], reason: impl std::fmt::Display) -> Self {
        StorageError::Corrupt {
            key: String::from_utf8_lossy(key).replace('\0', "/"),
            reason: reason.to_string(),
        }
    }
}
