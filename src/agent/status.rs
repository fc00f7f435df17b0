//! The agent's status, for `crow agent status`: the running agent writes it to
//! `<spool_dir>/status.json` every [`EVERY`] and once more as it exits; the command reads it and prints
//! one line per camera. A status older than [`STALE_AFTER_MS`] is from an agent that stopped or hangs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How often a running agent rewrites its status.
pub const EVERY: Duration = Duration::from_secs(2);

/// A status this old (ms) is not from a running agent.
pub const STALE_AFTER_MS: i64 = 10_000;

/// What the agent reports about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// The agent's process id.
    pub pid: u32,
    /// When this status was written (ms since the epoch).
    pub written_at_ms: i64,
    /// False in the status written as the agent exits.
    pub running: bool,
    /// The server the agent forwards to.
    pub server: String,
    /// One entry per camera of the configuration.
    pub cameras: Vec<CameraStatus>,
}

/// One camera's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraStatus {
    /// `<org>/<camera>`.
    pub camera: String,
    /// The camera's URL, password redacted.
    pub url: String,
    /// Whether the camera delivers frames now.
    pub up: bool,
    /// Whether only key frames are decoded now (RTSP).
    pub key_frames_only: bool,
    /// When the last frame was captured (ms since the epoch).
    pub last_frame_ms: Option<i64>,
    /// Frames captured (and spooled) since the agent started.
    pub captured: u64,
    /// Frames the server acknowledged since the agent started.
    pub sent: u64,
    /// Frames pushed out of the full spool since the agent started.
    pub dropped: u64,
    /// Times the camera was reopened since the agent started.
    pub reconnects: u64,
    /// Whether the last attempt to reach the server succeeded.
    pub server_reachable: bool,
    /// Frames waiting in the spool.
    pub spooled_frames: u64,
    /// Their bytes.
    pub spooled_bytes: u64,
    /// Capture time of the oldest waiting frame (ms since the epoch).
    pub oldest_spooled_ms: Option<i64>,
}

/// Why the status cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// No status file: the agent never ran with this spool directory.
    #[error("no agent status in {0}: the agent has not run with this configuration's spool_dir (start it with `crow agent run --config …`)")]
    Missing(PathBuf),
    /// The file is there but unreadable.
    #[error("the agent status {path} cannot be read: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Where an agent with `spool_dir` keeps its status.
pub fn path(spool_dir: &Path) -> PathBuf {
    spool_dir.join("status.json")
}

/// Writes `status` atomically (a reader never sees half of it).
pub fn write(spool_dir: &Path, status: &AgentStatus) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(status).map_err(std::io::Error::other)?;
    let tmp = spool_dir.join("status.json.tmp");
    std::fs::write(&tmp, json)?;
    std::fs::rename(tmp, path(spool_dir))
}

/// Reads the status an agent with `spool_dir` wrote last.
pub fn read(spool_dir: &Path) -> Result<AgentStatus, StatusError> {
    let file = path(spool_dir);
    let bytes = match std::fs::read(&file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StatusError::Missing(spool_dir.to_owned()))
        }
        Err(e) => {
            return Err(StatusError::Unreadable {
                path: file,
                reason: e.to_string(),
            })
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| StatusError::Unreadable {
        path: file,
        reason: e.to_string(),
    })
}

/// `1.5 s`, `3 min`, `2.0 h`.
fn age(ms: i64) -> String {
    let s = ms.max(0) as f64 / 1000.0;
    if s < 120.0 {
        format!("{s:.1} s")
    } else if s < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

impl AgentStatus {
    /// Whether the agent that wrote this is running, as of `now_ms`.
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.running && now_ms - self.written_at_ms <= STALE_AFTER_MS
    }

    /// The header line and one line per camera, as of `now_ms`.
    pub fn lines(&self, now_ms: i64) -> Vec<String> {
        let mut out = vec![if self.is_live(now_ms) {
            format!(
                "agent running (pid {}), server {}, status {} old",
                self.pid,
                self.server,
                age(now_ms - self.written_at_ms)
            )
        } else {
            format!(
                "agent NOT running: last status from pid {} {} ago (server {})",
                self.pid,
                age(now_ms - self.written_at_ms),
                self.server
            )
        }];
        for c in &self.cameras {
            let state = match (self.is_live(now_ms), c.up) {
                (false, _) => "stopped",
                (true, true) => "up",
                (true, false) => "DOWN",
            };
            let last = c.last_frame_ms.map_or("no frame yet".to_owned(), |t| {
                format!("last frame {} ago", age(now_ms - t))
            });
            let spool = match c.oldest_spooled_ms {
                Some(oldest) => format!(
                    "spool {} frames ({:.1} MiB, oldest {} ago)",
                    c.spooled_frames,
                    c.spooled_bytes as f64 / 1048576.0,
                    age(now_ms - oldest)
                ),
                None => "spool empty".to_owned(),
            };
            let server = if c.server_reachable {
                ""
            } else {
                ", server unreachable"
            };
            out.push(format!(
                "{:<24} {state:<7} {last}; {spool}{server}; captured {}, sent {}, dropped {}, reconnects {}{}",
                c.camera,
                c.captured,
                c.sent,
                c.dropped,
                c.reconnects,
                // The decode mode of a stream that delivered; a camera never reached has none yet.
                if c.key_frames_only && c.last_frame_ms.is_some() {
                    ", key frames only"
                } else {
                    ""
                }
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camera(up: bool) -> CameraStatus {
        CameraStatus {
            camera: "acme/door".into(),
            url: "rtsp://u:***@cam/1".into(),
            up,
            key_frames_only: true,
            last_frame_ms: Some(9_000),
            captured: 10,
            sent: 7,
            dropped: 0,
            reconnects: 1,
            server_reachable: false,
            spooled_frames: 3,
            spooled_bytes: 3 << 20,
            oldest_spooled_ms: Some(7_000),
        }
    }

    #[test]
    fn a_status_round_trips_and_reads_as_lines() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(read(dir.path()), Err(StatusError::Missing(_))));
        let status = AgentStatus {
            pid: 42,
            written_at_ms: 10_000,
            running: true,
            server: "http://x:50051".into(),
            cameras: vec![camera(true)],
        };
        write(dir.path(), &status).unwrap();
        assert_eq!(read(dir.path()).unwrap(), status);
        let lines = status.lines(10_500).join("\n");
        assert!(lines.contains("agent running (pid 42)"), "{lines}");
        assert!(lines.contains("acme/door"), "{lines}");
        assert!(lines.contains(" up "), "{lines}");
        assert!(lines.contains("last frame 1.5 s ago"), "{lines}");
        assert!(
            lines.contains("spool 3 frames (3.0 MiB, oldest 3.5 s ago), server unreachable"),
            "{lines}"
        );
        assert!(lines.contains(", key frames only"), "{lines}");
        let never = AgentStatus {
            cameras: vec![CameraStatus {
                up: false,
                last_frame_ms: None,
                ..camera(false)
            }],
            ..status.clone()
        };
        let lines = never.lines(10_500).join("\n");
        assert!(lines.contains("no frame yet"), "{lines}");
        assert!(
            !lines.contains("key frames"),
            "no stream, no decode mode: {lines}"
        );
        // Old news: the agent is not running any more.
        let lines = status.lines(10_000 + STALE_AFTER_MS + 1).join("\n");
        assert!(lines.contains("agent NOT running"), "{lines}");
        assert!(lines.contains("stopped"), "{lines}");
    }
}
