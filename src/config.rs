//! [`Config`]: crow's one configuration struct.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::tls::TlsConfig;
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
    /// Listen address of the API: gRPC and HTTP/JSON (and the dashboard) on one port.
    pub listen: SocketAddr,
    /// Prometheus `/metrics` listen address; `None` disables the exporter.
    pub metrics_listen: Option<SocketAddr>,
    /// Pipeline settings.
    pub pipeline: PipelineConfig,
    /// Authentication (`CROW_JWT_SECRET` and `CROW_GATEWAY_KEY` override `secret` and `gateway_key`).
    pub auth: AuthConfig,
    /// TLS of the gRPC server (certificate, key, client certificates).
    pub tls: TlsConfig,
    /// Serve the web dashboard at `/` (the HTTP/JSON API is always served).
    pub dashboard: bool,
    /// Where records live: sled in `data_dir` (one node) or PostgreSQL (several nodes).
    pub storage: StorageConfig,
    /// The inference node (`crow serve --role infer`).
    pub infer: crate::infer::InferConfig,
}

/// The record store: interactions, outbox, dead letters, catalogs, cameras, analyses. Sessions, frames
/// and keyframes of the camera streams a node terminates stay in its sled database (`data_dir`) either way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `sled` (the embedded default) or `postgres`.
    pub backend: StorageBackend,
    /// PostgreSQL URL, e.g. `postgres://crow:secret@db.internal:5432/crow`; required with `postgres`
    /// (`CROW_STORAGE__POSTGRES_URL`).
    pub postgres_url: Option<String>,
    /// Connections this node keeps at most.
    pub postgres_max_connections: u32,
    /// How long a call waits for a connection before it fails as unavailable (and is retried).
    pub postgres_acquire_timeout_ms: u64,
}

/// Which [`StorageConfig`] backend holds the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// sled, in `data_dir`.
    Sled,
    /// PostgreSQL, at `postgres_url`.
    Postgres,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: StorageBackend::Sled,
            postgres_url: None,
            postgres_max_connections: 16,
            postgres_acquire_timeout_ms: 5_000,
        }
    }
}

impl StorageConfig {
    /// The PostgreSQL options of the `postgres` backend (`None` for sled).
    pub fn postgres_options(&self) -> Result<Option<crow_storage::PgOptions>, ConfigError> {
        if self.backend == StorageBackend::Sled {
            return Ok(None);
        }
        let url = self.postgres_url.clone().ok_or_else(|| {
            ConfigError("storage.backend = \"postgres\" needs storage.postgres_url".into())
        })?;
        Ok(Some(crow_storage::PgOptions {
            url,
            max_connections: self.postgres_max_connections,
            acquire_timeout: std::time::Duration::from_millis(self.postgres_acquire_timeout_ms),
        }))
    }

    /// Values that parse but cannot work, as (key, rule).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.backend == StorageBackend::Postgres && self.postgres_url.is_none() {
            out.push((
                "postgres_url",
                "required when backend = \"postgres\"".into(),
            ));
        }
        if self.postgres_max_connections == 0 {
            out.push(("postgres_max_connections", "must be at least 1".into()));
        }
        if self.postgres_acquire_timeout_ms == 0 {
            out.push(("postgres_acquire_timeout_ms", "must be at least 1".into()));
        }
        out
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("crow-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            pipeline: PipelineConfig::default(),
            auth: AuthConfig::default(),
            tls: TlsConfig::default(),
            dashboard: true,
            storage: StorageConfig::default(),
            infer: Default::default(),
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

/// The documented reference configuration (`examples/crow.toml`): every setting with its default and
/// environment variable. `crow config default` prints it.
pub const REFERENCE: &str = include_str!("../examples/crow.toml");

/// One problem [`Config::check`] found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// 1-based line of the offending key (or of the syntax error), when it can be located.
    pub line: Option<usize>,
    /// Dotted key, e.g. `pipeline.batch_size`; empty for a syntax error.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: ")?,
            None => write!(f, "(no line): ")?,
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// The top-level keys a file may have (the environment may carry other `CROW_*` variables, so
/// [`Config`] itself tolerates unknown top-level keys; a file should not).
const TOP_LEVEL_KEYS: [&str; 9] = [
    "data_dir",
    "listen",
    "metrics_listen",
    "dashboard",
    "pipeline",
    "auth",
    "tls",
    "storage",
    "infer",
];

/// Most problems reported for one file.
const MAX_PROBLEMS: usize = 64;

impl Config {
    /// Checks the text of a TOML configuration file without loading it: syntax, unknown keys, values of
    /// the wrong type, and values that parse but cannot work. Returns every problem found (not only the
    /// first), each with its line; an empty list means the file is valid. Environment variables are not
    /// consulted.
    pub fn check(text: &str) -> Vec<ConfigProblem> {
        let original = match toml_edit::ImDocument::parse(text.to_owned()) {
            Ok(doc) => doc,
            Err(e) => {
                return vec![ConfigProblem {
                    line: e.span().map(|s| line_at(text, s.start)),
                    key: String::new(),
                    message: e.message().trim().to_owned(),
                }]
            }
        };
        let mut problems = Vec::new();
        let mut doc = original.clone().into_mut();
        for (key, _) in original.as_table().iter() {
            if !TOP_LEVEL_KEYS.contains(&key) {
                problems.push(problem(&original, &[key.to_owned()], "unknown key".into()));
                doc.remove(key);
            }
        }
        // serde stops at the first error: report it, drop the offending key, and go again.
        while problems.len() < MAX_PROBLEMS {
            let current = doc.to_string();
            match toml::from_str::<Config>(&current) {
                Ok(config) => {
                    for (key, rule) in config.pipeline.problems() {
                        let path: Vec<String> = std::iter::once("pipeline")
                            .chain(key.split('.'))
                            .map(str::to_owned)
                            .collect();
                        problems.push(problem(&original, &path, rule));
                    }
                    for (key, rule) in config.tls.problems() {
                        let path = ["tls".to_owned(), key.to_owned()];
                        problems.push(problem(&original, &path, rule));
                    }
                    for (key, rule) in config.storage.problems() {
                        let path = ["storage".to_owned(), key.to_owned()];
                        problems.push(problem(&original, &path, rule));
                    }
                    if !["HS256", "RS256", "ES256"].contains(&config.auth.algorithm.as_str()) {
                        let path = ["auth".to_owned(), "algorithm".to_owned()];
                        problems.push(problem(
                            &original,
                            &path,
                            "must be HS256, RS256 or ES256".into(),
                        ));
                    }
                    break;
                }
                Err(e) => {
                    let path = toml_edit::ImDocument::parse(current.clone())
                        .ok()
                        .zip(e.span())
                        .map(|(d, span)| path_at(d.as_table(), span.start))
                        .unwrap_or_default();
                    problems.push(problem(&original, &path, e.message().trim().to_owned()));
                    if path.is_empty() || !remove(doc.as_table_mut(), &path) {
                        break;
                    }
                }
            }
        }
        problems.sort_by_key(|p| p.line);
        problems
    }
}

fn problem(doc: &toml_edit::ImDocument<String>, path: &[String], message: String) -> ConfigProblem {
    ConfigProblem {
        line: key_span(doc.as_table(), path).map(|s| line_at(doc.raw(), s.start)),
        key: path.join("."),
        message,
    }
}

/// 1-based line of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The span of the key at `path`.
fn key_span(table: &dyn toml_edit::TableLike, path: &[String]) -> Option<std::ops::Range<usize>> {
    let (first, rest) = path.split_first()?;
    let (key, item) = table.get_key_value(first)?;
    if rest.is_empty() {
        return key.span().or_else(|| item.span());
    }
    key_span(item.as_table_like()?, rest)
}

/// The dotted path of the deepest key whose key or value contains `offset`.
fn path_at(table: &dyn toml_edit::TableLike, offset: usize) -> Vec<String> {
    for (name, item) in table.iter() {
        let key_hit = table
            .key(name)
            .and_then(|k| k.span())
            .is_some_and(|s| s.contains(&offset));
        let value_hit = item.span().is_some_and(|s| s.contains(&offset));
        let inner = item
            .as_table_like()
            .map(|t| path_at(t, offset))
            .unwrap_or_default();
        if !inner.is_empty() {
            return std::iter::once(name.to_owned()).chain(inner).collect();
        }
        if key_hit || value_hit {
            return vec![name.to_owned()];
        }
    }
    Vec::new()
}

/// Removes the key at `path`; `false` if there is none.
fn remove(table: &mut dyn toml_edit::TableLike, path: &[String]) -> bool {
    match path {
        [] => false,
        [last] => table.remove(last).is_some(),
        [first, rest @ ..] => table
            .get_mut(first)
            .and_then(|i| i.as_table_like_mut())
            .is_some_and(|t| remove(t, rest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_file_is_exactly_the_defaults_and_names_every_setting() {
        assert_eq!(Config::check(REFERENCE), vec![]);
        let parsed: Config = toml::from_str(REFERENCE).unwrap();
        assert_eq!(parsed, Config::default());
        // Every setting with a default appears in the file, uncommented.
        fn keys(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
            for (k, v) in table {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match v {
                    toml::Value::Table(t) => keys(&path, t, out),
                    _ => out.push(path),
                }
            }
        }
        let (mut expected, mut found) = (Vec::new(), Vec::new());
        keys(
            "",
            &toml::Table::try_from(Config::default()).unwrap(),
            &mut expected,
        );
        keys("", &toml::from_str(REFERENCE).unwrap(), &mut found);
        expected.sort();
        found.sort();
        assert_eq!(found, expected);
    }

    #[test]
    fn check_names_every_unknown_key_and_bad_value_with_its_line() {
        let text = "\
data_dir = \"d\"
colour = \"blue\"

[pipeline]
batch_size = -5
batch_sise = 3
duplicate_threshold = 2.0

[pipeline.limits]
max_page_size = 0
max_fps_per_session = \"fast\"
";
        let problems = Config::check(text);
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let has = |line: usize, key: &str| {
            problems
                .iter()
                .any(|p| p.line == Some(line) && p.key == key)
        };
        assert!(has(2, "colour"), "{shown:#?}");
        assert!(has(5, "pipeline.batch_size"), "{shown:#?}");
        assert!(has(6, "pipeline.batch_sise"), "{shown:#?}");
        assert!(has(7, "pipeline.duplicate_threshold"), "{shown:#?}");
        assert!(has(10, "pipeline.limits.max_page_size"), "{shown:#?}");
        assert!(has(11, "pipeline.limits.max_fps_per_session"), "{shown:#?}");
        assert_eq!(problems.len(), 6, "{shown:#?}");
        let syntax = Config::check("[pipeline\nbatch_size = 1\n");
        assert_eq!(syntax.len(), 1);
        assert_eq!(syntax[0].line, Some(1), "{syntax:?}");
    }
}
