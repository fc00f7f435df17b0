//! Ingest session shapes: the create body and a session with its counters.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::time::format_optional_ms;
use crate::proto;

/// Body of `POST /api/v1/cctv/sessions`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSession {
    pub organization_id: String,
    pub camera_id: String,
}

/// A session's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    /// Accepting frames.
    Open,
    /// Closed, or superseded by an hourly rollover.
    Closed,
}

/// A session: one camera-hour, with its counters. `framesReceived` = accepted + skipped + rejected
/// + noPerson + gated + shed.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub session_id: String,
    pub organization_id: String,
    pub camera_id: String,
    pub status: SessionStatus,
    /// Capture time of the first frame.
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    /// Capture time of the last frame (open) or when it was closed.
    #[schema(format = DateTime)]
    pub ended_at: Option<String>,
    pub frames_received: u64,
    pub frames_accepted: u64,
    pub frames_skipped: u64,
    pub frames_rejected: u64,
    pub frames_no_person: u64,
    pub frames_gated: u64,
    pub frames_shed: u64,
    pub frames_described: u64,
    pub batches_emitted: u64,
    /// Batches not yet turned into an interaction record.
    pub batches_unanalyzed: u64,
    /// Highest frame index with an outcome; null when none. Resume from it + 1.
    pub last_frame_index: Option<u64>,
}

impl From<proto::Session> for Session {
    fn from(s: proto::Session) -> Session {
        Session {
            status: if s.status == proto::SessionStatus::Open as i32 {
                SessionStatus::Open
            } else {
                SessionStatus::Closed
            },
            session_id: s.session_id,
            organization_id: s.organization_id,
            camera_id: s.camera_id,
            started_at: format_optional_ms(s.started_at_ms),
            ended_at: format_optional_ms(s.ended_at_ms),
            frames_received: s.frames_received,
            frames_accepted: s.frames_accepted,
            frames_skipped: s.frames_skipped,
            frames_rejected: s.frames_rejected,
            frames_no_person: s.frames_no_person,
            frames_gated: s.frames_gated,
            frames_shed: s.frames_shed,
            frames_described: s.frames_described,
            batches_emitted: s.batches_emitted,
            batches_unanalyzed: s.batches_unanalyzed,
            last_frame_index: u64::try_from(s.last_frame_index).ok(),
        }
    }
}
