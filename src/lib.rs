//! # crow
//!
//! crow turns CCTV camera streams (and, later, web and social events) into structured customer-interaction
//! records. This crate is the embeddable library; the `crow` binary is a thin CLI over it.
//!
//! | module / item | what it is |
//! |---|---|
//! | [`Crow`], [`CrowBuilder`] | start the pipeline in-process (no gRPC needed) |
//! | [`Config`] | every setting, loaded from TOML + `CROW_*` environment variables |
//! | [`server`] | serve the gRPC API (`crow.v1`) for a running [`Crow`] |
//! | [`infer`] | `crow serve --role infer`: the OpenAI-compatible inference server over llama.cpp models |
//! | [`agent`] | `crow agent`: cameras (RTSP, MJPEG, snapshots, files) -> disk spool -> a crow server |
//! | [`client`] | stream a video / image / folder to a crow server over gRPC |
//! | [`tls`] | server and client TLS (certificates checked at load, failures explained) |
//! | [`ingest`] | feed media straight into an in-process pipeline |
//! | [`truth`] | measure crow's counts against footage with exact truth (`crow bench truth`) |
//! | [`storage`] | durable records: sled ([`storage::Store`]) or PostgreSQL ([`storage::PgStore`]), one [`storage::RecordStore`] trait |
//! | [`inference`] | OpenCV decoding, duplicate gate, frame describers ([`inference::FrameDescriber`]) |
//! | [`actors`] | the supervised ractor pipeline ([`actors::Pipeline`]) |
//! | [`proto`] | the generated gRPC types and clients |
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let crow = crow::Crow::builder().data_dir("./crow-data").build().await?;
//! let report = crow::ingest::ingest_media(crow.pipeline(), "video.avi", "acme", "cam-1", Some(2.0)).await?;
//! let page = crow.records().list_interactions("acme", &Default::default(), 50, None).await?;
//! println!("{} frames, {} interactions", report.frames_sent, page.interactions.len());
//! crow.shutdown().await;
//! # Ok(()) }
//! ```
// Tests may wait on threads and flush directly (clippy.toml forbids both in product code).
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod agent;
pub mod client;
pub mod config;
pub mod infer;
pub mod ingest;
pub mod server;
pub mod tls;
pub mod truth;

pub use config::{Config, ConfigError, ConfigProblem};
pub use crow_actors as actors;
pub use crow_actors::{DescriberKind, Pipeline, PipelineConfig, PipelineError};
pub use crow_grpc_api::auth;
pub use crow_grpc_api::http;
pub use crow_grpc_api::proto;
pub use crow_grpc_api::store_metrics;
pub use crow_inference as inference;
pub use crow_storage as storage;

use std::path::PathBuf;
use std::sync::Arc;

/// A running crow pipeline, embedded in the current process.
pub struct Crow {
    pipeline: Pipeline,
}

/// Builds a [`Crow`]. Defaults: data in `./crow-data`, the pipeline settings of [`PipelineConfig::default`].
#[derive(Default)]
pub struct CrowBuilder {
    data_dir: Option<PathBuf>,
    temporary: bool,
    pipeline: PipelineConfig,
    describer: Option<actors::DescriberFactory>,
    records: Option<RecordsChoice>,
}

/// Where [`CrowBuilder`] keeps records when told other than sled.
enum RecordsChoice {
    Postgres(storage::PgOptions),
    Store(storage::Records),
}

impl CrowBuilder {
    /// Where sled keeps its files.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Keep everything in memory (nothing survives the process).
    pub fn temporary(mut self) -> Self {
        self.temporary = true;
        self
    }

    /// Pipeline settings.
    pub fn pipeline_config(mut self, config: PipelineConfig) -> Self {
        self.pipeline = config;
        self
    }

    /// Use a custom describer (one instance per slot) instead of the one `pipeline_config` names.
    pub fn describer(mut self, factory: actors::DescriberFactory) -> Self {
        self.describer = Some(factory);
        self
    }

    /// Keep records (interactions, outbox, catalogs, cameras, analyses) in PostgreSQL, migrating its
    /// schema at start; sessions, frames and keyframes stay in sled (`data_dir`).
    pub fn postgres(mut self, options: storage::PgOptions) -> Self {
        self.records = Some(RecordsChoice::Postgres(options));
        self
    }

    /// Keep records in a [`storage::RecordStore`] of your own.
    pub fn records(mut self, records: storage::Records) -> Self {
        self.records = Some(RecordsChoice::Store(records));
        self
    }

    /// Opens storage and starts the actors.
    pub async fn build(self) -> Result<Crow, PipelineError> {
        let store = if self.temporary {
            storage::Store::temporary()?
        } else {
            let dir = self
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("crow-data"));
            // Opening reads the database (and may wait for its lock): blocking work.
            tokio::task::spawn_blocking(move || storage::Store::open(dir))
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?
        };
        let records: storage::Records = match self.records {
            None => Arc::new(store.clone()),
            Some(RecordsChoice::Store(records)) => records,
            Some(RecordsChoice::Postgres(options)) => {
                Arc::new(storage::PgStore::connect(&options).await?)
            }
        };
        let pipeline = match self.describer {
            Some(factory) => {
                Pipeline::start_with_describer(store, records, self.pipeline, Some(factory)).await?
            }
            None => Pipeline::start(store, records, self.pipeline).await?,
        };
        Ok(Crow { pipeline })
    }
}

impl Crow {
    /// A builder with defaults.
    pub fn builder() -> CrowBuilder {
        CrowBuilder::default()
    }

    /// Starts crow as `config` describes (data dir, record store and pipeline settings).
    pub async fn from_config(config: &Config) -> Result<Crow, PipelineError> {
        let mut builder = Crow::builder()
            .data_dir(&config.data_dir)
            .pipeline_config(config.pipeline.clone());
        if let Some(options) = config
            .storage
            .postgres_options()
            .map_err(|e| PipelineError::InvalidArgument(e.to_string()))?
        {
            builder = builder.postgres(options);
        }
        builder.build().await
    }

    /// The pipeline handle (sessions, frames).
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The node's sled store (sessions, frames, keyframes; and the records, with the sled backend).
    pub fn store(&self) -> &storage::Store {
        self.pipeline.store()
    }

    /// Where records live (sled or PostgreSQL).
    pub fn records(&self) -> &storage::Records {
        self.pipeline.records()
    }

    /// Stops the actors gracefully (see [`Pipeline::shutdown`]) and flushes storage.
    pub async fn shutdown(&self) -> actors::ShutdownReport {
        self.pipeline.shutdown().await
    }
}
