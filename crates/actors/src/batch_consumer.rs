//! An analyze node's batch consumer: the cluster's batches from JetStream, analysed here.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crow_storage::BatchRecord;

use crate::analyzer::{analyze, is_unavailable, AnalyzerArgs, STORE_RETRY};
use crate::cluster::Bus;
use crate::metrics_names as m;

/// An analyze node's part: batches from the analyzers' durable consumer, `args.slots` at once, each
/// acknowledged once its record is stored. A batch whose analysis failed is handed back for redelivery
/// (to this node or another) after a pause; JetStream moves it on after `max_deliver` deliveries.
pub(crate) async fn consume(bus: Bus, args: Arc<AnalyzerArgs>) {
    use async_nats::jetstream::AckKind;
    use futures::StreamExt as _;

    let slots = Arc::new(Semaphore::new(args.slots.max(1)));
    loop {
        let messages = match bus.analyzers().await {
            Ok(consumer) => consumer
                .stream()
                // Take no more than can run at once, so that other analyze nodes get the rest.
                .max_messages_per_batch(args.slots.max(1))
                .messages()
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let mut messages = match messages {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "cannot consume batches from JetStream; retrying");
                tokio::time::sleep(STORE_RETRY).await;
                continue;
            }
        };
        while let Some(message) = messages.next().await {
            let message = match message {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "batch consumer interrupted; reconnecting");
                    break;
                }
            };
            let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let args = Arc::clone(&args);
            tokio::spawn(async move {
                let _permit = permit;
                let batch: BatchRecord = match serde_json::from_slice(&message.payload) {
                    Ok(b) => b,
                    Err(e) => {
                        // Never analysable: no redelivery (it stays in the stream for inspection).
                        tracing::error!(error = %e, subject = %message.subject, "undecodable batch message");
                        let _ = message.ack_with(AckKind::Term).await;
                        return;
                    }
                };
                let outcome = analyze(&args, &batch, false, false).await;
                let (label, ack) = match &outcome {
                    Ok(()) => ("ok", message.double_ack().await.map_err(|e| e.to_string())),
                    Err(e) => {
                        let retryable = is_unavailable(e);
                        if retryable {
                            tracing::warn!(session_id = %batch.session_id, batch_index = batch.batch_index, error = %e, "record store unavailable; batch redelivered shortly");
                        } else {
                            tracing::error!(session_id = %batch.session_id, batch_index = batch.batch_index, error = %e, "batch analysis failed; redelivered");
                        }
                        let nak = message
                            .ack_with(AckKind::Nak(Some(STORE_RETRY)))
                            .await
                            .map_err(|e| e.to_string());
                        (if retryable { "retry" } else { "failed" }, nak)
                    }
                };
                metrics::counter!(m::BATCHES_CONSUMED, "outcome" => label).increment(1);
                if let Err(e) = ack {
                    // Not acknowledged: JetStream delivers it again after ack_wait; its record is
                    // stored once all the same.
                    tracing::warn!(session_id = %batch.session_id, batch_index = batch.batch_index, error = %e, "batch acknowledgement lost");
                }
            });
        }
    }
}
