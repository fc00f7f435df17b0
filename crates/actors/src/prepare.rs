//! The one preparation stage every frame passes before its session sees it: validated (size, declared
//! format, signature, end marker, declared dimensions against `pipeline.limits`), decoded by OpenCV,
//! thumbnailed for the near-duplicate gate and digested (the frame's tracking record keeps the digest,
//! and the stored copies of its bytes are checked against it). Its result, [`Prepared`], is what a
//! [`FrameInput`] carries, so a session never decodes a frame itself and a frame cannot reach it
//! unchecked.
//!
//! [`FrameInput`]: crate::FrameInput

use std::sync::Arc;

use bytes::Bytes;
use crow_inference::{decode_frame, DecodeError, FrameLimits, ImageFormat, Mat, Thumbnail};
use crow_storage::FrameDigest;

/// Why a frame was refused at preparation. The message is the client-facing reason recorded with the
/// frame's `Rejected` outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameRefusal {
    /// The bytes are not a valid image of the declared format, or break a limit.
    #[error("{0}")]
    Invalid(#[from] DecodeError),
    /// The image is valid but OpenCV failed on it (logged with the details).
    #[error("image could not be processed")]
    Unprocessable,
}

/// A frame that passed preparation: its encoded bytes (kept for the describer's retry after a restart
/// and as the keyframe) with their digest, the decoded image and its thumbnail.
#[derive(Debug)]
pub struct PreparedFrame {
    data: Bytes,
    digest: FrameDigest,
    format: ImageFormat,
    image: Arc<Mat>,
    thumbnail: Thumbnail,
}

impl PreparedFrame {
    /// The encoded image as received.
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// The digest of the encoded bytes.
    pub fn digest(&self) -> FrameDigest {
        self.digest
    }

    /// Its encoding.
    pub fn format(&self) -> ImageFormat {
        self.format
    }

    pub(crate) fn image(&self) -> &Arc<Mat> {
        &self.image
    }

    pub(crate) fn thumbnail(&self) -> &Thumbnail {
        &self.thumbnail
    }
}

/// A frame as preparation left it: ready for its session, or refused with the reason.
pub type Prepared = Result<Arc<PreparedFrame>, FrameRefusal>;

/// Prepares frames under one pipeline's frame limits. Only the pipeline hands one out
/// ([`SessionIngress::preparer`](crate::SessionIngress::preparer)), so every frame is held to the
/// limits in force. Cheap to copy.
#[derive(Debug, Clone, Copy)]
pub struct FramePreparer {
    limits: FrameLimits,
}

impl FramePreparer {
    pub(crate) fn new(limits: FrameLimits) -> Self {
        Self { limits }
    }

    /// Validates, decodes and thumbnails one encoded frame declared as `format` (`None`: the client
    /// did not say, which is refused). Blocking (OpenCV): call it from a blocking thread.
    pub fn prepare(&self, data: Bytes, format: Option<ImageFormat>) -> Prepared {
        let format = format.ok_or(DecodeError::UnspecifiedFormat)?;
        let decoded = decode_frame(&data, format, self.limits).map_err(|e| match e {
            crow_inference::InferenceError::Decode(e) => FrameRefusal::Invalid(e),
            other => {
                tracing::warn!(error = %other, "frame could not be processed");
                FrameRefusal::Unprocessable
            }
        })?;
        let thumbnail = Thumbnail::of(&decoded.image).map_err(|e| {
            tracing::warn!(error = %e, "frame could not be thumbnailed");
            FrameRefusal::Unprocessable
        })?;
        Ok(Arc::new(PreparedFrame {
            digest: FrameDigest::of(&data),
            data,
            format,
            image: Arc::new(decoded.image),
            thumbnail,
        }))
    }

    /// A stored frame's bytes prepared again (a restarted session describes the frames its previous
    /// incarnation accepted): the format is read from the image's signature, and the same limits apply.
    pub(crate) fn prepare_stored(&self, data: Bytes) -> Prepared {
        let format = ImageFormat::from_signature(&data);
        self.prepare(data, format)
    }
}
