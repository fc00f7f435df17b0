//! [`Pipeline`]: the handle callers (the gRPC services, an embedding application) use to drive a node's
//! actors. It hands out the jobs' own handles — [`SessionIngress`] for camera sessions and frames,
//! [`RecordServices`] for interactions, catalogs, cameras and analyses, [`AskService`] for questions —
//! and owns start-up (startup.rs: what each cluster role starts) and shutdown.

use std::sync::Arc;
use std::time::Duration;

use crow_storage::{Records, Store};

use crate::ask::AskService;
use crate::cluster::Role;
use crate::describer_pool::DescriberFactory;
use crate::record_services::RecordServices;
use crate::retention::DiskState;
use crate::semantic::SemanticSearch;
use crate::session_ingress::SessionIngress;
use crate::startup::RunningNode;
use crate::{PipelineConfig, PipelineError, Unready};

/// What [`Pipeline::shutdown`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Session actors that were running.
    pub sessions: usize,
    /// Of those, sessions whose descriptions did not finish before the deadline.
    pub sessions_cut_off: usize,
    /// Batches emitted from pending descriptions during the drain.
    pub batches_flushed: u64,
    /// Stored batches still without their interaction at the end (resumed on the next start).
    pub batches_unanalyzed: usize,
    /// Analyses still queued or running at the end (re-run on the next start).
    pub analyses_unfinished: usize,
}

/// Handle to a running pipeline. Cheap to clone; dropping the last clone does not stop it — call
/// [`Pipeline::shutdown`].
#[derive(Clone)]
pub struct Pipeline {
    pub(crate) inner: Arc<RunningNode>,
}

impl Pipeline {
    /// Starts the actors on `store` (the node's sled: sessions, frames, batches, keyframes) writing records
    /// to `records` (the same sled in a single process, PostgreSQL in a cluster), with the describer
    /// chosen in `config` (the embedded OpenCV describer, a llama.cpp vision model — loaded and checked
    /// here, so a bad model file fails start-up — or none). Sessions left open by a previous run resume
    /// their unfinished work. What starts depends on the node's role (`pipeline.cluster.role`).
    pub async fn start(
        store: Store,
        records: Records,
        config: PipelineConfig,
    ) -> Result<Pipeline, PipelineError> {
        let node = crate::startup::start(store, records, config).await?;
        Ok(Pipeline {
            inner: Arc::new(node),
        })
    }

    /// Like [`Pipeline::start`], with a caller-supplied describer factory (one describer per slot).
    pub async fn start_with_describer(
        store: Store,
        records: Records,
        config: PipelineConfig,
        factory: Option<DescriberFactory>,
    ) -> Result<Pipeline, PipelineError> {
        let node = crate::startup::start_with_describer(store, records, config, factory).await?;
        Ok(Pipeline {
            inner: Arc::new(node),
        })
    }

    /// Camera sessions: open, route frames, look up, close.
    pub fn sessions(&self) -> &SessionIngress {
        &self.inner.sessions
    }

    /// Interactions through the outbox, dead letters, catalogs, cameras, analyses, live patterns.
    pub fn record_services(&self) -> &RecordServices {
        &self.inner.services
    }

    /// Questions answered from the records (`Ask`).
    pub fn ask_service(&self) -> &AskService {
        &self.inner.ask
    }

    /// The node's sled store: sessions, frame tracking, batches, keyframes (and, in a single process,
    /// the records too).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Where records, the outbox, catalogs, cameras and analyses live.
    pub fn records(&self) -> &Records {
        &self.inner.records
    }

    /// Search by meaning; `None` when it is off, its model is missing, or this node's role does not
    /// serve the API.
    pub fn search(&self) -> Option<&Arc<SemanticSearch>> {
        self.inner.search.as_ref()
    }

    /// This node's role in a cluster (`all` in a single process).
    pub fn role(&self) -> Role {
        self.inner.config.cluster.role
    }

    /// The configuration in force.
    pub fn config(&self) -> &PipelineConfig {
        &self.inner.config
    }

    /// Whether everything this node depends on answers now: the record store and, on the ingest and
    /// analyze roles, NATS. `Err` says which does not.
    pub async fn ready(&self) -> Result<(), Unready> {
        let records = &self.inner.records;
        records
            .ready()
            .await
            .map_err(|error| Unready::RecordStore {
                backend: records.backend(),
                error,
            })?;
        if let Some(bus) = &self.inner.bus {
            if !bus.connected() {
                return Err(Unready::NatsDisconnected);
            }
        }
        Ok(())
    }

    /// The data directory's free space as retention last measured it (see
    /// `pipeline.retention.min_free_disk_bytes`).
    pub fn disk(&self) -> &DiskState {
        &self.inner.disk
    }

    /// Makes every write done so far durable (group commit; see [`Store::sync`]).
    pub async fn sync(&self) -> Result<(), PipelineError> {
        self.inner.store.sync().await?;
        Ok(self.inner.records.sync().await?)
    }

    /// Stops the pipeline gracefully within `pipeline.shutdown_timeout_ms`: every running session
    /// finishes its in-flight descriptions and emits its pending descriptions as batches, the analyzer
    /// turns the stored batches into interactions and running analyses finish — each for as long as the
    /// deadline allows — then the actors stop and storage is flushed. Work the deadline cuts off stays in
    /// sled (undescribed frames, unanalyzed batches, unfinished analyses) and resumes on the next start;
    /// sessions stay open. Call it after the gRPC server has stopped taking frames.
    pub async fn shutdown(&self) -> ShutdownReport {
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(self.inner.config.shutdown_timeout_ms);
        let mut report = ShutdownReport::default();
        // No more sessions taken over from dead nodes.
        if let Some(watch) = self
            .inner
            .orphan_watch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            watch.abort();
        }
        let drained = self.inner.sessions.drain(deadline).await;
        report.sessions = drained.sessions;
        report.sessions_cut_off = drained.cut_off;
        report.batches_flushed = drained.batches;
        // The analyzer and the analysis pool work through their mailboxes; wait for what is stored to be
        // done (both are durable: whatever is left is picked up on the next start).
        loop {
            let batches = self
                .inner
                .store
                .run(|s| s.unanalyzed_batches())
                .await
                .map_or(0, |b| b.len());
            // This node's own: in a cluster the shared store also lists other nodes' analyses.
            let analyses = self
                .inner
                .analyses_unfinished
                .load(std::sync::atomic::Ordering::SeqCst);
            report.batches_unanalyzed = batches;
            report.analyses_unfinished = analyses;
            if (batches == 0 && analyses == 0) || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.inner
            .supervisor
            .stop_children_and_wait(None, Some(Duration::from_secs(5)))
            .await;
        self.inner
            .supervisor
            .stop_and_wait(None, Some(Duration::from_secs(5)))
            .await
            .ok();
        if let Err(e) = self.inner.store.sync().await {
            tracing::error!(error = %e, "final flush failed");
        }
        report
    }
}
