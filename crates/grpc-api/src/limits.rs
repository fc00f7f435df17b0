//! Per-organization caps on long-lived streams, and per-camera frame rates for `StreamFrames`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tonic::Status;

/// Locks a map that is consistent after every statement, so a panic elsewhere cannot leave it
/// half-written and poisoning carries no meaning.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Counts open streams of one kind per organization against a maximum (0 = unlimited).
#[derive(Debug)]
pub(crate) struct OrgSlots {
    max: u32,
    /// The setting, named in the refusal.
    setting: &'static str,
    /// What is counted, for the refusal ("frame streams").
    what: &'static str,
    open: Mutex<HashMap<String, u32>>,
}

impl OrgSlots {
    pub(crate) fn new(max: u32, setting: &'static str, what: &'static str) -> Arc<OrgSlots> {
        Arc::new(OrgSlots {
            max,
            setting,
            what,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one of `org`'s slots, or refuses with RESOURCE_EXHAUSTED naming the setting.
    pub(crate) fn acquire(self: &Arc<Self>, org: &str) -> Result<OrgSlot, Status> {
        let mut open = lock(&self.open);
        let n = open.entry(org.to_owned()).or_default();
        if self.max > 0 && *n >= self.max {
            return Err(Status::resource_exhausted(format!(
                "this organization already has {n} {} open ({})",
                self.what, self.setting
            )));
        }
        *n += 1;
        Ok(OrgSlot {
            slots: Arc::clone(self),
            org: org.to_owned(),
        })
    }
}

/// One open stream; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct OrgSlot {
    slots: Arc<OrgSlots>,
    org: String,
}

impl Drop for OrgSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.slots.open);
        if let Some(n) = open.get_mut(&self.org) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.org);
            }
        }
    }
}

/// Frame streams: a slot of the organization's `max_streams_per_org`, and each camera's frames metered
/// with a token bucket (`max_fps_per_session` tokens per second, a burst of one second). A camera's
/// streams share one bucket, so opening more streams for the same camera buys no extra rate.
#[derive(Debug)]
pub(crate) struct StreamLimiter {
    streams: Arc<OrgSlots>,
    max_fps: u32,
    cameras: Mutex<HashMap<(String, String), Camera>>,
}

#[derive(Debug)]
struct Camera {
    streams: u32,
    tokens: f64,
    refilled: Instant,
}

impl StreamLimiter {
    /// 0 disables either limit.
    pub(crate) fn new(max_streams_per_org: u32, max_fps: u32) -> Arc<StreamLimiter> {
        Arc::new(StreamLimiter {
            streams: OrgSlots::new(
                max_streams_per_org,
                "pipeline.limits.max_streams_per_org",
                "frame streams",
            ),
            max_fps,
            cameras: Mutex::new(HashMap::new()),
        })
    }

    /// Opens a stream for `camera` of `org`, or refuses it when the organization is at its limit.
    pub(crate) fn open(self: &Arc<Self>, org: &str, camera: &str) -> Result<StreamSlot, Status> {
        let slot = self.streams.acquire(org)?;
        let key = (org.to_owned(), camera.to_owned());
        lock(&self.cameras)
            .entry(key.clone())
            .or_insert(Camera {
                streams: 0,
                tokens: f64::from(self.max_fps),
                refilled: Instant::now(),
            })
            .streams += 1;
        metrics::gauge!(crow_actors::metrics_names::STREAMS_OPEN).increment(1.0);
        Ok(StreamSlot {
            limiter: Arc::clone(self),
            camera: key,
            _slot: slot,
        })
    }
}

/// One open frame stream; dropping it closes the stream's slot.
#[derive(Debug)]
pub(crate) struct StreamSlot {
    limiter: Arc<StreamLimiter>,
    camera: (String, String),
    _slot: OrgSlot,
}

impl StreamSlot {
    /// Takes one frame's token from the camera's bucket; `false` when the camera is over its rate.
    pub(crate) fn admit_frame(&self) -> bool {
        let rate = f64::from(self.limiter.max_fps);
        if rate == 0.0 {
            return true;
        }
        let mut cameras = lock(&self.limiter.cameras);
        let Some(cam) = cameras.get_mut(&self.camera) else {
            return true;
        };
        let now = Instant::now();
        let elapsed = now.duration_since(cam.refilled).as_secs_f64();
        cam.tokens = (cam.tokens + elapsed * rate).min(rate);
        cam.refilled = now;
        if cam.tokens >= 1.0 {
            cam.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// The refusal carried by a frame over the rate.
    pub(crate) fn over_rate_reason(&self) -> String {
        format!(
            "RESOURCE_EXHAUSTED: camera is over pipeline.limits.max_fps_per_session ({} frames/s); \
             the frame was not recorded, resend it later",
            self.limiter.max_fps
        )
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        metrics::gauge!(crow_actors::metrics_names::STREAMS_OPEN).decrement(1.0);
        let mut cameras = lock(&self.limiter.cameras);
        if let Some(cam) = cameras.get_mut(&self.camera) {
            cam.streams = cam.streams.saturating_sub(1);
            if cam.streams == 0 {
                cameras.remove(&self.camera);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_counted_per_organization_and_released_on_drop() {
        let l = StreamLimiter::new(2, 0);
        let a = l.open("org-a", "cam-1").unwrap();
        let _b = l.open("org-a", "cam-2").unwrap();
        let err = l.open("org-a", "cam-3").unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(err
            .message()
            .contains("pipeline.limits.max_streams_per_org"));
        // Another organization has its own count.
        let _c = l.open("org-b", "cam-1").unwrap();
        drop(a);
        l.open("org-a", "cam-3").unwrap();
    }

    #[test]
    fn a_camera_gets_one_second_of_burst_then_its_rate_shared_by_its_streams() {
        let l = StreamLimiter::new(0, 5);
        let s1 = l.open("org", "cam").unwrap();
        let s2 = l.open("org", "cam").unwrap();
        let admitted = (0..10)
            .filter(|i| if i % 2 == 0 { &s1 } else { &s2 }.admit_frame())
            .count();
        assert_eq!(
            admitted, 5,
            "burst of one second at 5 fps, shared by both streams"
        );
        assert!(s1.over_rate_reason().contains("max_fps_per_session"));
        // Another camera has its own bucket.
        assert!(l.open("org", "cam-2").unwrap().admit_frame());
        std::thread::sleep(std::time::Duration::from_millis(450));
        assert!(s1.admit_frame(), "tokens refill at the configured rate");
    }
}
