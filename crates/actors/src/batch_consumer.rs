//! An analyze node's batch consumer: the cluster's batches from JetStream, analysed here.
//!
//! A delivery is what JetStream counts against `max_deliver`, so this consumer spends one only on an
//! attempt that could fail for a reason of the batch's own:
//! - it fetches only as many batches as it has free slots, so no batch waits in a local buffer while
//!   its `ack_wait` runs out;
//! - while the record store is unavailable (an outage of any length) it keeps the batch, tells
//!   JetStream it is still working on it (`+WPI`, which restarts `ack_wait` without a redelivery) and
//!   tries again; it fetches nothing new meanwhile, since every slot waits on the same store.
//!
//! A batch whose analysis failed otherwise is handed back (`-NAK` with a pause) and delivered again, to
//! this node or another; after `max_deliver` deliveries JetStream names it in an advisory and it moves
//! to `CROW_DEAD_BATCHES` (see [`crate::cluster`]).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use futures::StreamExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crow_storage::BatchRecord;

use crate::analyzer::{analyze, is_unavailable, AnalyzerArgs, STORE_RETRY};
use crate::cluster::Bus;
use crate::metrics_names as m;

/// How long one fetch waits for batches before asking again.
const FETCH_EXPIRY: Duration = Duration::from_secs(5);

/// An analyze node's part: batches from the analyzers' durable consumer, `args.slots` at once, each
/// acknowledged once its record is stored. Runs until its task is aborted.
pub(crate) async fn consume(bus: Bus, args: Arc<AnalyzerArgs>) {
    let slots = Arc::new(Semaphore::new(args.slots.max(1)));
    let progress_every = Duration::from_millis(bus.settings().ack_wait_ms) / 3;
    // Looked up once, and again after a failure.
    let mut analyzers: Option<jetstream::consumer::PullConsumer> = None;
    loop {
        // Wait for a free slot, then take every free slot there is.
        let Ok(first) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let mut permits = vec![first];
        while let Ok(p) = Arc::clone(&slots).try_acquire_owned() {
            permits.push(p);
        }
        let consumer = match analyzers.take() {
            Some(c) => c,
            None => match bus.analyzers().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reach the analyzers' consumer; retrying");
                    tokio::time::sleep(STORE_RETRY).await;
                    continue;
                }
            },
        };
        let batch = consumer
            .fetch()
            .max_messages(permits.len())
            .expires(FETCH_EXPIRY)
            .messages()
            .await;
        let mut messages = match batch {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "cannot fetch batches from JetStream; retrying");
                tokio::time::sleep(STORE_RETRY).await;
                continue;
            }
        };
        let mut fetched_cleanly = true;
        while let Some(message) = messages.next().await {
            let message = match message {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "batch fetch interrupted");
                    fetched_cleanly = false;
                    break;
                }
            };
            let Some(permit) = permits.pop() else {
                // More than asked for: never happens; JetStream delivers it again after ack_wait.
                break;
            };
            tokio::spawn(process(message, Arc::clone(&args), permit, progress_every));
        }
        if fetched_cleanly {
            analyzers = Some(consumer);
        }
        // Unused permits go back with `permits`.
    }
}

/// Analyses one delivered batch and answers JetStream for it.
async fn process(
    message: jetstream::Message,
    args: Arc<AnalyzerArgs>,
    _permit: OwnedSemaphorePermit,
    progress_every: Duration,
) {
    let batch: BatchRecord = match serde_json::from_slice(&message.payload) {
        Ok(b) => b,
        Err(e) => {
            // Never analysable: no redelivery (it stays in the stream for inspection).
            tracing::error!(error = %e, subject = %message.subject, "undecodable batch message");
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
    };
    let mut last_progress = tokio::time::Instant::now();
    let mut waited = false;
    let (label, answer) = loop {
        match analyze(&args, &batch, false, false).await {
            Ok(()) => break ("ok", message.double_ack().await),
            Err(e) if is_unavailable(&e) => {
                if !waited {
                    tracing::warn!(session_id = %batch.session_id, batch_index = batch.batch_index, error = %e, "record store unavailable; keeping the batch until it answers");
                    waited = true;
                }
                metrics::counter!(m::BATCHES_CONSUMED, "outcome" => "retry").increment(1);
                if last_progress.elapsed() >= progress_every {
                    // Still ours: restarts ack_wait without a redelivery (nor a delivery spent).
                    if let Err(e) = message.ack_with(AckKind::Progress).await {
                        tracing::warn!(error = %e, "could not tell JetStream the batch is in progress");
                    }
                    last_progress = tokio::time::Instant::now();
                }
                tokio::time::sleep(STORE_RETRY).await;
            }
            Err(e) => {
                tracing::error!(session_id = %batch.session_id, batch_index = batch.batch_index, error = %e, "batch analysis failed; redelivered");
                break (
                    "failed",
                    message.ack_with(AckKind::Nak(Some(STORE_RETRY))).await,
                );
            }
        }
    };
    metrics::counter!(m::BATCHES_CONSUMED, "outcome" => label).increment(1);
    if let Err(e) = answer {
        // Not answered: JetStream delivers it again after ack_wait; its record is stored once all
        // the same.
        tracing::warn!(session_id = %batch.session_id, batch_index = batch.batch_index, error = %e, "batch acknowledgement lost");
    }
}
