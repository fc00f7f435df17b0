//! Domain <-> protobuf conversions and error mapping.

use crow_actors::PatternEvent;
use crow_actors::PipelineError;
use crow_storage::{
    AnalysisPhrasing, AnalysisRecord, AnalysisStatus, DeadLetter, FactKind, FrameOutcome,
    Interaction, Product, SessionRecord, SessionStatus, SourceType, StorageError, Summary,
};
use tonic::Status;

use crate::proto;

/// The status of a pipeline error: its message is safe to show; internal failures get a correlation id.
pub fn status(e: PipelineError) -> Status {
    match e {
        PipelineError::InvalidArgument(m) => Status::invalid_argument(m),
        PipelineError::SessionNotFound(id) => Status::not_found(format!("session {id} not found")),
        PipelineError::SessionClosed(id) => {
            Status::failed_precondition(format!("session {id} is closed"))
        }
        PipelineError::NotFound(what) => Status::not_found(format!("{what} not found")),
        PipelineError::FailedPrecondition(m) => Status::failed_precondition(m),
        PipelineError::ResourceExhausted(m) => Status::resource_exhausted(m),
        PipelineError::Unavailable(m) => Status::unavailable(m),
        e @ PipelineError::Moved(_) => Status::unavailable(e.to_string()),
        PipelineError::Storage(e) => storage_status(e),
        PipelineError::Internal(m) => internal("pipeline", m),
    }
}

/// Metadata key of the correlation id on `INTERNAL` responses.
pub const CORRELATION_ID_HEADER: &str = "x-correlation-id";

/// An `INTERNAL` status for a failure the client cannot act on: the details go to the log only, under a
/// fresh correlation id that the client receives in the message and in `x-correlation-id`, so that an
/// operator can find the log line from a user's report.
pub fn internal(component: &str, error: impl std::fmt::Display) -> Status {
    let id = crow_actors::log_internal(component, error);
    let mut status = Status::internal(format!("internal error (correlation id {id})"));
    if let Ok(value) = id.parse() {
        status.metadata_mut().insert(CORRELATION_ID_HEADER, value);
    }
    status
}

pub(crate) fn storage_status(e: StorageError) -> Status {
    match e {
        StorageError::InvalidPageToken => Status::invalid_argument("invalid page_token"),
        StorageError::InvalidFilter(m) => Status::invalid_argument(m),
        StorageError::InvalidQuery(m) => Status::invalid_argument(m),
        StorageError::NotFound { what } => Status::not_found(format!("{what} not found")),
        StorageError::Unavailable(e) => {
            tracing::warn!(error = %e, "record store unavailable");
            Status::unavailable("storage is unavailable; retry shortly")
        }
        // Logged here, where it is handled; the client learns only that storage failed.
        other => internal("storage", other),
    }
}

pub(crate) fn session(s: &SessionRecord) -> proto::Session {
    let c = &s.counters;
    proto::Session {
        session_id: s.id.clone(),
        organization_id: s.organization_id.clone(),
        camera_id: s.camera_id.clone(),
        status: match s.status {
            SessionStatus::Open => proto::SessionStatus::Open,
            SessionStatus::Closed => proto::SessionStatus::Closed,
        } as i32,
        started_at_ms: s.started_at_ms.unwrap_or(0),
        ended_at_ms: s.ended_at_ms.unwrap_or(0),
        frames_received: c.received,
        frames_accepted: c.accepted,
        frames_skipped: c.skipped,
        frames_rejected: c.rejected,
        frames_described: c.described,
        batches_emitted: c.batches,
        last_frame_index: s.last_frame_index.map_or(-1, |i| i as i64),
        frames_no_person: c.no_person,
        frames_gated: c.gated,
        frames_shed: c.shed,
        batches_unanalyzed: 0,
    }
}

pub(crate) fn outcome(o: &FrameOutcome) -> (proto::FrameOutcome, String) {
    match o {
        FrameOutcome::Accepted => (proto::FrameOutcome::Accepted, String::new()),
        FrameOutcome::SkippedDuplicate { .. } => {
            (proto::FrameOutcome::SkippedDuplicate, String::new())
        }
        FrameOutcome::Rejected { reason } => (proto::FrameOutcome::Rejected, reason.clone()),
        FrameOutcome::NoPerson => (proto::FrameOutcome::NoPerson, String::new()),
        FrameOutcome::Gated { reason } => (proto::FrameOutcome::Gated, reason.clone()),
        FrameOutcome::Shed => (proto::FrameOutcome::Shed, String::new()),
    }
}

fn point(p: [f32; 2]) -> proto::Point {
    proto::Point { x: p[0], y: p[1] }
}

fn from_point(p: Option<&proto::Point>) -> [f32; 2] {
    // A missing point is out of range, so validation names it.
    p.map_or([f32::NAN, f32::NAN], |p| [p.x, p.y])
}

pub(crate) fn camera(c: &crow_storage::CameraConfig) -> proto::Camera {
    proto::Camera {
        organization_id: c.organization_id.clone(),
        camera_id: c.camera_id.clone(),
        zones: c
            .zones
            .iter()
            .map(|z| proto::Zone {
                id: z.id.clone(),
                polygon: z.polygon.iter().copied().map(point).collect(),
                product_ids: z.product_ids.clone(),
                min_dwell_ms: z.min_dwell_ms,
            })
            .collect(),
        lines: c
            .lines
            .iter()
            .map(|l| proto::Tripwire {
                id: l.id.clone(),
                a: Some(point(l.a)),
                b: Some(point(l.b)),
            })
            .collect(),
        masks: c
            .masks
            .iter()
            .map(|m| proto::Mask {
                polygon: m.iter().copied().map(point).collect(),
            })
            .collect(),
        updated_at_ms: c.updated_at_ms,
        detector_tiles: c
            .detector_tiles
            .map(|[columns, rows]| proto::DetectorTiles { columns, rows }),
        detector_input: c
            .detector_input
            .map(|[width, height]| proto::DetectorInput { width, height }),
    }
}

pub(crate) fn from_camera(c: proto::Camera) -> crow_storage::CameraConfig {
    crow_storage::CameraConfig {
        organization_id: c.organization_id,
        camera_id: c.camera_id,
        zones: c
            .zones
            .into_iter()
            .map(|z| crow_storage::ZoneConfig {
                id: z.id,
                polygon: z.polygon.iter().map(|p| from_point(Some(p))).collect(),
                product_ids: z.product_ids,
                min_dwell_ms: if z.min_dwell_ms == 0 {
                    crow_storage::default_min_dwell_ms()
                } else {
                    z.min_dwell_ms
                },
            })
            .collect(),
        lines: c
            .lines
            .into_iter()
            .map(|l| crow_storage::LineConfig {
                id: l.id,
                a: from_point(l.a.as_ref()),
                b: from_point(l.b.as_ref()),
            })
            .collect(),
        masks: c
            .masks
            .into_iter()
            .map(|m| m.polygon.iter().map(|p| from_point(Some(p))).collect())
            .collect(),
        detector_input: c.detector_input.map(|d| [d.width, d.height]),
        detector_tiles: c.detector_tiles.map(|t| [t.columns, t.rows]),
        updated_at_ms: 0,
    }
}

pub(crate) fn source(s: SourceType) -> proto::SourceType {
    match s {
        SourceType::Web => proto::SourceType::Web,
        SourceType::Cctv => proto::SourceType::Cctv,
        SourceType::Social => proto::SourceType::Social,
    }
}

pub(crate) fn interaction(i: &Interaction) -> proto::Interaction {
    proto::Interaction {
        id: i.id.clone(),
        organization_id: i.organization_id.clone(),
        source_type: source(i.source_type) as i32,
        session_id: i.session_id.clone().unwrap_or_default(),
        data_json: i.data.to_string(),
        summary: i.summary.clone(),
        confidence: i.confidence,
        tags: i.tags.clone(),
        product_ids: i.product_ids.clone(),
        timestamp_ms: i.timestamp_ms,
        created_at_ms: i.created_at_ms,
    }
}

/// Why a record matched a search by meaning.
pub(crate) fn meaning_match(h: &crow_actors::SemanticHit) -> proto::MeaningMatch {
    proto::MeaningMatch {
        interaction_id: h.interaction.id.clone(),
        score: h.score,
        similarity: h.similarity,
        matched_text: h.matched.clone(),
    }
}

/// An `Ask` answer with its citations.
pub(crate) fn answer(a: &crow_actors::Answer) -> proto::AskResponse {
    let citations = a
        .cited
        .iter()
        .filter_map(|id| a.records.iter().find(|h| &h.interaction.id == id))
        .map(|h| {
            let i = &h.interaction;
            proto::Citation {
                interaction_id: i.id.clone(),
                summary: i.summary.clone(),
                timestamp_ms: i.timestamp_ms,
                source_type: source(i.source_type) as i32,
                session_id: i.session_id.clone().unwrap_or_default(),
                frame_indexes: crow_actors::record_frames(i),
            }
        })
        .collect();
    proto::AskResponse {
        found: a.found,
        answer: a.answer.clone(),
        statements: a
            .statements
            .iter()
            .map(|s| proto::AnswerStatement {
                text: s.text.clone(),
                interaction_ids: s.interaction_ids.clone(),
                support: s.support,
            })
            .collect(),
        citations,
        records: a.records.iter().map(meaning_match).collect(),
        statements_refused: a.refused as u32,
        model: a.model.clone(),
    }
}

pub(crate) fn summary(s: &Summary) -> proto::Summary {
    proto::Summary {
        web: s.web,
        cctv: s.cctv,
        social: s.social,
        total: s.total(),
    }
}

/// A source filter from the wire: UNSPECIFIED means none; unknown numbers are refused.
pub(crate) fn source_filter(value: i32, field: &str) -> Result<Option<SourceType>, Status> {
    match proto::SourceType::try_from(value) {
        Ok(proto::SourceType::Unspecified) => Ok(None),
        Ok(proto::SourceType::Web) => Ok(Some(SourceType::Web)),
        Ok(proto::SourceType::Cctv) => Ok(Some(SourceType::Cctv)),
        Ok(proto::SourceType::Social) => Ok(Some(SourceType::Social)),
        Err(_) => Err(Status::invalid_argument(format!(
            "{field} must be web, cctv or social"
        ))),
    }
}

/// 0 on the wire means "not set".
pub(crate) fn optional_ms(v: i64) -> Option<i64> {
    (v != 0).then_some(v)
}

pub(crate) fn dead_letter(d: &DeadLetter) -> proto::DeadLetter {
    let r = &d.record;
    proto::DeadLetter {
        id: r.id.clone(),
        organization_id: r.organization_id.clone(),
        source_type: source(r.source_type) as i32,
        data_json: r.data.to_string(),
        summary: r.summary.clone().unwrap_or_default(),
        timestamp_ms: r.timestamp_ms,
        attempts: d.attempts,
        last_error: d.last_error.clone(),
        dead_at_ms: d.dead_at_ms,
    }
}

pub(crate) fn product(p: &Product) -> proto::Product {
    proto::Product {
        id: p.id.clone(),
        organization_id: p.organization_id.clone(),
        name: p.name.clone(),
        category: p.category.clone(),
        description: p.description.clone(),
        tags: p.tags.clone(),
        aliases: p.aliases.clone(),
        updated_at_ms: p.updated_at_ms,
    }
}

pub(crate) fn analysis(a: &AnalysisRecord) -> proto::Analysis {
    let result = a.result.clone().unwrap_or_default();
    let labels = |v: &[(String, u64)]| {
        v.iter()
            .map(|(label, count)| proto::LabelCount {
                label: label.clone(),
                count: *count,
            })
            .collect()
    };
    let s = &a.stats;
    proto::Analysis {
        id: a.id.clone(),
        organization_id: a.organization_id.clone(),
        status: match a.status {
            AnalysisStatus::Queued => proto::AnalysisStatus::Queued,
            AnalysisStatus::Running => proto::AnalysisStatus::Running,
            AnalysisStatus::Done => proto::AnalysisStatus::Done,
            AnalysisStatus::Failed => proto::AnalysisStatus::Failed,
        } as i32,
        from_ms: a.from_ms.unwrap_or(0),
        to_ms: a.to_ms.unwrap_or(0),
        source_type: a.source.map_or(proto::SourceType::Unspecified, source) as i32,
        summary: result.summary,
        insights: result.insights,
        anomalies: result.anomalies,
        recommendations: result.recommendations,
        records: s.records,
        counts: Some(proto::Summary {
            web: s.web,
            cctv: s.cctv,
            social: s.social,
            total: s.web + s.cctv + s.social,
        }),
        top_tags: labels(&s.top_tags),
        top_products: labels(&s.top_products),
        truncated: s.truncated,
        records_used: a.records_used,
        error: a.error.clone().unwrap_or_default(),
        created_at_ms: a.created_at_ms,
        started_at_ms: a.started_at_ms.unwrap_or(0),
        finished_at_ms: a.finished_at_ms.unwrap_or(0),
        facts: result
            .facts
            .iter()
            .map(|f| proto::AnalysisFact {
                number: f.number,
                kind: match f.kind {
                    FactKind::Count => proto::FactKind::Count,
                    FactKind::Metric => proto::FactKind::Metric,
                    FactKind::Anomaly => proto::FactKind::Anomaly,
                    FactKind::Theme => proto::FactKind::Theme,
                    FactKind::Recommendation => proto::FactKind::Recommendation,
                } as i32,
                text: f.text.clone(),
                interaction_ids: f.interaction_ids.clone(),
                metrics: f.metrics.clone().unwrap_or_default(),
                test: f.test.clone().unwrap_or_default(),
            })
            .collect(),
        statements: result
            .statements
            .iter()
            .map(|s| proto::AnalysisStatement {
                text: s.text.clone(),
                facts: s.facts.clone(),
            })
            .collect(),
        phrasing: match (a.result.is_some(), result.phrasing) {
            (false, _) => proto::AnalysisPhrasing::Unspecified,
            (true, AnalysisPhrasing::Template) => proto::AnalysisPhrasing::Template,
            (true, AnalysisPhrasing::Model) => proto::AnalysisPhrasing::Model,
        } as i32,
        phrasing_refused: result.phrasing_refused.clone().unwrap_or_default(),
    }
}

pub(crate) fn pattern(e: &PatternEvent) -> proto::PatternEvent {
    proto::PatternEvent {
        organization_id: e.organization_id.clone(),
        session_id: e.session_id.clone(),
        camera_id: e.camera_id.clone(),
        batch_index: e.batch_index,
        first_frame_index: e.frame_range.0,
        last_frame_index: e.frame_range.1,
        interaction_id: e.interaction_id.clone(),
        summary: e.summary.clone(),
        tags: e.tags.clone(),
        products: e
            .products
            .iter()
            .map(|p| proto::ProductMatch {
                product_id: p.product_id.clone(),
                confidence: p.confidence,
                evidence_frames: p.evidence_frames.clone(),
                evidence: p.evidence.iter().map(|e| e.kind().to_owned()).collect(),
            })
            .collect(),
        timestamp_ms: e.timestamp_ms,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The log of this test binary: a process-wide subscriber installed once. A scoped one
    /// (`with_default`) races with other test threads over tracing's per-call-site interest cache, and
    /// the event can be skipped as uninteresting.
    fn captured_log() -> &'static Captured {
        static LOG: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
        LOG.get_or_init(|| {
            let log = Captured::default();
            let writer = log.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other subscriber in this test binary");
            log
        })
    }

    #[test]
    fn internal_errors_carry_a_correlation_id_that_is_also_in_the_log() {
        let log = captured_log();
        let status = status(PipelineError::Internal(
            "describer slot 1: thread panicked at src/describer.rs:42".into(),
        ));
        assert_eq!(status.code(), tonic::Code::Internal);
        let id = status
            .metadata()
            .get(CORRELATION_ID_HEADER)
            .expect("x-correlation-id")
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(id.len(), 32);
        assert_eq!(
            status.message(),
            format!("internal error (correlation id {id})")
        );
        let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains(&id), "{log}");
        assert!(
            log.contains("src/describer.rs:42"),
            "details are logged: {log}"
        );
        // Two failures never share an id.
        let other = storage_status(StorageError::Corrupt {
            key: "org/\\x00interactions".into(),
            reason: "expected value at line 1".into(),
        });
        assert_eq!(other.code(), tonic::Code::Internal);
        assert!(!other.message().contains("interactions"), "{other:?}");
        assert_ne!(
            other.metadata().get(CORRELATION_ID_HEADER).unwrap(),
            &id[..]
        );
    }
}
