//! Names of the counters the pipeline exports through the `metrics` crate.

/// Frames that reached a session actor.
pub const FRAMES_RECEIVED: &str = "crow_frames_received_total";
/// Frames rejected (undecodable, oversize, out of order, ...).
pub const FRAMES_REJECTED: &str = "crow_frames_rejected_total";
/// Frames skipped as near-duplicates.
pub const FRAMES_SKIPPED: &str = "crow_frames_skipped_total";
/// Frames accepted and queued for description.
pub const FRAMES_ACCEPTED: &str = "crow_frames_accepted_total";
/// Frames described.
pub const FRAMES_DESCRIBED: &str = "crow_frames_described_total";
/// Describe calls that failed.
pub const DESCRIBE_FAILURES: &str = "crow_describe_failures_total";
/// Batches emitted to the analyzers.
pub const BATCHES_EMITTED: &str = "crow_batches_emitted_total";
/// Interaction records written.
pub const INTERACTIONS_WRITTEN: &str = "crow_interactions_written_total";
/// Session actors restarted after a failure.
pub const SESSION_RESTARTS: &str = "crow_session_restarts_total";
/// Sessions opened.
pub const SESSIONS_OPENED: &str = "crow_sessions_opened_total";
/// Describe submissions that waited for room in the full queue.
pub const DESCRIBE_QUEUE_WAITS: &str = "crow_describe_queue_waits_total";
/// Describe jobs skipped because their session stopped.
pub const DESCRIBE_CANCELLED: &str = "crow_describe_cancelled_total";
/// `CreateInteraction` events accepted into the outbox.
pub const OUTBOX_ACCEPTED: &str = "crow_outbox_accepted_total";
/// Outbox events processed into interactions.
pub const OUTBOX_PROCESSED: &str = "crow_outbox_processed_total";
/// Failed processing attempts that will be retried.
pub const OUTBOX_RETRIES: &str = "crow_outbox_retries_total";
/// Events moved to the dead letters.
pub const DEAD_LETTERS: &str = "crow_dead_letters_total";
/// Events waiting in the outbox (gauge).
pub const OUTBOX_DEPTH: &str = "crow_outbox_depth";
/// Analyses finished (label `status`: done, failed).
pub const ANALYSES: &str = "crow_analyses_total";
/// Analyses refused because the queue was full.
pub const ANALYSES_REFUSED: &str = "crow_analyses_refused_total";
/// Analyses running (gauge).
pub const ANALYSES_RUNNING: &str = "crow_analyses_running";
/// Pattern-event subscribers dropped for falling behind.
pub const PATTERN_SUBSCRIBERS_DROPPED: &str = "crow_pattern_subscribers_dropped_total";
