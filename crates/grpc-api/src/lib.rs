//! crow's gRPC surface: the generated `crow.v1` contract ([`proto`]) and the tonic services that translate
//! it into [`crow_actors::Pipeline`] calls and storage reads.
//!
//! Protobuf types stop here: everything below speaks domain types. Errors are mapped to precise
//! [`tonic::Status`] codes whose messages never reveal internal paths, keys or schema.

mod analysis;
pub mod auth;
mod catalog;
mod convert;
mod ingest;
mod interactions;

pub use analysis::AnalysisApi;
pub use catalog::CatalogApi;
pub use ingest::IngestApi;
pub use interactions::InteractionApi;

/// The generated `crow.v1` messages, clients and servers.
pub mod proto {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("crow.v1");
}

/// Largest encoded gRPC message the server accepts, in bytes: the largest frame plus envelope.
pub fn max_message_bytes(max_frame_bytes: usize) -> usize {
    max_frame_bytes.saturating_add(64 * 1024)
}
