//! Dead letter shapes: an event whose processing failed on every attempt, and a page of them.

use serde::Serialize;
use utoipa::ToSchema;

use super::interactions::SourceType;
use crate::http::time::format_ms;
use crate::proto;

/// An event whose processing failed on every attempt.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub id: String,
    pub organization_id: String,
    pub source_type: Option<SourceType>,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub summary: String,
    #[schema(format = DateTime)]
    pub timestamp: String,
    pub attempts: u32,
    pub last_error: String,
    #[schema(format = DateTime)]
    pub dead_at: String,
}

impl From<proto::DeadLetter> for DeadLetter {
    fn from(d: proto::DeadLetter) -> DeadLetter {
        DeadLetter {
            id: d.id,
            organization_id: d.organization_id,
            source_type: SourceType::from_proto(d.source_type),
            data: serde_json::from_str(&d.data_json).unwrap_or(serde_json::Value::Null),
            summary: d.summary,
            timestamp: format_ms(d.timestamp_ms),
            attempts: d.attempts,
            last_error: d.last_error,
            dead_at: format_ms(d.dead_at_ms),
        }
    }
}

/// A page of dead letters, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterPage {
    pub dead_letters: Vec<DeadLetter>,
    pub next_page_token: Option<String>,
}
