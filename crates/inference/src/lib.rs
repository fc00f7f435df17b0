//! crow's perception layer: everything that looks at pixels.
//!
//! - [`frame`]: validating and decoding encoded frames with OpenCV ([`decode_frame`]);
//! - [`gate`]: the cheap near-duplicate check on a downscaled grey thumbnail ([`DuplicateGate`]);
//! - [`describer`]: the [`FrameDescriber`] trait that turns a frame into a [`Description`], and the embedded
//!   model-free default, [`OpenCvSceneDescriber`] (HOG people detector, motion regions, optical-flow direction);
//! - [`llama`]: llama.cpp models — [`llama::VisionModel`] / [`llama::LlamaVisionDescriber`] on the multimodal
//!   (mtmd) path, and [`llama::TextModel`] for grammar-constrained JSON tasks such as product matching;
//! - [`remote`]: the same describer contract over an OpenAI-compatible chat-completions server
//!   ([`remote::RemoteDescriber`]), to move inference to GPU machines;
//! - [`text`]: the text tasks (product proposals, analyses) behind [`text::TextGenerator`], whichever
//!   model answers, and the check every answer passes before crow reads it;
//! - [`detector`]: people in a frame ([`DetectorPool`]: SSDLite-MobileNetV2 through OpenCV dnn, HOG as the
//!   fallback when the model is absent);
//! - [`tracker`]: a SORT-style multi-object tracker giving each person a track id across frames ([`Tracker`]);
//! - [`zones`]: polygon membership and tripwire crossings in normalised coordinates;
//! - [`gate_footage`]: footage with idle and busy stretches, a blinking sign and an exposure step, built
//!   from a real video, for measuring a describe gate;
//! - [`media`]: reading a video file, an image or a folder of images as timestamped frames ([`MediaReader`]).
//!
//! The crate knows nothing about sessions, actors or storage.
// Tests may wait on threads and flush directly (clippy.toml forbids both in product code).
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod camera;
pub mod describer;
pub mod detector;
mod error;
pub mod frame;
pub mod gate;
pub mod gate_footage;
pub mod gguf;
pub mod grammar;
pub mod live;
#[cfg(feature = "llama")]
pub mod llama;
#[cfg(feature = "llama")]
mod llama_log;
pub mod media;
#[cfg(feature = "remote")]
pub mod remote;
pub mod text;
pub mod tracker;
pub mod truth_footage;
pub mod zones;

pub use camera::LiveCapture;
pub use describer::{
    DescribeInput, Description, FrameDescriber, OpenCvSceneDescriber, DEFAULT_VISION_PROMPT,
};
pub use detector::{DetectionFilter, DetectorKind, DetectorPool, PersonDetector};
pub use error::{DecodeError, InferenceError};
pub use frame::{
    decode_frame, encode_jpeg, probe_dimensions, validate_frame, DecodedFrame, FrameLimits,
    ImageFormat,
};
pub use gate::{DuplicateGate, GateVerdict, Thumbnail};
pub use live::{
    redact_url, DecodeMode, JpegOutput, LiveFrame, LiveImage, LiveOptions, RtspTransport,
    StreamInfo,
};
pub use media::{MediaFrame, MediaReader};
/// The OpenCV bindings this crate uses.
pub use opencv;
/// OpenCV's image type, re-exported so that callers need no direct dependency on the bindings.
pub use opencv::core::Mat;
pub use tracker::{
    Appearance, BBox, Detection, Track, TrackChange, Tracker, TrackerConfig, TrackerState,
};

/// Converts an OpenCV error into the crate's error with context.
pub(crate) fn cv(context: &'static str) -> impl FnOnce(opencv::Error) -> InferenceError {
    move |e| InferenceError::OpenCv {
        context,
        message: e.message,
    }
}
