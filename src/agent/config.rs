//! `crow agent`'s configuration: the server, the spool and the cameras. Loaded from TOML
//! (`crow agent --config agent.toml`), then `CROW_AGENT_*` environment variables (`CROW_AGENT_SERVER`,
//! `CROW_AGENT_SPOOL_DIR`, …); the token comes from `CROW_TOKEN`, as for `crow stream`.

use std::path::{Path, PathBuf};

use crow_inference::{DecodeMode, JpegOutput, LiveOptions, RtspTransport};
use figment::providers::{Env, Format as _, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// What a camera's URL is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A stream the decoder reads: `rtsp://…`, an HTTP MJPEG stream, or a video file or folder of
    /// images (replayed, as `crow stream` does).
    #[default]
    Stream,
    /// An HTTP URL answering one JPEG per request (what ONVIF's GetSnapshotUri names), polled at the
    /// camera's rate.
    Snapshot,
}

/// How an RTSP camera's packets travel (`transport = "tcp"` or `"udp"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// Interleaved in the RTSP connection: works through NAT and firewalls.
    #[default]
    Tcp,
    /// RTP over UDP, where the camera offers it.
    Udp,
}

/// Which frames of an RTSP stream are decoded (`decode = "auto"`, `"key_frames"` or `"full"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecodeChoice {
    /// Key frames only while they come at least as often as the camera's `fps` wants (measured on the
    /// stream); every frame otherwise.
    #[default]
    Auto,
    /// Key frames only, whatever their interval.
    KeyFrames,
    /// Every frame.
    Full,
}

/// One camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraSource {
    /// The organization the camera belongs to.
    pub organization_id: String,
    /// The camera's id (its sessions and records are under it).
    pub camera_id: String,
    /// `rtsp://user:password@host/path`, `http://…`, or a file or folder path. The password is never
    /// printed: logs, errors and `crow agent check` show the URL redacted.
    pub url: String,
    /// How the URL is read.
    #[serde(default)]
    pub kind: SourceKind,
    /// Frames taken per second, by the agent's clock (files: of media time).
    #[serde(default = "default_fps")]
    pub fps: f64,
    /// JPEG quality of the frames sent (1-100); snapshots are passed through as the camera served them.
    #[serde(default = "default_quality")]
    pub jpeg_quality: i32,
    /// Frames wider than this are scaled down (aspect kept) before they are encoded; 0 keeps the
    /// camera's size. Snapshots are passed through as served.
    #[serde(default = "default_max_width")]
    pub max_width: u32,
    /// RTSP transport.
    #[serde(default)]
    pub transport: Transport,
    /// RTSP decoding.
    #[serde(default)]
    pub decode: DecodeChoice,
    /// A file holding the camera's password (its first line), put into the URL's user info at start
    /// (`url = "rtsp://viewer@host/…"`), so the configuration file holds no secret.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// An environment variable holding the camera's password, as `password_file`.
    #[serde(default)]
    pub password_env: Option<String>,
}

impl CameraSource {
    /// Puts the password of `password_file` or `password_env` into the URL (in memory only: logs,
    /// errors, metrics and status show the URL redacted). The error names the key at fault.
    fn resolve_password(&mut self) -> Result<(), String> {
        let password = match (&self.password_file, &self.password_env) {
            (None, None) => return Ok(()),
            (Some(_), Some(_)) => {
                return Err("password_file: set password_file or password_env, not both".into())
            }
            (Some(file), None) => std::fs::read_to_string(file)
                .map_err(|e| format!("password_file: {} cannot be read: {e}", file.display()))?
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
            (None, Some(var)) => std::env::var(var)
                .map_err(|_| format!("password_env: the environment variable {var} is not set"))?,
        };
        let key = if self.password_file.is_some() {
            "password_file"
        } else {
            "password_env"
        };
        self.url = with_password(&self.url, &password).map_err(|e| format!("{key}: {e}"))?;
        Ok(())
    }

    /// How the camera's stream is opened: RTSP transport as configured, key frames only unless
    /// `decode = "full"` (`"auto"` starts with key frames and measures them).
    pub fn live_options(&self, open_timeout_ms: u32, read_timeout_ms: u32) -> LiveOptions {
        LiveOptions {
            open_timeout_ms,
            read_timeout_ms,
            transport: match self.transport {
                Transport::Tcp => RtspTransport::Tcp,
                Transport::Udp => RtspTransport::Udp,
            },
            decode: match self.decode {
                DecodeChoice::Full => DecodeMode::Full,
                DecodeChoice::Auto | DecodeChoice::KeyFrames => DecodeMode::KeyFrames,
            },
            take_fps: self.fps,
            jpeg: JpegOutput {
                quality: self.jpeg_quality,
                max_width: self.max_width,
            },
        }
    }
}

/// `url` with `password` in its user info (`scheme://user:password@host/…`), the password
/// percent-encoded; the URL must name a user and no password.
fn with_password(url: &str, password: &str) -> Result<String, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("the url has no scheme (rtsp://, http://)")?;
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (user, host) = rest[..authority_end]
        .rsplit_once('@')
        .ok_or("the url names no user: write it as rtsp://user@host/… and the password goes in")?;
    if user.contains(':') {
        return Err("the url already holds a password: remove it from the url".into());
    }
    let encoded: String = password
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    Ok(format!(
        "{scheme}://{user}:{encoded}@{host}{}",
        &rest[authority_end..]
    ))
}

fn default_fps() -> f64 {
    1.0
}

fn default_quality() -> i32 {
    80
}

fn default_max_width() -> u32 {
    1280
}

/// The agent's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// The crow server: an ingest node, or the balancer in front of the ingest nodes.
    pub server: String,
    /// Where frames wait until the server has acknowledged them (one directory per camera).
    pub spool_dir: PathBuf,
    /// Bytes a camera's spool holds at most; beyond, its oldest frames are dropped (and counted).
    pub spool_max_bytes_per_camera: u64,
    /// Bytes all cameras' spools hold at most together (cameras x per-camera bound must fit).
    pub spool_max_bytes: u64,
    /// How long a camera may fail to open before its next try, at most (backoff doubles up to it).
    pub reconnect_max_ms: u64,
    /// A stream is given up on when it does not open within this long.
    pub open_timeout_ms: u32,
    /// A stream that yields no frame for this long is reopened.
    pub read_timeout_ms: u32,
    /// The cameras.
    pub cameras: Vec<CameraSource>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            server: "http://127.0.0.1:50051".into(),
            spool_dir: PathBuf::from("crow-agent-spool"),
            spool_max_bytes_per_camera: 1 << 30,
            spool_max_bytes: 16 << 30,
            reconnect_max_ms: 30_000,
            open_timeout_ms: 10_000,
            read_timeout_ms: 10_000,
            cameras: Vec::new(),
        }
    }
}

/// An agent configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("agent configuration: {0}")]
pub struct AgentConfigError(String);

impl AgentConfig {
    /// Loads defaults, then `file` (it must exist), then `CROW_AGENT_*` environment variables, and
    /// checks the result.
    pub fn load(file: &Path) -> Result<AgentConfig, AgentConfigError> {
        if !file.exists() {
            return Err(AgentConfigError(format!(
                "{} does not exist (see examples/agent.toml)",
                file.display()
            )));
        }
        let config: AgentConfig = Figment::from(Serialized::defaults(AgentConfig::default()))
            .merge(Toml::file(file))
            .merge(Env::prefixed("CROW_AGENT_"))
            .extract()
            .map_err(|e| AgentConfigError(e.to_string()))?;
        let mut config = config;
        let mut problems = config.problems();
        for (i, camera) in config.cameras.iter_mut().enumerate() {
            if let Err(e) = camera.resolve_password() {
                problems.push(format!("cameras[{i}].{e}"));
            }
        }
        if !problems.is_empty() {
            return Err(AgentConfigError(problems.join("; ")));
        }
        Ok(config)
    }

    /// What is wrong with the values, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.cameras.is_empty() {
            out.push("cameras: at least one [[cameras]] entry is needed".to_owned());
        }
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.cameras.iter().enumerate() {
            for (key, id) in [
                ("organization_id", &c.organization_id),
                ("camera_id", &c.camera_id),
            ] {
                if let Err(e) = crow_storage::validate::id(key, id) {
                    out.push(format!("cameras[{i}].{key}: {}", e.0));
                }
            }
            if !seen.insert((c.organization_id.clone(), c.camera_id.clone())) {
                out.push(format!(
                    "cameras[{i}]: camera {}/{} is listed twice",
                    c.organization_id, c.camera_id
                ));
            }
            if !(c.fps.is_finite() && c.fps > 0.0 && c.fps <= 30.0) {
                out.push(format!("cameras[{i}].fps: must be in (0, 30]"));
            }
            if !(1..=100).contains(&c.jpeg_quality) {
                out.push(format!("cameras[{i}].jpeg_quality: must be 1..=100"));
            }
            if c.kind == SourceKind::Snapshot && !c.url.starts_with("http") {
                out.push(format!(
                    "cameras[{i}].url: a snapshot camera needs an http(s):// URL"
                ));
            }
        }
        let needed = self
            .spool_max_bytes_per_camera
            .saturating_mul(self.cameras.len() as u64);
        if needed > self.spool_max_bytes {
            out.push(format!(
                "spool_max_bytes: {} cameras x spool_max_bytes_per_camera ({}) = {needed} exceeds it ({})",
                self.cameras.len(),
                self.spool_max_bytes_per_camera,
                self.spool_max_bytes
            ));
        }
        out
    }

    /// A camera's spool directory: `<spool_dir>/<org>/<camera>`.
    pub fn spool_of(&self, camera: &CameraSource) -> PathBuf {
        self.spool_dir
            .join(&camera.organization_id)
            .join(&camera.camera_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_from_a_file_or_the_environment_goes_into_the_url() {
        assert_eq!(
            with_password("rtsp://viewer@10.0.0.7:554/live", "p@ss:w/rd").unwrap(),
            "rtsp://viewer:p%40ss%3Aw%2Frd@10.0.0.7:554/live"
        );
        assert!(with_password("rtsp://10.0.0.7/live", "x")
            .unwrap_err()
            .contains("names no user"));
        assert!(with_password("rtsp://a:b@h/x", "x")
            .unwrap_err()
            .contains("already holds a password"));

        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("till.password");
        std::fs::write(&secret, "hunter2\n").unwrap();
        let file = dir.path().join("agent.toml");
        std::fs::write(
            &file,
            format!(
                "[[cameras]]\norganization_id = \"shop\"\ncamera_id = \"till\"\nurl = \"rtsp://viewer@cam/1\"\npassword_file = \"{}\"\n\n[[cameras]]\norganization_id = \"shop\"\ncamera_id = \"door\"\nurl = \"rtsp://viewer@cam/2\"\npassword_env = \"CROW_TEST_UNSET_CAMERA_PASSWORD\"\n",
                secret.display()
            ),
        )
        .unwrap();
        let err = AgentConfig::load(&file).unwrap_err().to_string();
        assert!(
            err.contains("cameras[1].password_env: the environment variable CROW_TEST_UNSET_CAMERA_PASSWORD is not set"),
            "{err}"
        );
        std::fs::write(
            &file,
            std::fs::read_to_string(&file)
                .unwrap()
                .replace("password_env = \"CROW_TEST_UNSET_CAMERA_PASSWORD\"\n", ""),
        )
        .unwrap();
        let config = AgentConfig::load(&file).unwrap();
        assert_eq!(config.cameras[0].url, "rtsp://viewer:hunter2@cam/1");
    }

    #[test]
    fn problems_name_their_keys() {
        let config = AgentConfig {
            spool_max_bytes: 10,
            spool_max_bytes_per_camera: 8,
            cameras: vec![
                CameraSource {
                    organization_id: "acme".into(),
                    camera_id: "door".into(),
                    url: "rtsp://x".into(),
                    kind: SourceKind::Snapshot,
                    fps: 0.0,
                    jpeg_quality: 80,
                    max_width: 1280,
                    transport: Transport::Tcp,
                    decode: DecodeChoice::Auto,
                    password_file: None,
                    password_env: None,
                },
                CameraSource {
                    organization_id: "acme".into(),
                    camera_id: "door".into(),
                    url: "/x".into(),
                    kind: SourceKind::Stream,
                    fps: 1.0,
                    jpeg_quality: 0,
                    max_width: 0,
                    transport: Transport::Udp,
                    decode: DecodeChoice::Full,
                    password_file: None,
                    password_env: None,
                },
            ],
            ..AgentConfig::default()
        };
        let problems = config.problems().join("\n");
        for needle in [
            "cameras[0].fps",
            "cameras[0].url",
            "cameras[1]: camera acme/door is listed twice",
            "cameras[1].jpeg_quality",
            "spool_max_bytes: 2 cameras",
        ] {
            assert!(problems.contains(needle), "{needle} in {problems}");
        }
        assert!(AgentConfig::default().problems()[0].starts_with("cameras:"));
    }
}
