//! [`Config`]: crow's one configuration struct.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::PipelineConfig;
use crow_grpc_api::auth::{AuthConfig, Authenticator};

/// Every setting of a crow server. Sources, later ones winning: built-in defaults, a TOML file, then
/// environment variables `CROW_<KEY>` (nested keys with `__`, e.g. `CROW_PIPELINE__BATCH_SIZE=10`).
///
/// ```toml
/// data_dir = "crow-data"
/// listen = "127.0.0.1:50051"
/// metrics_listen = "127.0.0.1:9464"
///
/// [pipeline]
/// batch_size = 5
/// batch_timeout_ms = 60000
/// duplicate_threshold = 0.003
/// describer = "opencv"     # or "off"
/// describer_slots = 2
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// Unknown top-level keys are tolerated so that unrelated `CROW_*` variables do not break start-up; the
// pipeline section rejects unknown keys, which catches typos there.
#[serde(default)]
pub struct Config {
    /// Directory of the sled database.
    pub data_dir: PathBuf,
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// Prometheus `/metrics` listen address; `None` disables the exporter.
    pub metrics_listen: Option<SocketAddr>,
    /// Pipeline settings.
    pub pipeline: PipelineConfig,
    /// Authentication (`CROW_JWT_SECRET` and `CROW_GATEWAY_KEY` override `secret` and `gateway_key`).
    pub auth: AuthConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("crow-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            pipeline: PipelineConfig::default(),
            auth: AuthConfig::default(),
        }
    }
}

/// A configuration that cannot be loaded.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Loads defaults, then `file` (if given; it must exist), then `CROW_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file(file));
        }
        let mut config: Config = figment
            .merge(Env::prefixed("CROW_").split("__"))
            .extract()
            .map_err(|e| ConfigError(e.to_string()))?;
        if let Ok(secret) = std::env::var("CROW_JWT_SECRET") {
            config.auth.secret = Some(secret);
        }
        if let Ok(key) = std::env::var("CROW_GATEWAY_KEY") {
            config.auth.gateway_key = Some(key);
        }
        Ok(config)
    }

    /// The authenticator this configuration describes; `dev` disables authentication.
    pub fn authenticator(&self, dev: bool) -> Result<Authenticator, ConfigError> {
        if dev {
            return Ok(Authenticator::disabled());
        }
        Authenticator::new(&self.auth).map_err(|e| ConfigError(e.to_string()))
    }
}
