//! RTSP cameras through a GStreamer pipeline crow builds and owns: `rtspsrc` (TCP or UDP) → `parsebin`
//! (H.264 or H.265, whatever the camera sends) → key frames only, or every frame thinned right after the
//! decoder → `jpegenc` from the decoder's YUV → `appsink`. crow pulls each JPEG with a timeout, so a camera
//! that stalls (the connection open, no frames) is noticed after `read_timeout_ms` instead of blocking the
//! reader forever.

use std::sync::Once;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::live::{DecodeMode, LiveFrame, LiveImage, LiveOptions, RtspTransport, StreamInfo};
use crate::{redact_url, InferenceError};

/// An open RTSP stream. Reading blocks (up to the read timeout): use it on a thread of its own.
pub struct RtspStream {
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
    info: StreamInfo,
    /// The first frame, pulled while opening, handed out by the first read.
    first: Option<LiveFrame>,
    read_timeout: gst::ClockTime,
    /// The URL with any password replaced, for errors.
    shown: String,
    /// The password, kept only to scrub it from GStreamer's messages.
    password: Option<String>,
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

/// The launch line, without the camera's URL (set as a property, never parsed or printed).
fn launch_line(options: &LiveOptions, scale_to: Option<(u32, u32)>) -> String {
    let protocols = match options.transport {
        RtspTransport::Tcp => "tcp",
        RtspTransport::Udp => "udp",
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
        "rtspsrc name=src protocols={protocols} latency=200 ! parsebin ! identity name=parsed {before} \
         ! decodebin ! {after}videoconvert ! {scale}jpegenc quality={} \
         ! appsink name=sink sync=false max-buffers=2 drop=true",
        options.jpeg.quality
    )
}

/// The password of `url`'s user info, if any.
fn password_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let user_info = authority.rsplit_once('@')?.0;
    user_info
        .split_once(':')
        .map(|(_, p)| p.to_owned())
        .filter(|p| !p.is_empty())
}

impl RtspStream {
    /// Opens `url` and waits up to `open_timeout_ms` for its first frame. A camera wider than
    /// `options.jpeg.max_width` is reopened with the scaled size spelled out (a width range alone lets
    /// the scaler change the pixel shape instead).
    pub fn open(url: &str, options: &LiveOptions) -> Result<RtspStream, InferenceError> {
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
    ) -> Result<RtspStream, InferenceError> {
        let shown = redact_url(url);
        let failed = |reason: String| InferenceError::Media {
            path: shown.clone(),
            reason,
        };
        let pipeline = gst::parse::launch(&launch_line(options, scale_to))
            .map_err(|e| failed(format!("GStreamer cannot build the pipeline: {e} (are gstreamer1.0-plugins-good, -bad and gstreamer1.0-libav installed? scripts/setup.sh installs them)")))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| failed("not a pipeline".into()))?;
        let src = pipeline
            .by_name("src")
            .ok_or_else(|| failed("no rtspsrc".into()))?;
        src.set_property("location", url);
        // Microseconds: a connection that stays silent this long fails.
        let micros = u64::from(options.read_timeout_ms) * 1000;
        src.set_property("tcp-timeout", micros);
        src.set_property("timeout", micros);
        let sink = pipeline
            .by_name("sink")
            .and_then(|s| s.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| failed("no appsink".into()))?;
        let mut stream = RtspStream {
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
            password: password_of(url),
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

    /// Codec (from the parser's output), size (from the JPEG's caps), rate (if the stream says).
    fn describe(&self, (caps, _): &(gst::Caps, LiveFrame)) -> StreamInfo {
        let parsed = self
            .pipeline
            .by_name("parsed")
            .and_then(|e| e.static_pad("sink"))
            .and_then(|p| p.current_caps());
        let parsed = parsed.as_ref().and_then(|c| c.structure(0));
        let codec = parsed.map(|s| match s.name().as_str() {
            "video/x-h264" => "h264".to_owned(),
            "video/x-h265" => "h265".to_owned(),
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
        StreamInfo {
            codec,
            width: dim("width"),
            height: dim("height"),
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
                if let Some(p) = self.password.as_deref() {
                    text = text.replace(p, "***");
                }
                return Some(text);
            }
        }
        None
    }
}

impl Drop for RtspStream {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_launch_line_carries_no_url_and_drops_delta_frames_only_when_asked() {
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
        assert_eq!(
            password_of("rtsp://u:s3cret@h/x").as_deref(),
            Some("s3cret")
        );
        assert_eq!(password_of("rtsp://u@h/x"), None);
    }
}
