//! Distributed mode: node roles, and NATS JetStream between the nodes that ingest camera streams and the
//! nodes that analyse their batches.
//!
//! - An **ingest** node terminates camera streams as a single process does (sessions, frames and
//!   batches in its own sled), but hands each batch to JetStream instead of analysing it: subject
//!   `crow.batches.<organization>.<camera>` on stream `CROW_BATCHES`, with `Nats-Msg-Id` =
//!   `<session>:<batch index>`, so a batch re-published after a crash (it stays marked unanalyzed in sled
//!   until JetStream acknowledged it) is stored once by the stream.
//! - An **analyze** node pulls batches from the durable consumer `analyzers` (explicit acks, redelivery
//!   after `ack_wait_ms`, at most `max_deliver` deliveries), matches products and writes the record to the
//!   shared PostgreSQL store, then acknowledges. The record's id is derived from (session, batch index)
//!   and inserted if absent, so a redelivered batch never yields a second record. A batch that failed
//!   `max_deliver` times is moved to the stream `CROW_DEAD_BATCHES` (JetStream's max-deliveries advisory
//!   names it; it is fetched by sequence, re-published there and deleted). Analyze nodes also drain the
//!   shared outbox of `CreateInteraction` events (each claims what it processes).
//! - An **api** node serves queries and accepts events into the outbox; it neither ingests nor analyses.
//! - **all** (the default) is one process doing everything in-process, without NATS.

use std::str::FromStr;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use crow_storage::BatchRecord;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use crate::PipelineError;

pub(crate) mod orphans;

/// What a crow process does in a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, in-process (one machine; no NATS).
    #[default]
    All,
    /// Camera streams: decode, detect, gate, describe, batch; batches go to JetStream.
    Ingest,
    /// Batches from JetStream and events from the outbox into records.
    Analyze,
    /// Queries, catalogs, cameras, analyses; events accepted into the outbox.
    Api,
    /// An inference server (OpenAI-compatible chat completions over the node's llama.cpp models) for the
    /// other nodes' `remote` describers and text tasks; it runs no pipeline.
    Infer,
}

impl Role {
    /// The role's name, as configured.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Ingest => "ingest",
            Role::Analyze => "analyze",
            Role::Api => "api",
            Role::Infer => "infer",
        }
    }

    /// Whether camera streams are taken here.
    pub fn ingests(self) -> bool {
        matches!(self, Role::All | Role::Ingest)
    }

    /// Whether this node turns batches and events into records.
    pub fn analyzes(self) -> bool {
        matches!(self, Role::All | Role::Analyze)
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "all" => Ok(Role::All),
            "ingest" => Ok(Role::Ingest),
            "analyze" => Ok(Role::Analyze),
            "api" => Ok(Role::Api),
            "infer" => Ok(Role::Infer),
            other => Err(format!(
                "unknown role {other:?}: expected all, ingest, analyze, api or infer"
            )),
        }
    }
}

/// `[pipeline.cluster]`: this node's role and how it reaches NATS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// `all` (one process, the default), `ingest`, `analyze`, `api` or `infer`; `crow serve --role`
    /// overrides.
    pub role: Role,
    /// NATS server URLs, comma-separated (e.g. `nats://10.0.0.5:4222,nats://10.0.0.6:4222`); required by
    /// the ingest and analyze roles.
    pub nats_url: Option<String>,
    /// Copies of each stream kept by a NATS cluster (1 for a single server; 3 survives the loss of one
    /// of three servers).
    pub replicas: usize,
    /// A batch not acknowledged this long after delivery is delivered again (to any analyze node).
    pub ack_wait_ms: u64,
    /// Deliveries of a batch at most; then it is moved to `CROW_DEAD_BATCHES`.
    pub max_deliver: i64,
    /// How often an analyze node looks into the shared outbox for events other nodes accepted.
    pub outbox_poll_ms: u64,
    /// How long a session's journal (`CROW_SESSIONS`: every frame outcome, description and batch, and
    /// the bytes of frames awaiting description) is kept. A camera can move to another ingest node
    /// within this time of its session's last entry; sessions last an hour.
    pub journal_max_age_ms: u64,
    /// This node's name in the cluster (logs, the camera bucket); default: `<role>-<id>`, made once
    /// and kept in the data directory, so that a restarted node is the same node and keeps its sessions.
    pub node_id: Option<String>,
    /// An ingest node that has not said it is alive for this long is dead: another ingest node takes
    /// over each of its sessions whose camera did not come back and closes it, so that the frames the
    /// dead node acknowledged reach records. Ingest nodes say they are alive every third of it.
    pub orphan_after_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            role: Role::All,
            nats_url: None,
            replicas: 1,
            ack_wait_ms: 30_000,
            max_deliver: 5,
            outbox_poll_ms: 500,
            journal_max_age_ms: 3 * 3_600_000,
            node_id: None,
            orphan_after_ms: 30_000,
        }
    }
}

impl ClusterConfig {
    /// Values that parse but cannot work, as (key, rule).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if matches!(self.role, Role::Ingest | Role::Analyze) && self.nats_url.is_none() {
            out.push((
                "cluster.nats_url",
                format!("required by the {} role", self.role.as_str()),
            ));
        }
        if !(1..=5).contains(&self.replicas) {
            out.push(("cluster.replicas", "must be 1..=5".into()));
        }
        if self.ack_wait_ms < 1_000 {
            out.push(("cluster.ack_wait_ms", "must be at least 1000".into()));
        }
        if self.max_deliver < 1 {
            out.push(("cluster.max_deliver", "must be at least 1".into()));
        }
        if self.journal_max_age_ms < 3_600_000 {
            out.push((
                "cluster.journal_max_age_ms",
                "must be at least 3600000 (a session lasts an hour)".into(),
            ));
        }
        if self.outbox_poll_ms == 0 {
            out.push(("cluster.outbox_poll_ms", "must be at least 1".into()));
        }
        if self.orphan_after_ms < 1_500 {
            out.push((
                "cluster.orphan_after_ms",
                "must be at least 1500 (nodes say they are alive every third of it)".into(),
            ));
        }
        out
    }
}

/// Stream of batches waiting for analysis.
pub const BATCH_STREAM: &str = "CROW_BATCHES";
/// Stream of batches that failed on every delivery.
pub const DEAD_BATCH_STREAM: &str = "CROW_DEAD_BATCHES";
/// The analyze nodes' shared durable consumer.
pub const ANALYZERS: &str = "analyzers";

/// A connection to NATS JetStream with crow's streams in place. Cheap to clone.
#[derive(Clone)]
pub struct Bus {
    client: async_nats::Client,
    js: jetstream::Context,
    config: ClusterConfig,
    /// This node's name (see [`ClusterConfig::node_id`]).
    node: String,
    /// Each camera's current session (ingest role).
    cameras: Option<crate::journal::CameraSessions>,
    /// The live ingest nodes.
    nodes: Option<crate::journal::LiveNodes>,
}

/// A failure to reach or use NATS.
#[derive(Debug, thiserror::Error)]
#[error("nats: {0}")]
pub struct BusError(String);

fn bus_err(e: impl std::fmt::Display) -> BusError {
    BusError(e.to_string())
}

/// A subject token: NATS subjects split on `.` and treat `*`, `>` and whitespace specially; crow's ids
/// are `[A-Za-z0-9._-]`, so only the dot needs replacing.
fn token(s: &str) -> String {
    s.replace('.', "_")
}

impl Bus {
    /// Connects (retrying while the servers are unreachable) as the node `node` and creates crow's
    /// streams and the analyzers' consumer where they do not exist.
    pub async fn connect(config: &ClusterConfig, node: String) -> Result<Bus, PipelineError> {
        let url = config.nats_url.clone().ok_or_else(|| {
            PipelineError::InvalidArgument("pipeline.cluster.nats_url is not set".into())
        })?;
        let servers = url
            .split(',')
            .map(|u| u.trim().parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                PipelineError::InvalidArgument(format!("pipeline.cluster.nats_url {url:?}: {e}"))
            })?;
        let client = async_nats::ConnectOptions::new()
            .name(format!("crow-{}", config.role.as_str()))
            .retry_on_initial_connect()
            .connect(servers)
            .await
            .map_err(|e| PipelineError::Unavailable(format!("connecting to NATS at {url}: {e}")))?;
        let js = jetstream::new(client.clone());
        let mut bus = Bus {
            client,
            js,
            config: config.clone(),
            node,
            cameras: None,
            nodes: None,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            // A cluster that just started may not have elected a JetStream leader yet.
            match bus.ensure_streams().await {
                Ok((cameras, nodes)) => {
                    bus.cameras = Some(cameras);
                    bus.nodes = Some(nodes);
                    return Ok(bus);
                }
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!(error = %e, "JetStream not ready; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(PipelineError::Unavailable(e.to_string())),
            }
        }
    }

    async fn ensure_streams(
        &self,
    ) -> Result<(crate::journal::CameraSessions, crate::journal::LiveNodes), BusError> {
        let replicas = self.config.replicas;
        self.js
            .get_or_create_stream(crate::journal::stream_config(
                replicas,
                Duration::from_millis(self.config.journal_max_age_ms),
            ))
            .await
            .map_err(bus_err)?;
        let cameras = crate::journal::CameraSessions::open(&self.js, replicas)
            .await
            .map_err(bus_err)?;
        let nodes = crate::journal::LiveNodes::open(
            &self.js,
            replicas,
            Duration::from_millis(self.config.orphan_after_ms),
        )
        .await
        .map_err(bus_err)?;
        let batches = self
            .js
            .get_or_create_stream(stream::Config {
                name: BATCH_STREAM.into(),
                subjects: vec!["crow.batches.>".into()],
                storage: stream::StorageType::File,
                num_replicas: replicas,
                // Republishing within this window is deduplicated by Nats-Msg-Id; later repeats are
                // caught by the records' unique ids.
                duplicate_window: Duration::from_secs(600),
                // Work queue: a batch leaves the stream once an analyze node acknowledged it.
                retention: stream::RetentionPolicy::WorkQueue,
                ..Default::default()
            })
            .await
            .map_err(bus_err)?;
        self.js
            .get_or_create_stream(stream::Config {
                name: DEAD_BATCH_STREAM.into(),
                subjects: vec!["crow.dead.batches.>".into()],
                storage: stream::StorageType::File,
                num_replicas: replicas,
                ..Default::default()
            })
            .await
            .map_err(bus_err)?;
        batches
            .get_or_create_consumer(
                ANALYZERS,
                consumer::pull::Config {
                    durable_name: Some(ANALYZERS.into()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_millis(self.config.ack_wait_ms),
                    max_deliver: self.config.max_deliver,
                    num_replicas: replicas,
                    ..Default::default()
                },
            )
            .await
            .map_err(bus_err)?;
        Ok((cameras, nodes))
    }

    /// The largest message the NATS servers take, bytes (their `max_payload`).
    pub fn max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }

    /// This node's name in the cluster.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The JetStream context (session journals).
    pub(crate) fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// Each camera's current session, cluster-wide.
    pub(crate) fn cameras(&self) -> Option<&crate::journal::CameraSessions> {
        self.cameras.as_ref()
    }

    /// The live ingest nodes' bucket.
    pub(crate) fn nodes(&self) -> Option<&crate::journal::LiveNodes> {
        self.nodes.as_ref()
    }

    /// The `[pipeline.cluster]` settings.
    pub(crate) fn settings(&self) -> &ClusterConfig {
        &self.config
    }

    /// Whether the connection is up now (readiness).
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Hands a stored batch to JetStream; returns once the stream stored it (or already had it).
    pub async fn publish_batch(&self, batch: &BatchRecord) -> Result<(), BusError> {
        let subject = format!(
            "crow.batches.{}.{}",
            token(&batch.organization_id),
            token(&batch.camera_id)
        );
        let payload = serde_json::to_vec(batch).map_err(bus_err)?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Nats-Msg-Id",
            format!("{}:{}", batch.session_id, batch.batch_index).as_str(),
        );
        self.js
            .publish_with_headers(subject, headers, payload.into())
            .await
            .map_err(bus_err)?
            .await
            .map_err(bus_err)?;
        Ok(())
    }

    /// The analyzers' consumer.
    pub(crate) async fn analyzers(&self) -> Result<consumer::PullConsumer, BusError> {
        self.js
            .get_stream(BATCH_STREAM)
            .await
            .map_err(bus_err)?
            .get_consumer(ANALYZERS)
            .await
            .map_err(bus_err)
    }

    /// Moves batches that reached `max_deliver` to [`DEAD_BATCH_STREAM`], as JetStream's advisories
    /// name them, until the connection closes. Every analyze node runs this; the move is deduplicated
    /// by the original sequence number.
    pub(crate) async fn dead_letter_batches(self) {
        let subject =
            format!("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{BATCH_STREAM}.{ANALYZERS}");
        let mut advisories = match self.client.subscribe(subject).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot watch for undeliverable batches");
                return;
            }
        };
        while let Some(advisory) = advisories.next().await {
            let Some(seq) = serde_json::from_slice::<serde_json::Value>(&advisory.payload)
                .ok()
                .and_then(|v| v["stream_seq"].as_u64())
            else {
                continue;
            };
            if let Err(e) = self.move_to_dead(seq).await {
                tracing::error!(seq, error = %e, "could not move an undeliverable batch");
            }
        }
    }

    async fn move_to_dead(&self, seq: u64) -> Result<(), BusError> {
        let stream = self.js.get_stream(BATCH_STREAM).await.map_err(bus_err)?;
        let message = match stream.get_raw_message(seq).await {
            Ok(m) => m,
            // Another analyze node moved it first.
            Err(_) => return Ok(()),
        };
        let subject = message
            .subject
            .as_str()
            .replacen("crow.batches.", "crow.dead.batches.", 1);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("dead:{seq}").as_str());
        self.js
            .publish_with_headers(subject, headers, message.payload)
            .await
            .map_err(bus_err)?
            .await
            .map_err(bus_err)?;
        stream.delete_message(seq).await.map_err(bus_err)?;
        tracing::error!(
            seq,
            "a batch failed on every delivery; moved to {DEAD_BATCH_STREAM}"
        );
        metrics::counter!(crate::metrics_names::DEAD_BATCHES).increment(1);
        Ok(())
    }
}
