//! axum's extractors with crow's JSON errors: a malformed body, query or path is a 400 (a body over
//! the limit a 413, a body that is not JSON a 415) in the same `{"error": ...}` shape as every other
//! refusal, never axum's plain-text rejection.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::StatusCode;
use tonic::Code;

use super::ApiError;

/// A JSON request body.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

/// Query parameters.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// Path parameters.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// The message of a body over the size limit.
pub(crate) const TOO_LARGE: &str = "request body is over the server's limit (pipeline.limits.max_message_bytes; frames: max_frame_bytes, base64 included)";

fn rejection(status: StatusCode, text: String) -> ApiError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(status, Code::ResourceExhausted, TOO_LARGE),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(status, Code::InvalidArgument, text),
        _ => ApiError::invalid(text),
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        rejection(r.status(), r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        rejection(r.status(), r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        rejection(r.status(), r.body_text())
    }
}

impl From<axum::extract::multipart::MultipartRejection> for ApiError {
    fn from(r: axum::extract::multipart::MultipartRejection) -> ApiError {
        rejection(r.status(), r.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> ApiError {
        rejection(r.status(), r.body_text())
    }
}

impl From<axum::extract::multipart::MultipartError> for ApiError {
    fn from(e: axum::extract::multipart::MultipartError) -> ApiError {
        rejection(e.status(), e.body_text())
    }
}
