//! [`LiveCapture`]: a live camera stream through a GStreamer pipeline crow builds and owns.
//!
//! - RTSP (H.264 or H.265, TCP or UDP): `rtspsrc` → `parsebin` → key frames only, or every frame thinned
//!   right after the decoder → `jpegenc` from the decoder's YUV → `appsink`.
//! - HTTP MJPEG (`multipart/x-mixed-replace`): `souphttpsrc` → `multipartdemux` → the camera's own JPEGs,
//!   passed through (decoded, scaled and re-encoded only when wider than wanted) → `appsink`.
//!
//! crow pulls each JPEG with a timeout, so a camera that stalls (the connection open, no frames) is
//! noticed after `read_timeout_ms` instead of blocking the reader forever. The URL is set as a property,
//! never parsed as part of a pipeline description, and the password is scrubbed from GStreamer's errors.

use std::sync::Once;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::live::{DecodeMode, LiveFrame, LiveImage, LiveOptions, RtspTransport, StreamInfo};
use crate::{redact_url, InferenceError};

/// An open live stream. Reading blocks (up to the read timeout): use it on a thread of its own.
pub struct LiveCapture {
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
    info: StreamInfo,
    /// The first frame, pulled while opening, handed out by the first read.
    first: Option<LiveFrame>,
    read_timeout: gst::ClockTime,
    /// The URL with any password replaced, for errors.
    shown: String,
    /// The password as written in the URL and decoded, kept only to scrub it from GStreamer's messages.
    secrets: Vec<String>,
}

fn init() -> Result<(), InferenceError> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| result = gst::init().map_err(|e| e.to_string()));
    result.map_err(|reason| InferenceError::Media {
        path: "GStreamer".into(),
        reason: format!("cannot start GStreamer: {reason}"),
    })
}

/// What a URL is read with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rtsp,
    Mjpeg,
}

fn kind_of(url: &str) -> Kind {
    if url.starts_with("rtsp://") || url.starts_with("rtsps://") {
        Kind::Rtsp
    } else {
        Kind::Mjpeg
    }
}

/// The launch line of an HTTP MJPEG camera: its JPEGs as served, or scaled and re-encoded.
fn mjpeg_launch_line(options: &LiveOptions, scale_to: Option<(u32, u32)>) -> String {
    let reencode = scale_to.map_or(String::new(), |(w, h)| {
        format!(
            "jpegdec ! videoconvert ! videoscale ! video/x-raw,width={w},height={h} ! jpegenc quality={} ! ",
            options.jpeg.quality
        )
    });
    format!(
        "souphttpsrc name=src is-live=true do-timestamp=true ! multipartdemux ! image/jpeg ! \
         identity name=parsed ! {reencode}appsink name=sink sync=false max-buffers=2 drop=true"
    )
}

/// The launch line of an RTSP camera, without its URL (set as a property, never parsed or printed).
fn launch_line(options: &LiveOptions, scale_to: Option<(u32, u32)>) -> String {
    // TCP delivers in order: no jitter buffer needed. UDP may reorder: 200 ms of it.
    let (protocols, latency) = match options.transport {
        RtspTransport::Tcp => ("tcp", 0),
        RtspTransport::Udp => ("udp", 200),
    };
    let (before, after) = match options.decode {
        DecodeMode::Full => (
            String::new(),
            format!(
                "videorate drop-only=true max-rate={} ! ",
                (options.take_fps * 2.0).ceil().max(1.0) as u32
            ),
        ),
        DecodeMode::KeyFrames => ("drop-buffer-flags=delta-unit".to_owned(), String::new()),
    };
    let scale = scale_to.map_or(String::new(), |(w, h)| {
        format!("videoscale ! video/x-raw,width={w},height={h} ! ")
    });
    format!(
        "rtspsrc name=src protocols={protocols} latency={latency} ! parsebin ! identity name=parsed {before} \
         ! decodebin ! {after}videoconvert ! {scale}jpegenc quality={} \
         ! appsink name=sink sync=false max-buffers=2 drop=true",
        options.jpeg.quality
    )
}

/// `url` without its user info, and the user and password it held (percent-decoded).
fn split_user_info(url: &str) -> (String, Option<String>, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), None, None);
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some((user_info, host)) = rest[..authority_end].rsplit_once('@') else {
        return (url.to_owned(), None, None);
    };
    let bare = format!("{scheme}://{host}{}", &rest[authority_end..]);
    let (user, password) = match user_info.split_once(':') {
        Some((u, p)) => (u, Some(percent_decode(p))),
        None => (user_info, None),
    };
    (bare, Some(percent_decode(user)), password)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The password of `url`'s user info as written and decoded, for scrubbing.
fn secrets_of(url: &str) -> Vec<String> {
    let written = url
        .split_once("://")
        .and_then(|(_, rest)| rest[..rest.find('/').unwrap_or(rest.len())].rsplit_once('@'))
        .and_then(|(info, _)| info.split_once(':'))
        .map(|(_, p)| p.to_owned());
    let decoded = split_user_info(url).2;
    written
        .into_iter()
        .chain(decoded)
        .filter(|p| !p.is_empty())
        .collect()
}

impl LiveCapture {
    /// Opens `url` and waits up to `open_timeout_ms` for its first frame. A camera wider than
    /// `options.jpeg.max_width` is reopened with the scaled size spelled out (a width range alone lets
    /// the scaler change the pixel shape instead).
    pub fn open(url: &str, options: &LiveOptions) -> Result<LiveCapture, InferenceError> {
        init()?;
        let mut stream = Self::start(url, options, None)?;
        let max = options.jpeg.max_width;
        if max > 0 && stream.info.width > max {
            let height = (u64::from(stream.info.height) * u64::from(max)
                / u64::from(stream.info.width)) as u32;
            let size = (max & !1, (height & !1).max(2));
            drop(stream);
            stream = Self::start(url, options, Some(size))?;
        }
        Ok(stream)
    }

    fn start(
        url: &str,
        options: &LiveOptions,
        scale_to: Option<(u32, u32)>,
    ) -> Result<LiveCapture, InferenceError> {
        let shown = redact_url(url);
        let failed = |reason: String| InferenceError::Media {
            path: shown.clone(),
            reason,
        };
        let kind = kind_of(url);
        let line = match kind {
            Kind::Rtsp => launch_line(options, scale_to),
            Kind::Mjpeg => mjpeg_launch_line(options, scale_to),
        };
        let pipeline = gst::parse::launch(&line)
            .map_err(|e| failed(format!("GStreamer cannot build the pipeline: {e} (are gstreamer1.0-plugins-good, -bad and gstreamer1.0-libav installed? scripts/setup.sh installs them)")))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| failed("not a pipeline".into()))?;
        let src = pipeline
            .by_name("src")
            .ok_or_else(|| failed("no rtspsrc".into()))?;
        match kind {
            Kind::Rtsp => {
                src.set_property("location", url);
                // Microseconds: a connection that stays silent this long fails.
                let micros = u64::from(options.read_timeout_ms) * 1000;
                src.set_property("tcp-timeout", micros);
                src.set_property("timeout", micros);
            }
            Kind::Mjpeg => {
                // Credentials go to the source's own properties (HTTP basic or digest auth).
                let (bare, user, password) = split_user_info(url);
                src.set_property("location", bare);
                if let Some(user) = user {
                    src.set_property("user-id", user);
                }
                if let Some(password) = password {
                    src.set_property("user-pw", password);
                }
                src.set_property("timeout", options.open_timeout_ms.div_ceil(1000).max(1));
            }
        }
        if options.decode == DecodeMode::KeyFrames {
            // One key frame a second needs no decoder threads of its own (frame threading only adds
            // wake-ups and a frame of delay).
            pipeline.connect_deep_element_added(|_, _, element| {
                let is_decoder = element
                    .factory()
                    .is_some_and(|f| f.name().starts_with("avdec_"));
                if is_decoder && element.has_property("max-threads", None) {
                    element.set_property("max-threads", 1i32);
                }
            });
        }
        let sink = pipeline
            .by_name("sink")
            .and_then(|s| s.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| failed("no appsink".into()))?;
        let mut stream = LiveCapture {
            pipeline,
            sink,
            info: StreamInfo {
                codec: None,
                width: 0,
                height: 0,
                fps: 0.0,
            },
            first: None,
            read_timeout: gst::ClockTime::from_mseconds(u64::from(options.read_timeout_ms)),
            shown: shown.clone(),
            secrets: secrets_of(url),
        };
        if stream.pipeline.set_state(gst::State::Playing).is_err() {
            return Err(failed(
                stream
                    .bus_error()
                    .unwrap_or("the pipeline does not start".into()),
            ));
        }
        let open_timeout = gst::ClockTime::from_mseconds(u64::from(options.open_timeout_ms));
        let first = match stream.pull(open_timeout) {
            Ok(first) => first,
            Err(_) => {
                return Err(failed(stream.bus_error().unwrap_or(format!(
                    "no frame within {} ms (check the address, the credentials and the transport)",
                    options.open_timeout_ms
                ))))
            }
        };
        stream.info = stream.describe(&first);
        stream.first = Some(first.1);
        Ok(stream)
    }

    /// What the stream said about itself.
    pub fn info(&self) -> &StreamInfo {
        &self.info
    }

    /// The next frame. Fails when the stream ended, broke, or stalled past the read timeout: reopen it.
    pub fn read(&mut self) -> Result<LiveFrame, InferenceError> {
        if let Some(first) = self.first.take() {
            return Ok(first);
        }
        self.pull(self.read_timeout)
            .map(|(_, frame)| frame)
            .map_err(|reason| {
                let reason = self.bus_error().unwrap_or(reason);
                InferenceError::Media {
                    path: self.shown.clone(),
                    reason,
                }
            })
    }

    /// One JPEG from the sink, with the caps it came with.
    fn pull(&self, timeout: gst::ClockTime) -> Result<(gst::Caps, LiveFrame), String> {
        let Some(sample) = self.sink.try_pull_sample(timeout) else {
            return Err(if self.sink.is_eos() {
                "the stream ended".into()
            } else {
                format!("no frame for {} ms: the camera stalled", timeout.mseconds())
            });
        };
        let buffer = sample.buffer().ok_or("a sample without a buffer")?;
        let map = buffer
            .map_readable()
            .map_err(|_| "a frame that cannot be read".to_owned())?;
        if !map.as_slice().starts_with(&[0xFF, 0xD8]) {
            return Err("the pipeline gave a frame that is not a JPEG".into());
        }
        let stream_ms = buffer.pts().map_or(f64::NAN, |t| t.nseconds() as f64 / 1e6);
        let caps = sample
            .caps()
            .map(ToOwned::to_owned)
            .unwrap_or_else(gst::Caps::new_empty);
        Ok((
            caps,
            LiveFrame {
                image: LiveImage::Jpeg(map.as_slice().to_vec()),
                stream_ms,
            },
        ))
    }

    /// Codec (from the parser's output), size (from the JPEG's caps, or its header when the caps do not
    /// say: an MJPEG camera's), rate (if the stream says).
    fn describe(&self, (caps, frame): &(gst::Caps, LiveFrame)) -> StreamInfo {
        let parsed = self
            .pipeline
            .by_name("parsed")
            .and_then(|e| e.static_pad("sink"))
            .and_then(|p| p.current_caps());
        let parsed = parsed.as_ref().and_then(|c| c.structure(0));
        let codec = parsed.map(|s| match s.name().as_str() {
            "video/x-h264" => "h264".to_owned(),
            "video/x-h265" => "h265".to_owned(),
            "image/jpeg" => "mjpeg".to_owned(),
            other => other.trim_start_matches("video/x-").to_owned(),
        });
        let fps = parsed
            .and_then(|s| s.get::<gst::Fraction>("framerate").ok())
            .filter(|f| f.denom() != 0)
            .map_or(0.0, |f| f64::from(f.numer()) / f64::from(f.denom()));
        let out = caps.structure(0);
        let dim = |key: &str| {
            out.and_then(|s| s.get::<i32>(key).ok())
                .map_or(0, |v| v.max(0) as u32)
        };
        let (mut width, mut height) = (dim("width"), dim("height"));
        if let (0, LiveImage::Jpeg(bytes)) = (width, &frame.image) {
            (width, height) =
                crate::probe_dimensions(bytes, crate::ImageFormat::Jpeg).unwrap_or((0, 0));
        }
        StreamInfo {
            codec,
            width,
            height,
            fps,
        }
    }

    /// The first error the pipeline posted, if any, with the camera's password scrubbed (GStreamer's
    /// messages may quote the URL).
    fn bus_error(&self) -> Option<String> {
        let bus = self.pipeline.bus()?;
        while let Some(message) = bus.pop_filtered(&[gst::MessageType::Error]) {
            if let gst::MessageView::Error(e) = message.view() {
                let mut text = e.error().to_string();
                for secret in &self.secrets {
                    text = text.replace(secret.as_str(), "***");
                }
                return Some(text);
            }
        }
        None
    }
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_lines_carry_no_url_and_drop_delta_frames_only_when_asked() {
        let mut options = LiveOptions {
            open_timeout_ms: 1000,
            read_timeout_ms: 1000,
            transport: RtspTransport::Udp,
            decode: DecodeMode::KeyFrames,
            take_fps: 1.0,
            jpeg: crate::JpegOutput {
                quality: 70,
                max_width: 640,
            },
        };
        let line = launch_line(&options, None);
        assert!(line.contains("protocols=udp"), "{line}");
        assert!(line.contains("drop-buffer-flags=delta-unit"), "{line}");
        assert!(line.contains("jpegenc quality=70"), "{line}");
        assert!(!line.contains("location"), "{line}");
        options.decode = DecodeMode::Full;
        let line = launch_line(&options, Some((640, 360)));
        assert!(!line.contains("drop-buffer-flags"), "{line}");
        assert!(
            line.contains("videorate drop-only=true max-rate=2"),
            "{line}"
        );
        assert!(line.contains("width=640,height=360"), "{line}");
        assert_eq!(secrets_of("rtsp://u:s%40cret@h/x"), ["s%40cret", "s@cret"]);
        assert!(secrets_of("rtsp://u@h/x").is_empty());
        assert_eq!(
            split_user_info("http://viewer:p%3Aw@cam:8080/video.mjpg"),
            (
                "http://cam:8080/video.mjpg".to_owned(),
                Some("viewer".to_owned()),
                Some("p:w".to_owned())
            )
        );
        assert!(mjpeg_launch_line(&options, None).contains("multipartdemux ! image/jpeg"));
    }
}
