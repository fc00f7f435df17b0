use thiserror::Error;

/// Why an encoded frame was refused. The messages are safe to return to the client that sent the frame.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// No bytes.
    #[error("frame is empty")]
    Empty,
    /// Over the configured size limit.
    #[error("frame is {size} bytes, over pipeline.limits.max_frame_bytes ({limit})")]
    TooLarge {
        /// Bytes received.
        size: usize,
        /// Configured maximum.
        limit: usize,
    },
    /// The declared format is not one crow accepts.
    #[error("image format is unspecified; send JPEG or PNG")]
    UnspecifiedFormat,
    /// The bytes do not start with the declared format's signature.
    #[error("bytes are not a {declared} image (signature mismatch)")]
    SignatureMismatch {
        /// Declared format.
        declared: &'static str,
    },
    /// The image ends early.
    #[error("{format} data is truncated ({detail})")]
    Truncated {
        /// Format.
        format: &'static str,
        /// What is missing.
        detail: &'static str,
    },
    /// OpenCV could not decode it.
    #[error("image does not decode as {format}")]
    Undecodable {
        /// Format.
        format: &'static str,
    },
    /// The header declares more pixels than the configured limit (e.g. a decompression bomb).
    #[error(
        "image declares {width}x{height} pixels, over pipeline.limits.max_frame_pixels ({limit})"
    )]
    TooManyPixels {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// Configured maximum of width x height.
        limit: u64,
    },
    /// Decoded dimensions outside the accepted range.
    #[error("image is {width}x{height}, outside the accepted {min}..={max} pixels per side")]
    BadDimensions {
        /// Width in pixels.
        width: i32,
        /// Height in pixels.
        height: i32,
        /// Smallest accepted side.
        min: i32,
        /// Largest accepted side.
        max: i32,
    },
}

/// Failures of the perception layer other than bad input.
#[derive(Debug, Error)]
pub enum InferenceError {
    /// An OpenCV call failed.
    #[error("OpenCV failed while {context}: {message}")]
    OpenCv {
        /// What crow was doing.
        context: &'static str,
        /// OpenCV's message.
        message: String,
    },
    /// A media file or folder could not be opened or read.
    #[error("cannot read media {path}: {reason}")]
    Media {
        /// The path given.
        path: String,
        /// Why.
        reason: String,
    },
    /// A model failed (loading, projector, generation); the message says what to do.
    #[error("{0}")]
    Model(String),
    /// A model's answer is not JSON of the shape the task asked for (a server that ignored the schema,
    /// a cut-off answer); nothing of it is used.
    #[error("model answer is not the expected JSON: {0}")]
    BadAnswer(String),
    /// The input frame is unusable.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}
