//! `InteractionProcessor`: drains the outbox of `CreateInteraction` into interaction records.
//!
//! Events are processed once `outbox_batch_size` of them wait or `outbox_batch_timeout_ms` after the first
//! arrived. Each event is stored by one transaction that also removes it from the outbox, so a crash
//! before that transaction leaves it in the outbox (processed after restart) and a crash after it leaves
//! it stored — never both, never neither. A failed event is retried `max_retries` times,
//! `retry_delay_ms` apart, then moved to the dead letters.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crow_storage::{now_ms, OutboxEntry, OutboxFailure, Product, Records, StorageError};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::config::InteractionsConfig;
use crate::events::process;
use crate::metrics_names as m;

/// Catalog products considered when looking for product names in an event's text.
const CATALOG_LIMIT: usize = 1_000;

/// How long the processor waits before trying again while the record store is unavailable.
const STORE_RETRY: Duration = Duration::from_secs(1);

pub(crate) enum ProcessorMsg {
    /// An event was accepted into the outbox.
    Enqueued,
    /// Process every due event now.
    Drain,
}

/// Fault injection for tests: events whose summary contains this text fail processing.
#[cfg(feature = "fault-injection")]
pub(crate) type FaultHook = Arc<std::sync::Mutex<Option<String>>>;

#[derive(Clone)]
pub(crate) struct ProcessorArgs {
    pub records: Records,
    pub config: Arc<InteractionsConfig>,
    /// Whether this process drains the outbox (`false` on ingest and api nodes of a cluster, where
    /// events are only accepted).
    pub active: bool,
    /// Also drain this often: other processes enqueue into a shared outbox without telling this one.
    pub poll: Option<Duration>,
    #[cfg(feature = "fault-injection")]
    pub fault: FaultHook,
}

pub(crate) struct ProcessorState {
    args: ProcessorArgs,
    /// Events accepted since the last drain.
    waiting: usize,
    /// A drain is scheduled.
    armed: bool,
}

pub(crate) struct InteractionProcessor;

impl Actor for InteractionProcessor {
    type Msg = ProcessorMsg;
    type State = ProcessorState;
    type Arguments = ProcessorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ProcessorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let active = args.active;
        let poll = args.poll;
        let mut state = ProcessorState {
            args,
            waiting: 0,
            armed: false,
        };
        if !active {
            return Ok(state);
        }
        if let Some(every) = poll {
            myself.send_interval(every, || ProcessorMsg::Drain);
        }
        // Events acknowledged before a stop are still in the outbox: schedule them.
        let (n, _) = state.args.records.outbox_status().await?;
        if n > 0 {
            tracing::info!(events = n, "outbox holds events from before a restart");
            myself.cast(ProcessorMsg::Drain)?;
        }
        metrics::gauge!(m::OUTBOX_DEPTH).set(n as f64);
        state.armed = n > 0;
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if !state.args.active {
            return Ok(());
        }
        match msg {
            ProcessorMsg::Enqueued => {
                metrics::gauge!(m::OUTBOX_DEPTH).increment(1.0);
                state.waiting += 1;
                if state.waiting >= state.args.config.outbox_batch_size {
                    state.waiting = 0;
                    myself.cast(ProcessorMsg::Drain)?;
                } else if !state.armed {
                    state.armed = true;
                    myself.send_after(
                        Duration::from_millis(state.args.config.outbox_batch_timeout_ms),
                        || ProcessorMsg::Drain,
                    );
                }
            }
            ProcessorMsg::Drain => {
                state.armed = false;
                state.waiting = 0;
                match state.drain().await {
                    Ok(()) => {}
                    Err(StorageError::Unavailable(error)) => {
                        // Not the events' fault: no attempt is counted; try again shortly.
                        tracing::warn!(error, "the record store is unavailable; the outbox waits");
                        state.armed = true;
                        myself.send_after(STORE_RETRY, || ProcessorMsg::Drain);
                        return Ok(());
                    }
                    Err(e) => return Err(e.into()),
                }
                // Schedule the earliest retry, if any.
                let (n, next) = state.args.records.outbox_status().await?;
                metrics::gauge!(m::OUTBOX_DEPTH).set(n as f64);
                if let Some(next) = next {
                    let delay = (next - now_ms()).max(0) as u64;
                    state.armed = true;
                    myself.send_after(Duration::from_millis(delay), || ProcessorMsg::Drain);
                }
            }
        }
        Ok(())
    }
}

impl ProcessorState {
    /// Processes due events in batches until none is due.
    async fn drain(&mut self) -> Result<(), StorageError> {
        let batch_size = self.args.config.outbox_batch_size.max(1);
        loop {
            let due = self.args.records.claim_outbox(now_ms(), batch_size).await?;
            let full = due.len() == batch_size;
            // Each organization's catalog is read once per batch, not once per event.
            let mut catalogs: HashMap<String, Result<Vec<Product>, String>> = HashMap::new();
            for entry in &due {
                let org = &entry.record.organization_id;
                if !catalogs.contains_key(org) {
                    let catalog = match self.args.records.catalog(org, CATALOG_LIMIT).await {
                        Err(e @ StorageError::Unavailable(_)) => return Err(e),
                        catalog => catalog.map_err(|e| e.to_string()),
                    };
                    catalogs.insert(org.clone(), catalog);
                }
                self.process_one(entry, &catalogs[org]).await?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    async fn process_one(
        &self,
        entry: &OutboxEntry,
        catalog: &Result<Vec<Product>, String>,
    ) -> Result<(), StorageError> {
        let records = &self.args.records;
        let record = &entry.record;
        let outcome = match self.check_fault(entry).and_then(|()| {
            catalog
                .as_ref()
                .map(|c| process(record, c))
                .map_err(Clone::clone)
        }) {
            Ok(interaction) => match records.complete_outbox(entry, &interaction).await {
                Err(e @ StorageError::Unavailable(_)) => return Err(e),
                done => done.map_err(|e| e.to_string()),
            },
            Err(e) => Err(e),
        };
        match outcome {
            Ok(_) => {
                metrics::counter!(m::OUTBOX_PROCESSED).increment(1);
                metrics::counter!(m::INTERACTIONS_WRITTEN).increment(1);
            }
            Err(error) => {
                let c = &self.args.config;
                let retry_at = now_ms() + c.retry_delay_ms as i64;
                match records
                    .fail_outbox(entry, &error, c.max_retries, retry_at)
                    .await?
                {
                    OutboxFailure::Retry { attempts } => {
                        metrics::counter!(m::OUTBOX_RETRIES).increment(1);
                        tracing::warn!(id = %record.id, org_id = %record.organization_id, attempts, error, "processing failed; will retry");
                    }
                    OutboxFailure::DeadLettered { attempts } => {
                        metrics::counter!(m::DEAD_LETTERS).increment(1);
                        tracing::error!(id = %record.id, org_id = %record.organization_id, attempts, error, "processing failed on every attempt; moved to dead letters");
                    }
                    OutboxFailure::Gone => {}
                }
            }
        }
        Ok(())
    }

    #[cfg(feature = "fault-injection")]
    fn check_fault(&self, entry: &OutboxEntry) -> Result<(), String> {
        let marker = self.args.fault.lock().map(|g| g.clone()).unwrap_or(None);
        match (marker, &entry.record.summary) {
            (Some(m), Some(s)) if s.contains(&m) => {
                Err("fault injection: processing made to fail".to_owned())
            }
            _ => Ok(()),
        }
    }

    #[cfg(not(feature = "fault-injection"))]
    fn check_fault(&self, _entry: &OutboxEntry) -> Result<(), String> {
        Ok(())
    }
}
