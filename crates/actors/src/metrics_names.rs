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
