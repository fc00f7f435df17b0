//! The health answer.

use serde::Serialize;
use utoipa::ToSchema;

/// Health of the server.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// `serving`, `starting` (database opening, models loading), `stopping`, `storage unavailable`
    /// (the record store, e.g. PostgreSQL, does not answer) or `nats unavailable` (ingest and analyze
    /// nodes of a cluster).
    pub status: String,
    /// crow's version.
    pub version: String,
}
