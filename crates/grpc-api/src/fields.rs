//! Reading the common fields of proto requests: page sizes and the empty strings that mean "not given".

use crow_actors::LimitsConfig;
use tonic::Status;

/// Page size used when a request says 0.
const DEFAULT_PAGE_SIZE: u32 = 50;

/// Checks a requested page size: 0 means the default, above `pipeline.limits.max_page_size` is an
/// error.
pub(crate) fn page_size(requested: u32, limits: &LimitsConfig) -> Result<usize, Status> {
    let max = (limits.max_page_size as usize).clamp(1, crow_storage::MAX_PAGE_SIZE);
    match requested as usize {
        0 => Ok((DEFAULT_PAGE_SIZE as usize).min(max)),
        n if n > max => Err(Status::invalid_argument(format!(
            "page_size is over pipeline.limits.max_page_size ({max})"
        ))),
        n => Ok(n),
    }
}

/// `None` for an empty string.
pub(crate) fn none_if_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}
