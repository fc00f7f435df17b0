//! [`LiveCapture`]: a live camera stream, whatever its kind — RTSP through crow's own GStreamer
//! pipeline ([`crate::rtsp`]), HTTP MJPEG (`multipart/x-mixed-replace`) through OpenCV's FFmpeg backend,
//! each opened with open and read timeouts so that a camera that does not answer or stalls is noticed
//! rather than waited on.

use opencv::core::{Mat, Vector};
use opencv::prelude::*;
use opencv::videoio;

use crate::live::{LiveFrame, LiveImage, LiveOptions, StreamInfo};
use crate::rtsp::RtspStream;
use crate::{redact_url, InferenceError};

/// An open live stream. Reading blocks (up to the read timeout): use it on a thread of its own.
pub enum LiveCapture {
    /// `rtsp://…`: JPEG frames.
    Rtsp(RtspStream),
    /// An HTTP MJPEG stream: BGR frames.
    Mjpeg(MjpegStream),
}

impl LiveCapture {
    /// Opens `url`: `rtsp://…` through GStreamer (transport, decoding and JPEG output as `options`
    /// say), anything else (an HTTP MJPEG stream) through FFmpeg.
    pub fn open(url: &str, options: &LiveOptions) -> Result<LiveCapture, InferenceError> {
        if url.starts_with("rtsp://") || url.starts_with("rtsps://") {
            RtspStream::open(url, options).map(LiveCapture::Rtsp)
        } else {
            MjpegStream::open(url, options).map(LiveCapture::Mjpeg)
        }
    }

    /// What the stream said about itself.
    pub fn info(&self) -> &StreamInfo {
        match self {
            LiveCapture::Rtsp(s) => s.info(),
            LiveCapture::Mjpeg(s) => &s.info,
        }
    }

    /// The next frame. Fails when the stream ended, stalled past the read timeout, or broke: reopen it.
    pub fn read(&mut self) -> Result<LiveFrame, InferenceError> {
        match self {
            LiveCapture::Rtsp(s) => s.read(),
            LiveCapture::Mjpeg(s) => s.read(),
        }
    }
}

/// An HTTP MJPEG stream read by OpenCV's FFmpeg backend.
pub struct MjpegStream {
    capture: videoio::VideoCapture,
    info: StreamInfo,
    /// The URL with any password replaced, for errors.
    shown: String,
}

impl MjpegStream {
    fn open(url: &str, options: &LiveOptions) -> Result<MjpegStream, InferenceError> {
        quiet_opencv();
        let shown = redact_url(url);
        let media_err = |reason: String| InferenceError::Media {
            path: shown.clone(),
            reason,
        };
        let params = Vector::from_slice(&[
            videoio::CAP_PROP_OPEN_TIMEOUT_MSEC,
            i32::try_from(options.open_timeout_ms).unwrap_or(i32::MAX),
            videoio::CAP_PROP_READ_TIMEOUT_MSEC,
            i32::try_from(options.read_timeout_ms).unwrap_or(i32::MAX),
        ]);
        let capture =
            videoio::VideoCapture::from_file_with_params(url, videoio::CAP_FFMPEG, &params)
                // OpenCV's message may repeat the URL: never show it.
                .map_err(|_| media_err("the stream cannot be opened".into()))?;
        if !capture.is_opened().unwrap_or(false) {
            return Err(media_err(
                "no answer, or not a stream crow can read (check the address, the credentials and the transport)"
                    .into(),
            ));
        }
        let get = |prop| capture.get(prop).unwrap_or(0.0);
        let fourcc = get(videoio::CAP_PROP_FOURCC) as u32;
        let codec = (fourcc != 0).then(|| {
            fourcc
                .to_le_bytes()
                .iter()
                .filter(|b| b.is_ascii_graphic())
                .map(|b| *b as char)
                .collect::<String>()
        });
        let info = StreamInfo {
            codec,
            width: get(videoio::CAP_PROP_FRAME_WIDTH) as u32,
            height: get(videoio::CAP_PROP_FRAME_HEIGHT) as u32,
            fps: get(videoio::CAP_PROP_FPS),
        };
        Ok(MjpegStream {
            capture,
            info,
            shown,
        })
    }

    fn read(&mut self) -> Result<LiveFrame, InferenceError> {
        let mut image = Mat::default();
        let ok = self.capture.read(&mut image).unwrap_or(false);
        if !ok || image.empty() {
            return Err(InferenceError::Media {
                path: self.shown.clone(),
                reason: "no frame: the stream ended or stalled".into(),
            });
        }
        let stream_ms = self
            .capture
            .get(videoio::CAP_PROP_POS_MSEC)
            .unwrap_or(f64::NAN);
        Ok(LiveFrame {
            image: LiveImage::Bgr(image),
            stream_ms,
        })
    }
}

/// OpenCV's own warnings (which may quote a URL with its password) are not printed: crow reports
/// what failed itself.
fn quiet_opencv() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = opencv::core::set_log_level(opencv::core::LogLevel::LOG_LEVEL_SILENT);
    });
}
