//! Per-organization stream limits and per-camera frame rates for `StreamFrames`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tonic::Status;

/// Counts open frame streams per organization and meters each camera's frames with a token bucket
/// (`max_fps_per_session` tokens per second, a burst of one second). A camera's streams share one bucket,
/// so opening more streams for the same camera buys no extra rate.
#[derive(Debug)]
pub(crate) struct StreamLimiter {
    max_streams_per_org: u32,
    max_fps: u32,
    orgs: Mutex<HashMap<String, OrgStreams>>,
}

#[derive(Debug, Default)]
struct OrgStreams {
    open: u32,
    cameras: HashMap<String, Camera>,
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
            max_streams_per_org,
            max_fps,
            orgs: Mutex::new(HashMap::new()),
        })
    }

    fn orgs(&self) -> std::sync::MutexGuard<'_, HashMap<String, OrgStreams>> {
        // The map is consistent after every statement; a panic elsewhere cannot leave it half-written.
        self.orgs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a stream for `camera` of `org`, or refuses it when the organization is at its limit.
    pub(crate) fn open(self: &Arc<Self>, org: &str, camera: &str) -> Result<StreamSlot, Status> {
        let mut orgs = self.orgs();
        let entry = orgs.entry(org.to_owned()).or_default();
        if self.max_streams_per_org > 0 && entry.open >= self.max_streams_per_org {
            return Err(Status::resource_exhausted(format!(
                "this organization already has {} frame streams open (pipeline.limits.max_streams_per_org)",
                entry.open
            )));
        }
        entry.open += 1;
        let cam = entry.cameras.entry(camera.to_owned()).or_insert(Camera {
            streams: 0,
            tokens: f64::from(self.max_fps),
            refilled: Instant::now(),
        });
        cam.streams += 1;
        Ok(StreamSlot {
            limiter: Arc::clone(self),
            org: org.to_owned(),
            camera: camera.to_owned(),
        })
    }
}

/// One open stream; dropping it closes the stream's slot.
#[derive(Debug)]
pub(crate) struct StreamSlot {
    limiter: Arc<StreamLimiter>,
    org: String,
    camera: String,
}

impl StreamSlot {
    /// Takes one frame's token from the camera's bucket; `false` when the camera is over its rate.
    pub(crate) fn admit_frame(&self) -> bool {
        let rate = f64::from(self.limiter.max_fps);
        if rate == 0.0 {
            return true;
        }
        let mut orgs = self.limiter.orgs();
        let Some(cam) = orgs
            .get_mut(&self.org)
            .and_then(|o| o.cameras.get_mut(&self.camera))
        else {
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
        let mut orgs = self.limiter.orgs();
        let Some(org) = orgs.get_mut(&self.org) else {
            return;
        };
        org.open = org.open.saturating_sub(1);
        if let Some(cam) = org.cameras.get_mut(&self.camera) {
            cam.streams = cam.streams.saturating_sub(1);
            if cam.streams == 0 {
                org.cameras.remove(&self.camera);
            }
        }
        if org.open == 0 {
            orgs.remove(&self.org);
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
