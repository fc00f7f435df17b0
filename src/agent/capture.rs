//! Capturing: one thread per camera takes frames from its source at the camera's rate and writes each
//! to the camera's spool before anything else happens to it. A camera that fails to open, stalls or
//! breaks is reopened with exponential backoff and jitter; its trouble never touches another camera.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crow_inference::opencv::{core::Size, imgproc, prelude::*};
use crow_inference::{
    encode_jpeg, redact_url, DecodeMode, LiveCapture, LiveImage, LiveOptions, Mat, MediaReader,
};

use super::config::{CameraSource, DecodeChoice, SourceKind};
use super::spool::Spool;

/// How a camera's capture is run.
#[derive(Debug, Clone, Copy)]
pub struct CaptureSettings {
    /// See [`super::config::AgentConfig::open_timeout_ms`].
    pub open_timeout_ms: u32,
    /// See [`super::config::AgentConfig::read_timeout_ms`].
    pub read_timeout_ms: u32,
    /// See [`super::config::AgentConfig::reconnect_max_ms`].
    pub reconnect_max_ms: u64,
}

/// Metric names of the agent.
pub mod metric {
    /// Frames taken from cameras and spooled, by camera.
    pub const CAPTURED: &str = "crow_agent_frames_captured_total";
    /// Frames the server acknowledged (and the spool forgot), by camera.
    pub const SENT: &str = "crow_agent_frames_sent_total";
    /// Frames pushed out of a full spool before the server had them, by camera.
    pub const DROPPED: &str = "crow_agent_frames_dropped_total";
    /// Times a camera was (re)opened after a failure, by camera.
    pub const RECONNECTS: &str = "crow_agent_camera_reconnects_total";
    /// 1 while a camera delivers frames, 0 while it is being reopened.
    pub const UP: &str = "crow_agent_camera_up";
    /// Milliseconds to scale and encode a taken frame (snapshots: to fetch it).
    pub const CAPTURE_MS: &str = "crow_agent_capture_ms";
    /// Frames waiting in a camera's spool.
    pub const SPOOL_FRAMES: &str = "crow_agent_spool_frames";
    /// Bytes waiting in a camera's spool.
    pub const SPOOL_BYTES: &str = "crow_agent_spool_bytes";
    /// Age of the oldest frame waiting in a camera's spool (0 when empty).
    pub const SPOOL_OLDEST_AGE: &str = "crow_agent_spool_oldest_age_seconds";
    /// Seconds since a camera's last captured frame.
    pub const LAST_FRAME_AGE: &str = "crow_agent_last_frame_age_seconds";
}

fn now_ms() -> i64 {
    crow_storage::now_ms()
}

/// A camera's capture as `crow agent status` shows it (the metrics carry the same counts).
#[derive(Debug, Default)]
pub struct CameraHealth {
    /// Whether the camera delivers frames now.
    pub up: AtomicBool,
    /// Whether only key frames are decoded now.
    pub key_frames_only: AtomicBool,
    /// Frames captured and spooled.
    pub captured: AtomicU64,
    /// Times the camera was reopened.
    pub reconnects: AtomicU64,
    /// Capture time of the last frame (ms since the epoch; 0 before the first).
    pub last_frame_ms: AtomicI64,
}

/// Whether the camera is up, in its gauge and its health.
struct Liveness<'a> {
    gauge: metrics::Gauge,
    health: &'a CameraHealth,
}

impl Liveness<'_> {
    fn set(&self, up: bool) {
        self.gauge.set(if up { 1.0 } else { 0.0 });
        self.health.up.store(up, Ordering::Release);
    }
}

/// Runs a camera's capture until `stop` is set or (a file or folder) its media ends; `wake` is
/// notified after each spooled frame; `health` follows it.
pub fn run(
    camera: &CameraSource,
    settings: CaptureSettings,
    spool: &Spool,
    wake: &tokio::sync::Notify,
    health: &CameraHealth,
    stop: &AtomicBool,
) {
    let labels = [
        ("org_id", camera.organization_id.clone()),
        ("camera_id", camera.camera_id.clone()),
    ];
    let captured = metrics::counter!(metric::CAPTURED, &labels);
    let dropped = metrics::counter!(metric::DROPPED, &labels);
    let up = Liveness {
        gauge: metrics::gauge!(metric::UP, &labels),
        health,
    };
    let spend = metrics::histogram!(metric::CAPTURE_MS, &labels);
    let keep = |captured_at_ms: i64, jpeg: &[u8]| match spool.push(captured_at_ms, jpeg) {
        Ok((_, pushed_out)) => {
            captured.increment(1);
            health.captured.fetch_add(1, Ordering::AcqRel);
            health
                .last_frame_ms
                .store(captured_at_ms, Ordering::Release);
            if pushed_out > 0 {
                dropped.increment(pushed_out);
                tracing::warn!(camera_id = %camera.camera_id, dropped = pushed_out, "spool full: oldest frames dropped");
            }
            wake.notify_one();
        }
        Err(e) => tracing::error!(camera_id = %camera.camera_id, error = %e, "frame not spooled"),
    };
    let is_local = camera.kind == SourceKind::Stream && std::path::Path::new(&camera.url).exists();
    if is_local {
        replay(camera, &keep, stop, &up);
        return;
    }
    let mut backoff = Backoff::new(settings.reconnect_max_ms);
    let reconnects = metrics::counter!(metric::RECONNECTS, &labels);
    let shown = redact_url(&camera.url);
    let interval = Duration::from_secs_f64(1.0 / camera.fps);
    let mut decode = camera
        .live_options(settings.open_timeout_ms, settings.read_timeout_ms)
        .decode;
    let mut first = true;
    while !stop.load(Ordering::Acquire) {
        if !first {
            reconnects.increment(1);
            health.reconnects.fetch_add(1, Ordering::AcqRel);
            backoff.wait(stop);
        }
        first = false;
        up.set(false);
        let outcome = match camera.kind {
            SourceKind::Stream => {
                let options = LiveOptions {
                    decode,
                    ..camera.live_options(settings.open_timeout_ms, settings.read_timeout_ms)
                };
                health
                    .key_frames_only
                    .store(decode == DecodeMode::KeyFrames, Ordering::Release);
                live(camera, &options, interval, &keep, stop, &up, &spend)
            }
            SourceKind::Snapshot => snapshots(camera, settings, interval, &keep, stop, &up, &spend)
                .map_err(LiveEnd::Failed),
        };
        match outcome {
            Ok(()) => backoff.reset(),
            Err(LiveEnd::KeyFramesTooRare { every_ms }) => {
                // Not a failure: reopen at once, decoding every frame from now on.
                tracing::info!(
                    camera_id = %camera.camera_id,
                    key_frame_every_ms = every_ms,
                    wanted_every_ms = interval.as_millis() as u64,
                    "the camera's key frames are rarer than its fps wants: decoding every frame"
                );
                decode = DecodeMode::Full;
                first = true;
            }
            Err(LiveEnd::Failed(reason)) => {
                tracing::warn!(camera_id = %camera.camera_id, url = %shown, reason, "camera unavailable; reopening");
            }
        }
    }
    up.set(false);
}

/// Why a live capture ended before the agent stopped.
enum LiveEnd {
    /// The stream failed to open, stalled or broke.
    Failed(String),
    /// Decoding only key frames, they came less often than the camera's rate wants (`decode =
    /// "auto"`): the measured interval between them.
    KeyFramesTooRare { every_ms: u64 },
}

impl From<String> for LiveEnd {
    fn from(reason: String) -> LiveEnd {
        LiveEnd::Failed(reason)
    }
}

/// The frame as sent: scaled down to the camera's `max_width` when wider, then JPEG-encoded.
fn encode(camera: &CameraSource, image: &Mat) -> Result<Vec<u8>, String> {
    let width = u32::try_from(image.cols()).unwrap_or(0);
    if camera.max_width == 0 || width <= camera.max_width {
        return encode_jpeg(image, camera.jpeg_quality).map_err(|e| e.to_string());
    }
    let scale = f64::from(camera.max_width) / f64::from(width);
    let size = Size::new(
        camera.max_width as i32,
        ((f64::from(image.rows()) * scale).round() as i32).max(1),
    );
    let mut small = Mat::default();
    imgproc::resize(image, &mut small, size, 0.0, 0.0, imgproc::INTER_AREA)
        .map_err(|e| e.to_string())?;
    encode_jpeg(&small, camera.jpeg_quality).map_err(|e| e.to_string())
}

/// A file or folder, sampled at the camera's rate of media time, timestamped from now.
fn replay(camera: &CameraSource, keep: &impl Fn(i64, &[u8]), stop: &AtomicBool, up: &Liveness) {
    let reader = match MediaReader::open(&camera.url, Some(camera.fps)) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(camera_id = %camera.camera_id, error = %e, "cannot read the camera's media");
            return;
        }
    };
    up.set(true);
    let start = now_ms();
    for frame in reader {
        if stop.load(Ordering::Acquire) {
            break;
        }
        let Ok(frame) = frame else { continue };
        match encode(camera, &frame.image) {
            Ok(jpeg) => keep(start + frame.position_ms, &jpeg),
            Err(e) => {
                tracing::warn!(camera_id = %camera.camera_id, error = %e, "frame not encoded")
            }
        }
    }
    up.set(false);
}

/// Frames a key-frame-only capture measures before judging their interval.
const KEY_FRAMES_MEASURED: u32 = 4;

/// How far (ms) a frame may arrive behind its capture time before it counts as behind.
const MAX_BEHIND_MS: i64 = 2000;
/// Frames in a row behind that re-anchor a [`CaptureClock`].
const BEHIND_FRAMES: u32 = 3;

/// Maps a stream's clock onto the agent's: a frame's capture time is its stream time plus the
/// smallest (arrival - stream time) seen so far, so it is never later than the frame's arrival and
/// only rises. A stream that stays more than 2 s behind that for 3 frames in a row (a camera's clock
/// jump, a camera running slow) is re-anchored by the least of those frames' lateness; one late
/// burst is not.
#[derive(Debug, Default)]
struct CaptureClock {
    offset_ms: Option<i64>,
    behind_run: u32,
    least_behind_ms: i64,
}

impl CaptureClock {
    /// The capture time (ms since the epoch) of a frame at `stream_ms` that arrived at `arrival_ms`.
    fn stamp(&mut self, stream_ms: f64, arrival_ms: i64) -> i64 {
        let t = stream_ms as i64;
        let mut offset = self
            .offset_ms
            .map_or(arrival_ms - t, |o| o.min(arrival_ms - t));
        let behind = arrival_ms - (t + offset);
        if behind > MAX_BEHIND_MS {
            self.least_behind_ms = if self.behind_run == 0 {
                behind
            } else {
                self.least_behind_ms.min(behind)
            };
            self.behind_run += 1;
            if self.behind_run >= BEHIND_FRAMES {
                offset += self.least_behind_ms;
                self.behind_run = 0;
            }
        } else {
            self.behind_run = 0;
        }
        self.offset_ms = Some(offset);
        t + offset
    }
}

/// An RTSP or MJPEG stream, sampled by the stream's clock: a frame is taken once per `interval` of
/// stream time (a quarter interval early is on time, so key frames exactly one interval apart are all
/// taken), stamped by a [`CaptureClock`]. Returns why it stopped.
fn live(
    camera: &CameraSource,
    options: &LiveOptions,
    interval: Duration,
    keep: &impl Fn(i64, &[u8]),
    stop: &AtomicBool,
    up: &Liveness,
    spend: &metrics::Histogram,
) -> Result<(), LiveEnd> {
    let mut capture = LiveCapture::open(&camera.url, options).map_err(|e| e.to_string())?;
    up.set(true);
    let interval_ms = interval.as_secs_f64() * 1000.0;
    let opened = Instant::now();
    let mut clock = CaptureClock::default();
    let mut first_stream_ms: Option<f64> = None;
    let mut last_t = f64::NEG_INFINITY;
    let mut due_t = 0.0;
    // Key frames decoded, and the stream time of the first, for `decode = "auto"`.
    let mut decoded = 0u32;
    let mut first_decoded_t = 0.0;
    while !stop.load(Ordering::Acquire) {
        let frame = capture.read().map_err(|e| e.to_string())?;
        let started = Instant::now();
        let wall_t = opened.elapsed().as_secs_f64() * 1000.0;
        // The stream's clock when it has one that moves forward, the agent's otherwise (MJPEG).
        let t = match (frame.stream_ms.is_finite(), first_stream_ms) {
            (true, Some(first)) if frame.stream_ms - first > last_t => frame.stream_ms - first,
            (true, None) => {
                first_stream_ms = Some(frame.stream_ms);
                0.0
            }
            _ => wall_t.max(last_t + 1.0),
        };
        last_t = t;
        if options.decode == DecodeMode::KeyFrames && camera.decode == DecodeChoice::Auto {
            if decoded == 0 {
                first_decoded_t = t;
            }
            decoded += 1;
            if decoded > KEY_FRAMES_MEASURED {
                let every = (t - first_decoded_t) / f64::from(decoded - 1);
                if every > interval_ms * 1.5 {
                    return Err(LiveEnd::KeyFramesTooRare {
                        every_ms: every as u64,
                    });
                }
            }
        }
        if t + interval_ms / 4.0 < due_t {
            continue;
        }
        let captured_at = clock.stamp(t, now_ms());
        let jpeg = match frame.image {
            LiveImage::Jpeg(bytes) => bytes,
            LiveImage::Bgr(image) => encode(camera, &image)?,
        };
        keep(captured_at, &jpeg);
        spend.record(started.elapsed().as_secs_f64() * 1000.0);
        due_t += interval_ms;
        if due_t < t {
            due_t = t + interval_ms;
        }
    }
    Ok(())
}

/// An HTTP snapshot URL polled once per `interval`; the JPEG is passed through as served.
fn snapshots(
    camera: &CameraSource,
    settings: CaptureSettings,
    interval: Duration,
    keep: &impl Fn(i64, &[u8]),
    stop: &AtomicBool,
    up: &Liveness,
    spend: &metrics::Histogram,
) -> Result<(), String> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(u64::from(settings.read_timeout_ms)))
        .connect_timeout(Duration::from_millis(u64::from(settings.open_timeout_ms)))
        .build()
        .map_err(|e| e.to_string())?;
    let mut due = Instant::now();
    while !stop.load(Ordering::Acquire) {
        let started = Instant::now();
        // reqwest's errors name the URL: keep only what went wrong.
        let response = client
            .get(&camera.url)
            .send()
            .map_err(|e| format!("request failed ({})", error_kind(&e)))?;
        if !response.status().is_success() {
            return Err(format!("the camera answered {}", response.status()));
        }
        let bytes = response
            .bytes()
            .map_err(|e| format!("body failed ({})", error_kind(&e)))?;
        if !bytes.starts_with(&[0xFF, 0xD8]) {
            return Err("the snapshot is not a JPEG".into());
        }
        up.set(true);
        keep(now_ms(), &bytes);
        spend.record(started.elapsed().as_secs_f64() * 1000.0);
        due += interval;
        let now = Instant::now();
        if due > now {
            sleep_unless_stopped(due - now, stop);
        } else {
            due = now;
        }
    }
    Ok(())
}

/// What kind of failure a reqwest error is, without its URL.
fn error_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "broken"
    }
}

/// Sleeps `total`, waking early when `stop` is set.
fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    let end = Instant::now() + total;
    while !stop.load(Ordering::Acquire) {
        let now = Instant::now();
        if now >= end {
            return;
        }
        // A capture thread waits here between tries; it is its own thread, not an async worker.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep((end - now).min(Duration::from_millis(100)));
    }
}

/// Exponential backoff with jitter: 0.5 s, doubling up to the configured bound, each wait drawn
/// between half and all of it.
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new(max_ms: u64) -> Backoff {
        Backoff {
            next: Duration::from_millis(500),
            max: Duration::from_millis(max_ms.max(500)),
        }
    }

    fn reset(&mut self) {
        self.next = Duration::from_millis(500);
    }

    fn wait(&mut self, stop: &AtomicBool) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let jitter = 0.5 + f64::from(nanos % 1000) / 2000.0;
        sleep_unless_stopped(self.next.mul_f64(jitter), stop);
        self.next = (self.next * 2).min(self.max);
    }
}

/// Shared by the capture threads and the agent: whether to stop.
pub type StopFlag = Arc<AtomicBool>;

#[cfg(test)]
mod tests {
    use super::CaptureClock;

    #[test]
    fn capture_times_follow_the_stream_never_lead_arrival_and_only_rise() {
        let mut clock = CaptureClock::default();
        // Anchored at the first frame's arrival; the next arrive 100-600 ms late (network, decoder).
        assert_eq!(clock.stamp(0.0, 10_000), 10_000);
        assert_eq!(clock.stamp(1000.0, 11_300), 11_000);
        assert_eq!(clock.stamp(2000.0, 12_600), 12_000);
        // One frame arriving earlier than any before moves the anchor back: never in the future.
        assert_eq!(clock.stamp(3000.0, 12_900), 12_900);
        assert_eq!(clock.stamp(4000.0, 13_950), 13_900);
        // A burst 2.5 s late (a stall) keeps the stream's spacing.
        assert_eq!(clock.stamp(5000.0, 17_500), 14_900);
        assert_eq!(clock.stamp(6000.0, 17_550), 15_900);
        assert_eq!(clock.stamp(7000.0, 17_600), 16_900);
    }

    #[test]
    fn a_stream_that_stays_behind_is_re_anchored_forward() {
        let mut clock = CaptureClock::default();
        // A camera whose clock runs at half speed: each frame arrives 500 ms further behind.
        let stamps: Vec<i64> = (0..9)
            .map(|i| clock.stamp(500.0 * i as f64, 1000 * i))
            .collect();
        // Up to 2 s behind it is followed; the third frame in a row beyond that is re-anchored by the
        // least lateness of the three (2.5 s), and the stream's spacing goes on from there.
        assert_eq!(stamps, [0, 500, 1000, 1500, 2000, 2500, 3000, 6000, 6500]);
    }
}
