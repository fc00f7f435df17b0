//! Timestamps on the HTTP API: RFC 3339 in UTC with milliseconds (what JavaScript's `Date` writes) in
//! responses; RFC 3339 or milliseconds since the Unix epoch in requests.

use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// `2026-12-02T16:07:18.945Z` for ms since the Unix epoch.
pub fn format_ms(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    let Ok(t) = OffsetDateTime::from_unix_timestamp_nanos(nanos) else {
        return String::new();
    };
    // RFC 3339 with exactly three fractional digits.
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// `None` for 0 (the protocol's "not set").
pub fn format_optional_ms(ms: i64) -> Option<String> {
    (ms != 0).then(|| format_ms(ms))
}

/// A point in time in a request: an RFC 3339 string or ms since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Instant {
    /// Milliseconds since the Unix epoch.
    Millis(i64),
    /// RFC 3339, e.g. `2026-12-02T16:07:18.945Z`.
    #[schema(format = DateTime)]
    Text(String),
}

impl Instant {
    /// Milliseconds since the Unix epoch; `field` names the parameter in the error.
    pub fn ms(&self, field: &str) -> Result<i64, String> {
        match self {
            Instant::Millis(ms) => Ok(*ms),
            Instant::Text(text) => parse(text, field),
        }
    }
}

/// ms since the Unix epoch from RFC 3339 text, or from an integer written as text (query strings).
pub fn parse(text: &str, field: &str) -> Result<i64, String> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let t = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
        format!(
            "{field} must be an RFC 3339 time (2026-12-02T16:07:18Z) or ms since the Unix epoch"
        )
    })?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| format!("{field} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_back() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(1_796_227_638_945), "2026-12-02T16:07:18.945Z");
        assert_eq!(
            parse("2026-12-02T16:07:18.945Z", "t"),
            Ok(1_796_227_638_945)
        );
        assert_eq!(
            parse("2026-12-02T17:07:18.945+01:00", "t"),
            Ok(1_796_227_638_945)
        );
        assert_eq!(parse("1796227638945", "t"), Ok(1_796_227_638_945));
        assert!(parse("yesterday", "from").unwrap_err().contains("from"));
        assert_eq!(format_optional_ms(0), None);
    }
}
