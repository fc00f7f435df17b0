//! Frame shapes: the `POST /api/v1/cctv/frames` body and its per-frame acks.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::error::code_name;
use crate::http::time::Instant;
use crate::proto;

/// Encoding of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Jpeg,
    Png,
}

impl ImageFormat {
    /// The protocol value.
    pub fn proto(self) -> i32 {
        (match self {
            ImageFormat::Jpeg => proto::ImageFormat::Jpeg,
            ImageFormat::Png => proto::ImageFormat::Png,
        }) as i32
    }
}

/// One frame of `POST /api/v1/cctv/frames` as JSON.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FrameJson {
    /// Position in the camera's stream, strictly increasing within a session; a repeated index is
    /// answered from its record (idempotent resend).
    pub frame_index: u64,
    /// Capture time; absent means now.
    #[serde(default)]
    pub captured_at: Option<Instant>,
    pub format: ImageFormat,
    /// The encoded image, base64 (standard alphabet, padded).
    #[schema(format = Byte)]
    pub data: String,
}

/// Body of `POST /api/v1/cctv/frames` as JSON (it also takes `multipart/form-data`: text fields
/// `organizationId`, `cameraId`, optional `sessionId`, then for each frame a `frameIndex` field, an
/// optional `capturedAt` field and a file part `frame` of type `image/jpeg` or `image/png`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubmitFrames {
    pub organization_id: String,
    pub camera_id: String,
    /// Session to add the frames to; absent: the camera's open session, or a new one.
    #[serde(default)]
    pub session_id: Option<String>,
    /// 1..=`stream_credits` frames.
    pub frames: Vec<FrameJson>,
}

/// What happened to a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FrameOutcome {
    /// Decoded, something happened to a person, queued for description.
    Accepted,
    /// Nearly identical to the previous accepted frame.
    SkippedDuplicate,
    /// Not usable; `reason` says why.
    Rejected,
    /// The person detector found nobody.
    NoPerson,
    /// People present, nothing new for them; `reason` says which.
    Gated,
    /// The describer had no room (`describer_overload = "shed"`).
    Shed,
}

/// The answer to one frame, sent once its outcome is durable.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FrameAck {
    pub frame_index: u64,
    pub outcome: FrameOutcome,
    /// Why (rejected, gated).
    pub reason: Option<String>,
    /// The session it was recorded in.
    pub session_id: String,
    /// The index had been recorded before: this repeats the stored outcome.
    pub replayed: bool,
    /// For `rejected`: `INVALID_ARGUMENT` (the frame is bad; resending changes nothing),
    /// `RESOURCE_EXHAUSTED` (over the camera's frame rate; nothing recorded, resend later) or
    /// `FAILED_PRECONDITION` (the session is closed).
    pub refusal: Option<String>,
}

impl From<proto::FrameAck> for FrameAck {
    fn from(a: proto::FrameAck) -> FrameAck {
        let outcome = match proto::FrameOutcome::try_from(a.outcome) {
            Ok(proto::FrameOutcome::Accepted) => FrameOutcome::Accepted,
            Ok(proto::FrameOutcome::SkippedDuplicate) => FrameOutcome::SkippedDuplicate,
            Ok(proto::FrameOutcome::NoPerson) => FrameOutcome::NoPerson,
            Ok(proto::FrameOutcome::Gated) => FrameOutcome::Gated,
            Ok(proto::FrameOutcome::Shed) => FrameOutcome::Shed,
            _ => FrameOutcome::Rejected,
        };
        let refusal = (a.status_code != 0)
            .then(|| code_name(tonic::Code::from_i32(a.status_code)).to_owned());
        FrameAck {
            frame_index: a.frame_index,
            outcome,
            reason: (!a.reason.is_empty()).then_some(a.reason),
            session_id: a.session_id,
            replayed: a.replayed,
            refusal,
        }
    }
}

/// Answer of `POST /api/v1/cctv/frames`: one ack per frame, in order.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FrameAcks {
    pub acks: Vec<FrameAck>,
}
