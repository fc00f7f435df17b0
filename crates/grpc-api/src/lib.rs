//! crow's gRPC surface: the generated `crow.v1` contract ([`proto`]) and the tonic services that translate
//! it into [`crow_actors::Pipeline`] calls and storage reads.
//!
//! ```text
//! request -> auth.rs (JWT, roles, organization, gateway key) -> one service per proto service:
//!   ingest.rs        IngestService: sessions; StreamFrames (credits -> reader -> one blocking preparer
//!                    thread per stream -> FrameRouter -> acks once durable); limits.rs (streams, rates)
//!   interactions.rs  InteractionService: create (outbox), get, list (words or meaning), summary, store
//!                    metrics (store_metrics.rs: request -> MetricsQuery, report -> proto), dead letters
//!   catalog.rs       CatalogService      cameras.rs  CameraService      analysis.rs  AnalysisService (Analyze, Ask)
//! convert.rs (proto <-> domain, errors -> Status) · fields.rs (page sizes, empty = not given) · codec.rs
//! http/: the same services as HTTP/JSON on the same port — mod.rs (router(): the routes and the
//!   OpenAPI document), api.rs (HttpApi: the routes' state and their one generic call), routes/ (mod.rs:
//!   the router; shared.rs: error responses and query helpers; one file per resource: interactions,
//!   analyses, frames, sessions, catalog, dead_letters, cameras, patterns, health), dto/ (JSON shapes,
//!   the same files plus paging), extract.rs, time.rs, openapi.rs (/openapi.json), dashboard.rs (the web UI)
//! ```
//!
//! Protobuf types stop here: everything below speaks domain types. Errors are mapped to precise
//! [`tonic::Status`] codes whose messages never reveal internal paths, keys or schema.
// Tests may wait on threads and flush directly (clippy.toml forbids both in product code).
#![cfg_attr(test, allow(clippy::disallowed_methods))]

mod analysis;
pub mod auth;
mod cameras;
mod catalog;
pub mod codec;
mod convert;
mod fields;
pub mod http;
mod ingest;
mod interactions;
mod limits;
pub mod store_metrics;

pub use analysis::AnalysisApi;
pub use cameras::CameraApi;
pub use catalog::CatalogApi;
pub use ingest::{IngestApi, SHUTTING_DOWN};
pub use interactions::InteractionApi;

/// The generated `crow.v1` messages, clients and servers.
pub mod proto {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("crow.v1");

    /// The encoded `FileDescriptorSet` of `crow.v1`, served by gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("crow_descriptor");
}

/// Largest message of a frame stream, in bytes: the largest frame plus envelope.
pub fn max_stream_message_bytes(max_frame_bytes: usize) -> usize {
    max_frame_bytes.saturating_add(64 * 1024)
}

/// If `status` is tonic's refusal of a message over the size limit (`OUT_OF_RANGE`, "decoded message
/// length too large"), the same refusal as `RESOURCE_EXHAUSTED` naming crow's setting; otherwise `None`.
pub fn message_limit_status(status: &tonic::Status) -> Option<tonic::Status> {
    if status.code() != tonic::Code::OutOfRange
        || !status
            .message()
            .contains("decoded message length too large")
    {
        return None;
    }
    // "... found {len} bytes, the limit is: {limit} bytes"
    let numbers: Vec<&str> = status
        .message()
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .collect();
    let detail = match numbers.as_slice() {
        [found, limit] => format!("message is {found} bytes, over the server's limit of {limit}"),
        _ => "message is over the server's size limit".to_owned(),
    };
    Some(tonic::Status::resource_exhausted(format!(
        "{detail} (pipeline.limits.max_message_bytes; frame streams: max_frame_bytes + 64 KiB)"
    )))
}

/// Response mapper for the server: a unary request refused by tonic for its size (`OUT_OF_RANGE` in the
/// response headers) becomes [`message_limit_status`]'s `RESOURCE_EXHAUSTED`. Install it with
/// `tower::util::MapResponseLayer` around the services.
pub fn name_message_limit<B>(
    mut response: tonic::codegen::http::Response<B>,
) -> tonic::codegen::http::Response<B> {
    let headers = response.headers_mut();
    if headers.get("grpc-status").map(|v| v.as_bytes()) != Some(b"11") {
        return response;
    }
    let Some(named) = tonic::Status::from_header_map(headers)
        .as_ref()
        .and_then(message_limit_status)
    else {
        return response;
    };
    headers.remove("grpc-message");
    headers.remove("grpc-status-details-bin");
    // Overwrites grpc-status; the only failure is a message that is not a valid header, and ours are.
    let _ = named.add_header(headers);
    response
}
