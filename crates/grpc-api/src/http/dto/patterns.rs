//! Pattern shapes: a live CCTV pattern event with its product matches, and the stream's query.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::http::time::format_ms;
use crate::proto;

/// A product matched in a CCTV batch, with its evidence.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductMatch {
    pub product_id: String,
    pub confidence: f32,
    pub evidence_frames: Vec<u64>,
    /// `dwell`, `named` or `quote`.
    pub evidence: Vec<String>,
}

/// One analysed CCTV batch, as its interaction is written (a server-sent event `pattern`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatternEvent {
    pub organization_id: String,
    pub session_id: String,
    pub camera_id: String,
    pub batch_index: u64,
    pub first_frame_index: u64,
    pub last_frame_index: u64,
    pub interaction_id: String,
    pub summary: String,
    pub tags: Vec<String>,
    pub products: Vec<ProductMatch>,
    #[schema(format = DateTime)]
    pub timestamp: String,
}

impl From<proto::PatternEvent> for PatternEvent {
    fn from(e: proto::PatternEvent) -> PatternEvent {
        PatternEvent {
            organization_id: e.organization_id,
            session_id: e.session_id,
            camera_id: e.camera_id,
            batch_index: e.batch_index,
            first_frame_index: e.first_frame_index,
            last_frame_index: e.last_frame_index,
            interaction_id: e.interaction_id,
            summary: e.summary,
            tags: e.tags,
            products: e
                .products
                .into_iter()
                .map(|p| ProductMatch {
                    product_id: p.product_id,
                    confidence: p.confidence,
                    evidence_frames: p.evidence_frames,
                    evidence: p.evidence,
                })
                .collect(),
            timestamp: format_ms(e.timestamp_ms),
        }
    }
}

/// Query of the pattern event stream.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct PatternQuery {
    /// Only this camera.
    pub camera_id: Option<String>,
}
