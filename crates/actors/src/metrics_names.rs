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
/// Session actors stopped because another ingest node took their session over (cluster).
pub const SESSIONS_MOVED: &str = "crow_sessions_moved_total";
/// Sessions of dead ingest nodes this node took over and closed (distributed mode).
pub const SESSIONS_ADOPTED: &str = "crow_sessions_adopted_total";
/// Sessions this node resumed from the cluster's session journal (label `entries`: none).
pub const SESSIONS_REPLAYED: &str = "crow_sessions_replayed_total";
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
/// Frames refused for going over their camera's frame rate (never decoded or stored).
pub const FRAMES_THROTTLED: &str = "crow_frames_throttled_total";
/// Frame streams open now (gauge).
pub const STREAMS_OPEN: &str = "crow_streams_open";
/// Frames queued for or inside a describer, per camera (gauge; labels `org_id`, `camera_id`).
pub const FRAMES_IN_FLIGHT: &str = "crow_frames_in_flight";
/// Describe jobs waiting for a describer slot (gauge).
pub const DESCRIBE_QUEUE_DEPTH: &str = "crow_describe_queue_depth";
/// Seconds one describe call took (histogram; label `describer`).
pub const DESCRIBE_SECONDS: &str = "crow_describe_duration_seconds";
/// Frame descriptions per emitted batch (histogram).
pub const BATCH_FRAMES: &str = "crow_batch_frames";
/// Seconds the analyzer took to turn a batch into an interaction (histogram).
pub const BATCH_ANALYSIS_SECONDS: &str = "crow_batch_analysis_duration_seconds";
/// Analyses waiting for a slot of the analysis pool (gauge).
pub const ANALYSES_QUEUED: &str = "crow_analyses_queued";
/// When a camera's latest readable frame arrived, server time, seconds since the Unix epoch (gauge;
/// labels `org_id`, `camera_id`).
pub const CAMERA_LAST_FRAME: &str = "crow_camera_last_frame_timestamp_seconds";
/// Decoded frames in which the person detector found nobody (not described).
pub const FRAMES_NO_PERSON: &str = "crow_frames_no_person_total";
/// Frames with people but nothing new for them, or past their tracks' description cap (not described).
pub const FRAMES_GATED: &str = "crow_frames_gated_total";
/// Frames worth describing that the describer had no room for (`describer_overload = "shed"`).
pub const FRAMES_SHED: &str = "crow_frames_shed_total";
/// People detected (at or above `perception.min_score`), summed over frames.
pub const DETECTIONS: &str = "crow_person_detections_total";
/// CCTV batches analysed without the text model because the backlog was over
/// `analysis.max_batch_backlog`.
pub const ANALYZER_MODEL_SKIPPED: &str = "crow_analyzer_model_skipped_total";
/// CCTV batches waiting for or in an analyzer slot (gauge).
pub const ANALYZER_BACKLOG: &str = "crow_analyzer_backlog";
/// Product proposals of the text model that crow's check refused (label `reason`).
pub const PROPOSALS_REFUSED: &str = "crow_product_proposals_refused_total";
/// Analyses whose summary crow worded by template because there was no text model or its wording
/// failed the check against the facts.
pub const ANALYSIS_PHRASING_REFUSED: &str = "crow_analysis_phrasing_refused_total";
/// Described frames whose keyframe was not stored because the disk was low.
pub const KEYFRAMES_SKIPPED: &str = "crow_keyframes_skipped_total";
/// Keyframes removed by retention (label `reason`: `age`, `size`, `disk_low`).
pub const KEYFRAMES_PRUNED: &str = "crow_keyframes_pruned_total";
/// Frame tracking records of closed sessions removed by retention.
pub const FRAME_RECORDS_PRUNED: &str = "crow_frame_records_pruned_total";
/// Keyframes stored now (gauge).
pub const KEYFRAMES: &str = "crow_keyframes";
/// Bytes of keyframes stored now (gauge).
pub const KEYFRAME_BYTES: &str = "crow_keyframe_bytes";
/// Bytes the sled database takes on disk (gauge).
pub const SLED_SIZE_BYTES: &str = "crow_sled_size_bytes";
/// Free bytes on the data directory's file system (gauge).
pub const DISK_FREE_BYTES: &str = "crow_disk_free_bytes";
/// 1 while free space is below `pipeline.retention.min_free_disk_bytes`, else 0 (gauge).
pub const DISK_LOW: &str = "crow_disk_low";
/// Seconds until the server's TLS certificate expires, as of start-up (gauge; only with TLS).
pub const TLS_CERT_EXPIRY_SECONDS: &str = "crow_tls_certificate_expiry_seconds";
/// Batches moved to the dead-letter stream after failing on every delivery (analyze nodes).
pub const DEAD_BATCHES: &str = "crow_dead_batches_total";
/// Batches handed to JetStream (ingest nodes).
pub const BATCHES_PUBLISHED: &str = "crow_batches_published_total";
/// Batches taken from JetStream and analysed (analyze nodes), by outcome: ok | retry | failed.
pub const BATCHES_CONSUMED: &str = "crow_batches_consumed_total";
/// Interactions whose texts were embedded for search by meaning.
pub const INTERACTIONS_EMBEDDED: &str = "crow_interactions_embedded_total";
