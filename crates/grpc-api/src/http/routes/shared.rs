//! What the routes share: the documented error responses, the result type and the parsing of optional
//! query values.

use crate::http::error::{ApiError, ErrorBody};
use crate::http::time;

pub(super) type Result<T> = std::result::Result<T, ApiError>;

/// The documented error responses of a route that needs a token.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(super) enum Errors {
    /// The request is malformed or breaks a rule (the message names the field and the rule).
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No token, or an invalid or expired one.
    #[response(status = 401)]
    Unauthenticated(ErrorBody),
    /// The token's role or organizations do not allow it, or `X-Organization-Id` names another
    /// organization.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No such resource in the organization.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The body is over the size limit.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body is not JSON (or not the declared type).
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// Over a rate or concurrency limit; retry later (`Retry-After`).
    #[response(status = 429)]
    TooManyRequests(ErrorBody),
    /// An internal error; quote its correlation id.
    #[response(status = 500)]
    Internal(ErrorBody),
    /// Starting up or shutting down; retry shortly (`Retry-After`).
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// An absent optional string as the empty string, which means "not given" in the proto messages.
pub(super) fn or_empty(s: Option<String>) -> String {
    s.unwrap_or_default()
}

pub(super) fn optional_ms(value: Option<&str>, field: &str) -> Result<i64> {
    value
        .filter(|v| !v.is_empty())
        .map_or(Ok(0), |v| time::parse(v, field))
        .map_err(ApiError::invalid)
}

pub(super) fn instant_ms(value: Option<&time::Instant>, field: &str) -> Result<i64> {
    value
        .map_or(Ok(0), |v| v.ms(field))
        .map_err(ApiError::invalid)
}
