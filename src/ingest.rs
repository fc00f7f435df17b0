//! Feeding media straight into an in-process [`Pipeline`] (no gRPC): for embedding crow in another
//! program.

use std::path::Path;

use bytes::Bytes;
use crow_actors::FrameInput;
use crow_inference::{encode_jpeg, ImageFormat, MediaReader};
use crow_storage::FrameOutcome;
use tokio::sync::mpsc;

use crate::{Pipeline, PipelineError};

/// Outcome counts of one [`ingest_media`] call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Sessions the frames went to, in order.
    pub session_ids: Vec<String>,
    /// Frames submitted.
    pub frames_sent: u64,
    /// Accepted frames.
    pub accepted: u64,
    /// Near-duplicates.
    pub skipped: u64,
    /// Rejected frames.
    pub rejected: u64,
    /// Frames in which nobody was detected.
    pub no_person: u64,
    /// Frames with people but nothing new for them.
    pub gated: u64,
    /// Frames the describer had no room for.
    pub shed: u64,
    /// Media frames that could not be read.
    pub unreadable: u64,
}

/// Reads `path` (video, image or folder of images), sampled at `sample_fps` frames per second of media
/// time, and submits every frame to the camera's open session, timestamped from now. When the media ends
/// the sessions it used are closed, so their last partial batch is analysed too.
pub async fn ingest_media(
    pipeline: &Pipeline,
    path: impl AsRef<Path>,
    organization_id: &str,
    camera_id: &str,
    sample_fps: Option<f64>,
) -> Result<IngestReport, PipelineError> {
    let reader = MediaReader::open(path.as_ref(), sample_fps)
        .map_err(|e| PipelineError::InvalidArgument(e.to_string()))?;
    let start_ms = crow_storage::now_ms();
    let (tx, mut rx) = mpsc::channel::<FrameInput>(4);
    let preparer = pipeline.sessions().preparer();
    let producer = tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        for item in reader.by_ref() {
            let frame = item?;
            let data = encode_jpeg(&frame.image, 90)?;
            let input = FrameInput {
                frame_index: frame.index,
                captured_at_ms: start_ms + frame.position_ms,
                frame: preparer.prepare(Bytes::from(data), Some(ImageFormat::Jpeg)),
            };
            if tx.blocking_send(input).is_err() {
                break;
            }
        }
        Ok::<u64, crow_inference::InferenceError>(reader.unreadable())
    });

    let mut router = pipeline.sessions().router(organization_id, camera_id)?;
    let mut report = IngestReport::default();
    while let Some(frame) = rx.recv().await {
        let ack = router.submit(None, frame).await?;
        report.frames_sent += 1;
        match ack.outcome {
            FrameOutcome::Accepted => report.accepted += 1,
            FrameOutcome::SkippedDuplicate { .. } => report.skipped += 1,
            FrameOutcome::Rejected { .. } => report.rejected += 1,
            FrameOutcome::NoPerson => report.no_person += 1,
            FrameOutcome::Gated { .. } => report.gated += 1,
            FrameOutcome::Shed => report.shed += 1,
        }
        if report.session_ids.last() != Some(&ack.session_id) {
            report.session_ids.push(ack.session_id);
        }
    }
    report.unreadable = producer
        .await
        .map_err(|e| PipelineError::Internal(format!("media reader: {e}")))?
        .map_err(|e| PipelineError::InvalidArgument(e.to_string()))?;
    for session_id in &report.session_ids {
        pipeline
            .sessions()
            .close_session(organization_id, session_id)
            .await?;
    }
    pipeline.sync().await?;
    Ok(report)
}
