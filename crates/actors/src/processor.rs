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

use crow_storage::{now_ms, OutboxEntry, OutboxFailure, Product, Store};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::config::InteractionsConfig;
use crate::events::process;
use crate::metrics_names as m;

/// Catalog products considered when looking for product names in an event's text.
const CATALOG_LIMIT: usize = 1_000;

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
    pub store: Store,
    pub config: Arc<InteractionsConfig>,
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
        let mut state = ProcessorState {
            args,
            waiting: 0,
            armed: false,
        };
        // Events acknowledged before a stop are still in the outbox: schedule them.
        let (n, _) = state.args.store.outbox_status()?;
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
                state.drain()?;
                // Schedule the earliest retry, if any.
                let (n, next) = state.args.store.outbox_status()?;
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
    fn drain(&mut self) -> Result<(), ActorProcessingErr> {
        let batch_size = self.args.config.outbox_batch_size.max(1);
        loop {
            let due = self.args.store.outbox_due(now_ms(), batch_size)?;
            let full = due.len() == batch_size;
            // Each organization's catalog is read once per batch, not once per event.
            let mut catalogs: HashMap<String, Result<Vec<Product>, String>> = HashMap::new();
            for entry in &due {
                let org = &entry.record.organization_id;
                let catalog = catalogs.entry(org.clone()).or_insert_with(|| {
                    self.args
                        .store
                        .catalog(org, CATALOG_LIMIT)
                        .map_err(|e| e.to_string())
                });
                self.process_one(entry, catalog)?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    fn process_one(
        &self,
        entry: &OutboxEntry,
        catalog: &Result<Vec<Product>, String>,
    ) -> Result<(), ActorProcessingErr> {
        let store = &self.args.store;
        let record = &entry.record;
        let outcome = self.check_fault(entry).and_then(|()| {
            let interaction = process(record, catalog.as_ref().map_err(Clone::clone)?);
            store
                .complete_outbox(entry, &interaction)
                .map_err(|e| e.to_string())
        });
        match outcome {
            Ok(_) => {
                metrics::counter!(m::OUTBOX_PROCESSED).increment(1);
                metrics::counter!(m::INTERACTIONS_WRITTEN).increment(1);
            }
            Err(error) => {
                let c = &self.args.config;
                let retry_at = now_ms() + c.retry_delay_ms as i64;
                match store.fail_outbox(entry, &error, c.max_retries, retry_at)? {
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
