//! Live camera streams through OpenCV's FFmpeg backend: RTSP (H.264, H.265) and HTTP MJPEG
//! (`multipart/x-mixed-replace`), opened with open and read timeouts so that a camera that does not
//! answer or stalls is noticed rather than waited on.

use opencv::core::{Mat, Vector};
use opencv::prelude::*;
use opencv::videoio;

use crate::InferenceError;

/// What a live stream says about itself once opened.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    /// The codec's FourCC (e.g. `h264`, `hevc`, `MJPG`), when the backend says.
    pub codec: Option<String>,
    /// Frame width and height in pixels.
    pub width: u32,
    /// See `width`.
    pub height: u32,
    /// Frames per second the stream announces (0 when it does not).
    pub fps: f64,
}

/// An open live stream. Reading blocks: use it on a thread of its own.
pub struct LiveCapture {
    capture: videoio::VideoCapture,
    info: StreamInfo,
    /// The URL with any password replaced, for errors.
    shown: String,
    /// Whether the pipeline gives JPEG frames.
    jpeg: bool,
}

/// A URL with the password of its user info replaced by `***`, fit for logs, errors and metrics.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// How an RTSP camera's packets travel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RtspTransport {
    /// Interleaved in the RTSP connection: one TCP connection, through NAT and firewalls.
    #[default]
    Tcp,
    /// RTP over UDP, where the camera offers it: less delay, but lost packets are lost frames.
    Udp,
}

/// Which frames of a stream are decoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DecodeMode {
    /// Every frame: needed when frames are wanted more often than the camera sends key frames.
    #[default]
    Full,
    /// Only key frames (the others are dropped before the decoder): about a third of the CPU of a
    /// full decode when one frame per key-frame interval is enough.
    KeyFrames,
}

/// How a live stream is opened and read.
#[derive(Debug, Clone, Copy)]
pub struct LiveOptions {
    /// A stream that does not open within this long is given up on.
    pub open_timeout_ms: u32,
    /// A stream that yields no frame for this long fails (reopen it).
    pub read_timeout_ms: u32,
    /// RTSP only.
    pub transport: RtspTransport,
    /// RTSP only (an MJPEG stream's frames are all key frames).
    pub decode: DecodeMode,
    /// Frames per second the reader takes: when every frame is decoded, those beyond twice this rate
    /// are dropped right after the decoder, before conversion (RTSP).
    pub take_fps: f64,
    /// RTSP: frames come out as JPEG, encoded by the pipeline from the decoder's YUV (no conversion to
    /// BGR and back), scaled down when wider than this; `None` gives BGR pictures.
    pub jpeg: Option<JpegOutput>,
}

/// JPEG frames straight out of the decoding pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegOutput {
    /// JPEG quality, 1-100.
    pub quality: i32,
    /// Frames wider than this are scaled down, aspect kept; 0 keeps the camera's size.
    pub max_width: u32,
}

/// A frame's picture, as the reader was asked for it.
pub enum LiveImage {
    /// Decoded pixels (BGR).
    Bgr(Mat),
    /// A JPEG (see [`LiveOptions::jpeg`]).
    Jpeg(Vec<u8>),
}

/// One decoded frame of a live stream.
pub struct LiveFrame {
    /// The picture.
    pub image: LiveImage,
    /// The frame's time on the stream's clock, in ms from the stream's start.
    pub stream_ms: f64,
}

/// A GStreamer launch line reading `url` (RTSP) into OpenCV: depayloaded and parsed (H.264 or H.265,
/// whatever the camera sends), delta frames dropped before the decoder when only key frames are
/// wanted, then decoded to BGR.
fn rtsp_pipeline(url: &str, options: &LiveOptions, scale_to: Option<(u32, u32)>) -> String {
    let quoted = url.replace('\\', "\\\\").replace('"', "\\\"");
    let protocols = match options.transport {
        RtspTransport::Tcp => "tcp",
        RtspTransport::Udp => "udp",
    };
    let micros = u64::from(options.read_timeout_ms) * 1000;
    let (before, after) = match options.decode {
        DecodeMode::Full => (
            String::new(),
            format!(
                "videorate drop-only=true max-rate={} ! ",
                (options.take_fps * 2.0).ceil().max(1.0) as u32
            ),
        ),
        DecodeMode::KeyFrames => (
            "identity drop-buffer-flags=delta-unit ! ".to_owned(),
            String::new(),
        ),
    };
    let output = match (options.jpeg, scale_to) {
        (None, _) => "videoconvert ! video/x-raw,format=BGR".to_owned(),
        (Some(jpeg), None) => format!("videoconvert ! jpegenc quality={}", jpeg.quality),
        (Some(jpeg), Some((width, height))) => format!(
            "videoconvert ! videoscale ! video/x-raw,width={width},height={height} ! jpegenc quality={}",
            jpeg.quality
        ),
    };
    format!(
        "rtspsrc location=\"{quoted}\" protocols={protocols} latency=200 timeout={micros} \
         tcp-timeout={micros} ! parsebin ! {before}decodebin ! {after}{output} \
         ! appsink sync=false max-buffers=2 drop=true"
    )
}

impl LiveCapture {
    /// Opens `url`: `rtsp://…` through GStreamer (transport and decoding as `options` say), an HTTP
    /// MJPEG stream through FFmpeg.
    pub fn open(url: &str, options: &LiveOptions) -> Result<LiveCapture, InferenceError> {
        if !(url.starts_with("rtsp://") || url.starts_with("rtsps://")) {
            return Self::open_with(url, url, videoio::CAP_FFMPEG, options);
        }
        let pipeline = rtsp_pipeline(url, options, None);
        let mut capture = Self::open_with(url, &pipeline, videoio::CAP_GSTREAMER, options)?;
        capture.jpeg = options.jpeg.is_some();
        let Some(jpeg) = options.jpeg.filter(|j| j.max_width > 0) else {
            return Ok(capture);
        };
        // The camera's size shows in its first frame; one wider than wanted is reopened with the
        // scaled size spelled out (a width range alone lets the scaler change the pixel shape instead).
        let LiveImage::Jpeg(first) = capture.read()?.image else {
            return Ok(capture);
        };
        let (width, height) =
            crate::probe_dimensions(&first, crate::ImageFormat::Jpeg).map_err(|e| {
                InferenceError::Media {
                    path: capture.shown.clone(),
                    reason: format!("the pipeline's JPEG is unreadable: {e}"),
                }
            })?;
        if width <= jpeg.max_width {
            return Ok(capture);
        }
        let scaled_height =
            (u64::from(height) * u64::from(jpeg.max_width) / u64::from(width)) as u32;
        let size = (jpeg.max_width & !1, (scaled_height & !1).max(2));
        drop(capture);
        let pipeline = rtsp_pipeline(url, options, Some(size));
        let mut capture = Self::open_with(url, &pipeline, videoio::CAP_GSTREAMER, options)?;
        capture.jpeg = true;
        Ok(capture)
    }

    /// Opens `url` with FFmpeg, which names the codec (for `crow agent check`'s report).
    pub fn probe(url: &str, options: &LiveOptions) -> Result<LiveCapture, InferenceError> {
        Self::open_with(url, url, videoio::CAP_FFMPEG, options)
    }

    fn open_with(
        url: &str,
        source: &str,
        backend: i32,
        options: &LiveOptions,
    ) -> Result<LiveCapture, InferenceError> {
        quiet_opencv();
        let shown = redact_url(url);
        let media_err = |reason: String| InferenceError::Media {
            path: shown.clone(),
            reason,
        };
        // OpenCV 4.6's GStreamer backend refuses the timeout properties (the pipeline's `rtspsrc`
        // carries them instead).
        let params = if backend == videoio::CAP_GSTREAMER {
            Vector::new()
        } else {
            Vector::from_slice(&[
                videoio::CAP_PROP_OPEN_TIMEOUT_MSEC,
                i32::try_from(options.open_timeout_ms).unwrap_or(i32::MAX),
                videoio::CAP_PROP_READ_TIMEOUT_MSEC,
                i32::try_from(options.read_timeout_ms).unwrap_or(i32::MAX),
            ])
        };
        let capture = videoio::VideoCapture::from_file_with_params(source, backend, &params)
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
        Ok(LiveCapture {
            capture,
            info,
            shown,
            jpeg: false,
        })
    }

    /// What the stream said about itself.
    pub fn info(&self) -> &StreamInfo {
        &self.info
    }

    /// The next decoded frame. Fails when the stream ended, stalled past the read timeout, or broke:
    /// reopen it.
    pub fn read(&mut self) -> Result<LiveFrame, InferenceError> {
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
        let image = if self.jpeg {
            // OpenCV hands an encoded frame over as one row of bytes.
            let bytes = image.data_bytes().map(<[u8]>::to_vec).unwrap_or_default();
            if !bytes.starts_with(&[0xFF, 0xD8]) {
                return Err(InferenceError::Media {
                    path: self.shown.clone(),
                    reason: "the pipeline gave a frame that is not a JPEG".into(),
                });
            }
            LiveImage::Jpeg(bytes)
        } else {
            LiveImage::Bgr(image)
        };
        Ok(LiveFrame { image, stream_ms })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_leave_the_url() {
        assert_eq!(
            redact_url("rtsp://admin:s3cret@10.0.0.7:554/Streaming/101"),
            "rtsp://admin:***@10.0.0.7:554/Streaming/101"
        );
        assert_eq!(
            redact_url("http://cam.local/snap.jpg?x=a@b"),
            "http://cam.local/snap.jpg?x=a@b"
        );
        assert_eq!(redact_url("/srv/footage/door.mp4"), "/srv/footage/door.mp4");
        assert_eq!(redact_url("rtsp://user@h/x"), "rtsp://user@h/x");
    }
}
