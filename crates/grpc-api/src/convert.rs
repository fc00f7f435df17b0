//! Domain <-> protobuf conversions and error mapping.

use crow_actors::PipelineError;
use crow_storage::{
    FrameOutcome, Interaction, SessionRecord, SessionStatus, SourceType, StorageError, Summary,
};
use tonic::Status;

use crate::proto;

pub(crate) fn status(e: PipelineError) -> Status {
    match e {
        PipelineError::InvalidArgument(m) => Status::invalid_argument(m),
        PipelineError::SessionNotFound(id) => Status::not_found(format!("session {id} not found")),
        PipelineError::SessionClosed(id) => {
            Status::failed_precondition(format!("session {id} is closed"))
        }
        PipelineError::Unavailable(m) => Status::unavailable(m),
        PipelineError::Storage(e) => storage_status(e),
        PipelineError::Internal(m) => {
            tracing::error!(error = m, "internal failure");
            Status::internal("internal error")
        }
    }
}

pub(crate) fn storage_status(e: StorageError) -> Status {
    match e {
        StorageError::InvalidPageToken => Status::invalid_argument("invalid page_token"),
        StorageError::NotFound { what } => Status::not_found(format!("{what} not found")),
        other => {
            // Logged here, where it is handled; the client learns only that storage failed.
            tracing::error!(error = %other, "storage failure");
            Status::internal("internal storage error")
        }
    }
}

pub(crate) fn session(s: &SessionRecord) -> proto::Session {
    let c = &s.counters;
    proto::Session {
        session_id: s.id.clone(),
        organization_id: s.organization_id.clone(),
        camera_id: s.camera_id.clone(),
        status: match s.status {
            SessionStatus::Open => proto::SessionStatus::Open,
            SessionStatus::Closed => proto::SessionStatus::Closed,
        } as i32,
        started_at_ms: s.started_at_ms.unwrap_or(0),
        ended_at_ms: s.ended_at_ms.unwrap_or(0),
        frames_received: c.received,
        frames_accepted: c.accepted,
        frames_skipped: c.skipped,
        frames_rejected: c.rejected,
        frames_described: c.described,
        batches_emitted: c.batches,
        last_frame_index: s.last_frame_index.map_or(-1, |i| i as i64),
    }
}

pub(crate) fn outcome(o: &FrameOutcome) -> (proto::FrameOutcome, String) {
    match o {
        FrameOutcome::Accepted => (proto::FrameOutcome::Accepted, String::new()),
        FrameOutcome::SkippedDuplicate { .. } => {
            (proto::FrameOutcome::SkippedDuplicate, String::new())
        }
        FrameOutcome::Rejected { reason } => (proto::FrameOutcome::Rejected, reason.clone()),
    }
}

pub(crate) fn source(s: SourceType) -> proto::SourceType {
    match s {
        SourceType::Web => proto::SourceType::Web,
        SourceType::Cctv => proto::SourceType::Cctv,
        SourceType::Social => proto::SourceType::Social,
    }
}

pub(crate) fn interaction(i: &Interaction) -> proto::Interaction {
    proto::Interaction {
        id: i.id.clone(),
        organization_id: i.organization_id.clone(),
        source_type: source(i.source_type) as i32,
        session_id: i.session_id.clone().unwrap_or_default(),
        data_json: i.data.to_string(),
        summary: i.summary.clone(),
        confidence: i.confidence,
        tags: i.tags.clone(),
        product_ids: i.product_ids.clone(),
        timestamp_ms: i.timestamp_ms,
        created_at_ms: i.created_at_ms,
    }
}

pub(crate) fn summary(s: &Summary) -> proto::Summary {
    proto::Summary {
        web: s.web,
        cctv: s.cctv,
        social: s.social,
        total: s.total(),
    }
}
