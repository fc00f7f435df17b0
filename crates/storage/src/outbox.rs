//! The outbox of `CreateInteraction`: accepted events wait here (durably) until the processor turns them
//! into interactions; failures are retried with a delay and finally moved to the dead letters.
//!
//! Trees: `outbox` (`seq` -> [`OutboxEntry`]), `outbox_ids` (`id` -> seq), `idempotency`
//! (`org \0 key` -> id), `dead_letters` (`org \0 id` -> [`DeadLetter`]).

use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use crate::interactions::AlongWith;
use crate::keys;
use crate::model::{
    DeadLetter, Enqueued, Interaction, InteractionState, NewInteraction, OutboxEntry,
};
use crate::store::{decode, encode, tx_err, tx_get, tx_put, Store};
use crate::{now_ms, Result, StorageError};

/// What a failed processing attempt led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxFailure {
    /// The entry stays in the outbox and is tried again later; `attempts` have failed so far.
    Retry {
        /// Failed attempts so far.
        attempts: u32,
    },
    /// Every attempt failed: the entry is now a dead letter.
    DeadLettered {
        /// Attempts made.
        attempts: u32,
    },
    /// The entry was no longer in the outbox (processed or moved meanwhile); nothing changed.
    Gone,
}

/// One page of dead letters.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterPage {
    /// Oldest first (ids are time-ordered).
    pub dead_letters: Vec<DeadLetter>,
    /// Cursor for the next page.
    pub next_page_token: Option<String>,
}

impl Store {
    /// Stores an accepted event in the outbox. With an idempotency key already used by the organization,
    /// stores nothing and returns the first request's id with `duplicate: true`. Call [`Store::sync`]
    /// before acknowledging.
    pub fn enqueue_interaction(&self, record: &NewInteraction) -> Result<Enqueued> {
        let i = &self.inner;
        let seq = i.db.generate_id()?;
        let entry = OutboxEntry {
            seq,
            record: record.clone(),
            attempts: 0,
            next_attempt_ms: record.received_at_ms,
            last_error: None,
        };
        let idem_key = record
            .idempotency_key
            .as_deref()
            .map(|k| keys::pair(&record.organization_id, k));
        (&i.outbox, &i.outbox_ids, &i.idempotency)
            .transaction(|(outbox, ids, idempotency)| {
                if let Some(k) = &idem_key {
                    if let Some(first) = idempotency.get(k)? {
                        return Ok(Enqueued {
                            id: String::from_utf8_lossy(&first).into_owned(),
                            duplicate: true,
                        });
                    }
                    idempotency.insert(k.as_slice(), record.id.as_bytes())?;
                }
                tx_put(outbox, &seq.to_be_bytes(), &entry)?;
                ids.insert(record.id.as_bytes(), &seq.to_be_bytes())?;
                Ok(Enqueued {
                    id: record.id.clone(),
                    duplicate: false,
                })
            })
            .map_err(tx_err)
    }

    /// Outbox entries due at `now_ms`, oldest first, at most `limit`.
    pub fn outbox_due(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxEntry>> {
        let mut out = Vec::new();
        for item in self.inner.outbox.iter() {
            let (k, v) = item?;
            let entry: OutboxEntry = decode(&k, &v)?;
            if entry.next_attempt_ms <= now_ms {
                out.push(entry);
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Entries in the outbox and the earliest time one of them is due.
    pub fn outbox_status(&self) -> Result<(usize, Option<i64>)> {
        let mut n = 0;
        let mut next = None::<i64>;
        for item in self.inner.outbox.iter() {
            let (k, v) = item?;
            let entry: OutboxEntry = decode(&k, &v)?;
            n += 1;
            next = Some(next.map_or(entry.next_attempt_ms, |t| t.min(entry.next_attempt_ms)));
        }
        Ok((n, next))
    }

    /// Stores the interaction an outbox entry became and removes the entry, in one transaction. Returns
    /// `false` if an interaction with that id was already stored (the entry is removed all the same).
    pub fn complete_outbox(&self, entry: &OutboxEntry, interaction: &Interaction) -> Result<bool> {
        Ok(self.insert_with(
            std::slice::from_ref(interaction),
            AlongWith {
                outbox: Some((entry.seq, &entry.record.id)),
                ..Default::default()
            },
        )?[0])
    }

    /// Records a failed attempt: the entry is retried at `retry_at_ms`, or, once `max_retries` retries
    /// have failed too, moved to the dead letters — one transaction.
    pub fn fail_outbox(
        &self,
        entry: &OutboxEntry,
        error: &str,
        max_retries: u32,
        retry_at_ms: i64,
    ) -> Result<OutboxFailure> {
        let i = &self.inner;
        let key = entry.seq.to_be_bytes();
        let dead_key = keys::pair(&entry.record.organization_id, &entry.record.id);
        (&i.outbox, &i.outbox_ids, &i.dead_letters)
            .transaction(|(outbox, ids, dead)| {
                let Some(mut current) = tx_get::<OutboxEntry>(outbox, &key)? else {
                    return Ok(OutboxFailure::Gone);
                };
                current.attempts += 1;
                current.last_error = Some(error.to_owned());
                if current.attempts > max_retries {
                    outbox.remove(&key)?;
                    ids.remove(current.record.id.as_bytes())?;
                    let letter = DeadLetter {
                        attempts: current.attempts,
                        last_error: error.to_owned(),
                        dead_at_ms: now_ms(),
                        record: current.record,
                    };
                    tx_put(dead, &dead_key, &letter)?;
                    Ok(OutboxFailure::DeadLettered {
                        attempts: letter.attempts,
                    })
                } else {
                    current.next_attempt_ms = retry_at_ms;
                    tx_put(outbox, &key, &current)?;
                    Ok(OutboxFailure::Retry {
                        attempts: current.attempts,
                    })
                }
            })
            .map_err(tx_err)
    }

    /// An organization's dead letters, oldest first.
    pub fn list_dead_letters(
        &self,
        organization_id: &str,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<DeadLetterPage> {
        let (dead_letters, next_page_token) = self.page_by_id(
            &self.inner.dead_letters,
            organization_id,
            page_size,
            page_token,
            |d: &DeadLetter| &d.record.id,
        )?;
        Ok(DeadLetterPage {
            dead_letters,
            next_page_token,
        })
    }

    /// Moves a dead letter back into the outbox with its attempts reset; `None` if the organization has
    /// no dead letter with that id.
    pub fn retry_dead_letter(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<Option<OutboxEntry>> {
        let i = &self.inner;
        let seq = i.db.generate_id()?;
        let dead_key = keys::pair(organization_id, id);
        (&i.dead_letters, &i.outbox, &i.outbox_ids)
            .transaction(|(dead, outbox, ids)| {
                let Some(letter) = tx_get::<DeadLetter>(dead, &dead_key)? else {
                    return Ok(None);
                };
                dead.remove(dead_key.as_slice())?;
                let entry = OutboxEntry {
                    seq,
                    record: letter.record,
                    attempts: 0,
                    next_attempt_ms: now_ms(),
                    last_error: None,
                };
                outbox.insert(&seq.to_be_bytes(), encode(&entry))?;
                ids.insert(entry.record.id.as_bytes(), &seq.to_be_bytes())?;
                Ok::<_, ConflictableTransactionError<StorageError>>(Some(entry))
            })
            .map_err(tx_err)
    }

    /// Where an interaction id of the organization stands: stored, pending in the outbox, or dead.
    /// Another organization's id is `None`, exactly like a missing one.
    pub fn interaction_state(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<Option<InteractionState>> {
        let i = &self.inner;
        let dead_key = keys::pair(organization_id, id);
        // One transaction, so one view of the trees: an event that moves from the outbox to the
        // records (or to the dead letters) between two separate reads would be found in neither.
        (
            &i.interaction_ids,
            &i.interactions,
            &i.outbox_ids,
            &i.outbox,
            &i.dead_letters,
        )
            .transaction(|(ids, interactions, outbox_ids, outbox, dead_letters)| {
                if let Some(key) = ids.get(id.as_bytes())? {
                    let Some(record) = tx_get::<Interaction>(interactions, &key)? else {
                        return Err(ConflictableTransactionError::Abort(StorageError::corrupt(
                            &key,
                            "index points at a missing record",
                        )));
                    };
                    return Ok((record.organization_id == organization_id)
                        .then_some(InteractionState::Stored(record)));
                }
                if let Some(seq) = outbox_ids.get(id.as_bytes())? {
                    if let Some(entry) = tx_get::<OutboxEntry>(outbox, &seq)? {
                        return Ok((entry.record.organization_id == organization_id)
                            .then_some(InteractionState::Pending(entry)));
                    }
                }
                Ok(tx_get(dead_letters, &dead_key)?.map(InteractionState::DeadLetter))
            })
            .map_err(tx_err)
    }
}
