//! Errors of the HTTP routes: a gRPC status (already sanitized by the services) as JSON with the HTTP
//! status that means the same.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tonic::Code;
use utoipa::ToSchema;

use crate::convert::CORRELATION_ID_HEADER;

/// The body of every error response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// One error.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// The gRPC status code name, e.g. `INVALID_ARGUMENT`, `PERMISSION_DENIED`, `NOT_FOUND`.
    #[schema(example = "INVALID_ARGUMENT")]
    pub code: String,
    /// A message safe to show: it never holds internal paths, keys or schema.
    pub message: String,
    /// Quote it when reporting a problem: an internal error's log line carries the same id (also in
    /// the `x-correlation-id` header).
    pub correlation_id: String,
}

/// An error response of the HTTP API.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    detail: ErrorDetail,
}

impl ApiError {
    /// An error with an explicit HTTP status (for refusals made before a service is called, such as a
    /// body over the size limit).
    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            detail: ErrorDetail {
                code: code_name(code).to_owned(),
                message: message.into(),
                correlation_id: uuid::Uuid::new_v4().to_string(),
            },
        }
    }

    /// A malformed request: 400 `INVALID_ARGUMENT`.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, Code::InvalidArgument, message)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The JSON error.
    pub fn detail(&self) -> &ErrorDetail {
        &self.detail
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> ApiError {
        let http = http_status(status.code());
        let mut error = ApiError::new(http, status.code(), status.message());
        // An internal error's id is the one in the server log.
        if let Some(id) = status
            .metadata()
            .get(CORRELATION_ID_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            error.detail.correlation_id = id.to_owned();
        } else {
            tracing::debug!(
                correlation_id = %error.detail.correlation_id,
                code = ?status.code(),
                message = status.message(),
                "http request refused"
            );
        }
        error
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(ErrorBody {
                error: self.detail.clone(),
            }),
        )
            .into_response();
        let headers = response.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&self.detail.correlation_id) {
            headers.insert(CORRELATION_ID_HEADER, v);
        }
        match self.status {
            StatusCode::UNAUTHORIZED => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

/// The HTTP status of a gRPC code (as gRPC's own HTTP mapping and grpc-gateway have it).
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable | Code::Cancelled => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `INVALID_ARGUMENT` and so on.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_keep_the_correlation_id_of_the_log() {
        let status = crate::convert::internal("test", "disk on fire at /var/secret");
        let error = ApiError::from(status.clone());
        assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(error.detail().code, "INTERNAL");
        let id = status.metadata().get(CORRELATION_ID_HEADER).unwrap();
        assert_eq!(error.detail().correlation_id, id.to_str().unwrap());
        assert!(!error.detail().message.contains("/var/secret"));
    }

    #[test]
    fn refusals_map_to_their_http_status() {
        for (code, http) in [
            (Code::InvalidArgument, 400),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::NotFound, 404),
            (Code::ResourceExhausted, 429),
            (Code::Internal, 500),
            (Code::Unavailable, 503),
        ] {
            assert_eq!(http_status(code).as_u16(), http, "{code:?}");
        }
    }
}
