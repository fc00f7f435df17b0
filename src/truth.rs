//! crow's perception measured against footage with exact truth
//! ([`truth_footage`](crate::inference::truth_footage)): the footage streams through a real pipeline
//! (frames prepared, gated, detected, tracked; events batched into records), and what crow reports is
//! compared with what the footage holds: detector recall by person height and visibility, precision,
//! the detector's box bias at the feet, identity switches, door counts, zone visits, dwell per visit and
//! occupancy per frame. `crow bench truth` prints it; the tests assert its goals on a small part.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::actors::{FrameInput, PipelineError};
use crate::inference::truth_footage::{PersonTruth, TruthFootage, DISPLAY, DOOR};
use crate::inference::{
    encode_jpeg, BBox, DetectionFilter, ImageFormat, InferenceError, PersonDetector, Track,
};
use crate::storage::{
    CameraConfig, FrameOutcome, LineConfig, StorageError, TrackEvent, TrackEventKind, ZoneConfig,
};
use crate::{Crow, PipelineConfig};

/// Capture time of the footage's first frame: the start of an hour, so an hour of footage is one session.
const START_MS: i64 = 1_764_000_000_000;

/// The display's `min_dwell_ms`: a visit this long is a dwell.
const DISPLAY_MIN_DWELL_MS: u64 = 2_000;

/// Why a measurement failed.
#[derive(Debug, thiserror::Error)]
pub enum TruthError {
    /// The footage could not be rendered or a frame not encoded, or the detector not loaded.
    #[error("footage: {0}")]
    Footage(#[from] InferenceError),
    /// The pipeline refused something.
    #[error("pipeline: {0}")]
    Pipeline(#[from] PipelineError),
    /// The store could not be read.
    #[error("store: {0}")]
    Store(#[from] StorageError),
    /// The footage does not fit one session, or a worker thread failed.
    #[error("{0}")]
    Other(String),
}

/// Matched / total.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Ratio {
    /// Hits.
    pub hits: usize,
    /// Out of.
    pub total: usize,
}

impl Ratio {
    fn add(&mut self, hit: bool) {
        self.total += 1;
        self.hits += usize::from(hit);
    }

    /// hits / total (1 when there is nothing to find).
    pub fn value(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.hits as f64 / self.total as f64
        }
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3} ({}/{})", self.value(), self.hits, self.total)
    }
}

/// Person heights (px) the detector's recall is reported for.
pub const HEIGHT_BANDS: [(f32, f32); 5] = [
    (0.0, 60.0),
    (60.0, 90.0),
    (90.0, 130.0),
    (130.0, 200.0),
    (200.0, f32::MAX),
];

/// A count crow reported against the truth.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Count {
    /// What crow reported.
    pub crow: usize,
    /// What the footage holds.
    pub truth: usize,
}

impl Count {
    /// |crow - truth| / truth (0 when both are 0).
    pub fn error(&self) -> f64 {
        if self.truth == 0 {
            if self.crow == 0 {
                0.0
            } else {
                1.0
            }
        } else {
            (self.crow as f64 - self.truth as f64).abs() / self.truth as f64
        }
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} (error {:.1} %)",
            self.crow,
            self.truth,
            100.0 * self.error()
        )
    }
}

/// What one measurement found.
#[derive(Debug, Clone, Default)]
pub struct TruthReport {
    /// Frames streamed.
    pub frames: usize,
    /// Scripted people.
    pub people: usize,
    /// Most people in view in one frame.
    pub most_in_view: usize,
    /// Detector recall of people in full view (>= 90 % visible), per [`HEIGHT_BANDS`].
    pub recall_by_height: Vec<Ratio>,
    /// Recall of people in full view from 60 px tall.
    pub recall_from_60px: Ratio,
    /// Recall of people 50-90 % visible (behind others or at the frame's edge).
    pub recall_partly_hidden: Ratio,
    /// Recall of people less than half visible.
    pub recall_mostly_hidden: Ratio,
    /// Detections that are a person.
    pub precision: Ratio,
    /// The place where the detector saw nobody most often: (the box, frames, mean score). A steady
    /// false positive (a statue, a mannequin, a shape in the lawn) shows here; mask it or let motion
    /// evidence reject it.
    pub steady_false_positive: Option<(BBox, usize, f32)>,
    /// Confirmed tracks detected on a frame that are a person (IoU >= 0.3 with a true box at least half
    /// visible): the precision of the people crow counts.
    pub track_precision: Ratio,
    /// Median of (detected box bottom - true feet) / true height, people in full view.
    pub foot_bias: f64,
    /// Boxes of people at least half visible that a confirmed track covered, and identity switches
    /// among them (a person's track changing from one frame to the next).
    pub tracked: Ratio,
    /// See `tracked`.
    pub id_switches: usize,
    /// Door crossings walking left.
    pub door_in: Count,
    /// Door crossings walking right.
    pub door_out: Count,
    /// Visits to the display.
    pub visits: Count,
    /// Visits to the display of at least its `min_dwell_ms` (2 s): crow's `zone_dwell` events.
    pub dwells: Count,
    /// Mean |crow's dwell - true dwell| over the visits paired with a true one, seconds.
    pub dwell_error_s: f64,
    /// Visits paired.
    pub visits_paired: usize,
    /// Mean |crow's occupancy - true occupancy| per frame.
    pub occupancy_error: f64,
    /// Frames the detector ran on.
    pub detector_calls: usize,
    /// Wall time of the pipeline run (rendering and the extra recall detections excluded), seconds.
    pub pipeline_s: f64,
    /// Mean time of one detector call on one thread, ms (the recall detections).
    pub detector_ms: f64,
    /// Seconds of footage streamed.
    pub camera_seconds: f64,
}

impl TruthReport {
    /// Identity switches per 100 tracked boxes.
    pub fn id_switches_per_100(&self) -> f64 {
        100.0 * self.id_switches as f64 / self.tracked.hits.max(1) as f64
    }
}

impl fmt::Display for TruthReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} frames, {} people scripted, up to {} in view",
            self.frames, self.people, self.most_in_view
        )?;
        for ((lo, hi), r) in HEIGHT_BANDS.iter().zip(&self.recall_by_height) {
            let band = if *hi == f32::MAX {
                format!(">= {lo} px")
            } else {
                format!("{lo}-{hi} px")
            };
            writeln!(f, "  detector recall, full view, {band:>11}: {r}")?;
        }
        writeln!(
            f,
            "  detector recall, full view, >= 60 px:    {} (goal >= 0.9)",
            self.recall_from_60px
        )?;
        writeln!(
            f,
            "  detector recall, 50-90 % visible:        {}",
            self.recall_partly_hidden
        )?;
        writeln!(
            f,
            "  detector recall, < 50 % visible:         {}",
            self.recall_mostly_hidden
        )?;
        writeln!(
            f,
            "  detector precision:                      {} (goal >= 0.95)",
            self.precision
        )?;
        if let Some((b, frames, score)) = self.steady_false_positive {
            writeln!(
                f,
                "  most frequent false positive:            {frames} frames at x {:.2}-{:.2}, y {:.2}-{:.2}, mean score {score:.2}",
                b.x,
                b.x + b.w,
                b.y,
                b.y + b.h
            )?;
        }
        writeln!(
            f,
            "  people counted (confirmed tracks) precision: {}",
            self.track_precision
        )?;
        writeln!(
            f,
            "  detector box bottom below the feet:      {:+.3} of the person's height (median)",
            self.foot_bias
        )?;
        writeln!(
            f,
            "  boxes covered by a confirmed track:      {}",
            self.tracked
        )?;
        writeln!(
            f,
            "  identity switches per 100 boxes:         {:.2} ({}) (goal <= 2)",
            self.id_switches_per_100(),
            self.id_switches
        )?;
        writeln!(
            f,
            "  door in:                                 {} (goal <= 5 %)",
            self.door_in
        )?;
        writeln!(
            f,
            "  door out:                                {} (goal <= 5 %)",
            self.door_out
        )?;
        writeln!(
            f,
            "  display visits:                          {} (goal <= 5 %)",
            self.visits
        )?;
        writeln!(
            f,
            "  display visits of >= 2 s (zone_dwell):   {} (goal <= 5 %)",
            self.dwells
        )?;
        writeln!(
            f,
            "  dwell error per paired visit:            {:.2} s over {} visits (goal <= 1 s)",
            self.dwell_error_s, self.visits_paired
        )?;
        writeln!(
            f,
            "  occupancy error per frame:               {:.3} (goal <= 0.2)",
            self.occupancy_error
        )?;
        writeln!(
            f,
            "  detector calls / frames:                 {:.3} ({}/{}), {:.1} ms per call (goal <= 0.3 on a mostly idle hour)",
            self.detector_calls as f64 / self.frames.max(1) as f64,
            self.detector_calls,
            self.frames,
            self.detector_ms,
        )?;
        write!(
            f,
            "  pipeline, one camera's frames in turn:   {:.1} s, {:.0} camera-seconds per wall second (goal >= 100 on a mostly idle hour)",
            self.pipeline_s,
            self.camera_seconds / self.pipeline_s.max(1e-9)
        )
    }
}

/// One-to-one pairs from scored candidates `(score, a, b)`, best first: each index pairs at most once.
fn pair_greedily(
    mut candidates: Vec<(f64, usize, usize)>,
    a: usize,
    b: usize,
) -> Vec<(usize, usize)> {
    candidates.sort_by(|p, q| q.0.total_cmp(&p.0));
    let (mut used_a, mut used_b) = (vec![false; a], vec![false; b]);
    let mut out = Vec::new();
    for (_, i, j) in candidates {
        if !used_a[i] && !used_b[j] {
            used_a[i] = true;
            used_b[j] = true;
            out.push((i, j));
        }
    }
    out
}

/// One-to-one matching of boxes `a` to `b` by IoU (best pairs first), pairs with IoU >= `least`.
fn match_boxes(a: &[BBox], b: &[BBox], least: f32) -> Vec<(usize, usize)> {
    let mut candidates = Vec::new();
    for (i, x) in a.iter().enumerate() {
        for (j, y) in b.iter().enumerate() {
            let iou = x.iou(y);
            if iou >= least {
                candidates.push((f64::from(iou), i, j));
            }
        }
    }
    pair_greedily(candidates, a.len(), b.len())
}

/// The box most false positives overlap (IoU >= 0.5): (that box, how many, their mean score).
fn steadiest(false_positives: &[(BBox, f32)]) -> Option<(BBox, usize, f32)> {
    false_positives
        .iter()
        .map(|(b, _)| {
            let near: Vec<f32> = false_positives
                .iter()
                .filter(|(o, _)| o.iou(b) >= 0.5)
                .map(|(_, s)| *s)
                .collect();
            (*b, near.len(), near.iter().sum::<f32>() / near.len() as f32)
        })
        .max_by_key(|(_, n, _)| *n)
}

/// What the pipeline showed for one frame.
struct Observed {
    truth: Vec<PersonTruth>,
    detections: Vec<(BBox, f32)>,
    /// Confirmed tracks detected on this frame: (id, box).
    tracks: Vec<(u64, BBox)>,
    occupancy: u32,
}

/// Streams `footage` through a pipeline with `config` (records in `data_dir`, which must be empty or
/// absent) and compares what crow reports with the truth.
pub async fn measure(
    footage: Arc<TruthFootage>,
    mut config: PipelineConfig,
    data_dir: &Path,
) -> Result<TruthReport, TruthError> {
    let frames = footage.frame_count();
    let period_ms = 1000.0 / footage.spec().fps;
    if frames as f64 * period_ms >= config.session_max_duration_ms as f64 {
        return Err(TruthError::Other(format!(
            "{frames} frames at {} frames/s do not fit one session ({} ms)",
            footage.spec().fps,
            config.session_max_duration_ms
        )));
    }
    config.analysis.model = None;
    let filter = DetectionFilter {
        min_score: config.perception.min_score,
        max_width_to_height: config.perception.max_width_to_height,
    };
    let min_hits = config.perception.tracker.min_hits;
    let model = config.perception.model.clone();
    let (input, tiles) = (
        config.perception.detector_input,
        config.perception.detector_tiles,
    );
    let detector = tokio::task::spawn_blocking(move || {
        std::fs::read(&model)
            .map_err(|e| InferenceError::Media {
                path: model.display().to_string(),
                reason: format!("{e} (scripts/setup-models.sh installs it)"),
            })
            .and_then(|bytes| PersonDetector::ssd_with_input(&bytes, input))
    })
    .await
    .map_err(|e| TruthError::Other(format!("detector task: {e}")))??;
    let detector = Arc::new(std::sync::Mutex::new(detector));
    let crow = Crow::builder()
        .data_dir(data_dir)
        .pipeline_config(config)
        .build()
        .await?;
    let (org, camera) = ("truth", "plaza");
    crow.pipeline()
        .record_services()
        .upsert_camera(CameraConfig {
            organization_id: org.into(),
            camera_id: camera.into(),
            zones: vec![ZoneConfig {
                id: "display".into(),
                polygon: DISPLAY.iter().map(|(x, y)| [*x, *y]).collect(),
                product_ids: Vec::new(),
                min_dwell_ms: DISPLAY_MIN_DWELL_MS,
            }],
            lines: vec![LineConfig {
                id: "door".into(),
                a: [DOOR.0 .0, DOOR.0 .1],
                b: [DOOR.1 .0, DOOR.1 .1],
            }],
            masks: Vec::new(),
            detector_input: None,
            detector_tiles: None,
            updated_at_ms: 0,
        })
        .await?;
    let mut router = crow.pipeline().sessions().router(org, camera)?;
    let preparer = crow.pipeline().sessions().preparer();
    let mut observed = Vec::with_capacity(frames);
    let mut detector_calls = 0;
    let mut session_id = String::new();
    let mut pipeline_time = Duration::ZERO;
    let mut detector_time = Duration::ZERO;
    for i in 0..frames {
        let (footage, detector) = (Arc::clone(&footage), Arc::clone(&detector));
        let (truth, jpeg, detections, took) = tokio::task::spawn_blocking(move || {
            let (image, truth) = footage.frame(i)?;
            let jpeg = encode_jpeg(&image, 90)?;
            // What crow's detector finds on the frame as crow decodes it.
            let decoded = crate::inference::decode_frame(
                &jpeg,
                ImageFormat::Jpeg,
                crate::inference::FrameLimits::default(),
            )?;
            let started = Instant::now();
            let detections = detector
                .lock()
                .map_err(|_| InferenceError::Media {
                    path: "detector".into(),
                    reason: "poisoned".into(),
                })?
                .detect_tiled(&decoded.image, &filter, tiles)?;
            Ok::<_, InferenceError>((truth, jpeg, detections, started.elapsed()))
        })
        .await
        .map_err(|e| TruthError::Other(format!("render task: {e}")))??;
        detector_time += took;
        let started = Instant::now();
        let frame = tokio::task::spawn_blocking(move || {
            preparer.prepare(Bytes::from(jpeg), Some(ImageFormat::Jpeg))
        })
        .await
        .map_err(|e| TruthError::Other(format!("prepare task: {e}")))?;
        let ack = router
            .submit(
                None,
                FrameInput {
                    frame_index: i as u64,
                    captured_at_ms: START_MS + (i as f64 * period_ms).round() as i64,
                    frame,
                },
            )
            .await?;
        pipeline_time += started.elapsed();
        if !matches!(
            ack.outcome,
            FrameOutcome::SkippedDuplicate { .. } | FrameOutcome::Rejected { .. }
        ) {
            detector_calls += 1;
        }
        session_id = ack.session_id;
        let session = crow
            .store()
            .get_session(&session_id)?
            .ok_or_else(|| TruthError::Other(format!("session {session_id} vanished")))?;
        let tracks: Vec<Track> =
            serde_json::from_value(session.scene["tracker"]["tracks"].clone()).unwrap_or_default();
        observed.push(Observed {
            truth,
            detections: detections.iter().map(|d| (d.bbox, d.score)).collect(),
            tracks: tracks
                .iter()
                .filter(|t| t.hits >= min_hits && t.last_frame == i as u64)
                .map(|t| (t.id, t.bbox))
                .collect(),
            occupancy: session.scene["people"].as_u64().unwrap_or(0) as u32,
        });
    }
    let started = Instant::now();
    let sessions = crow.pipeline().sessions();
    sessions.close_session(org, &session_id).await?;
    while sessions.unanalyzed_batches(&session_id).await? > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pipeline_time += started.elapsed();
    let mut events: Vec<TrackEvent> = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page =
            crow.store()
                .list_interactions(org, &Default::default(), 500, token.as_deref())?;
        for record in &page.interactions {
            if let Ok(e) = serde_json::from_value::<Vec<TrackEvent>>(record.data["events"].clone())
            {
                events.extend(e);
            }
        }
        token = page.next_page_token;
        if token.is_none() {
            break;
        }
    }
    events.sort_by_key(|e| (e.frame_index, e.track_id));
    crow.shutdown().await;
    let mut report = score(&footage, &observed, &events);
    report.detector_calls = detector_calls;
    report.pipeline_s = pipeline_time.as_secs_f64();
    report.camera_seconds = frames as f64 / footage.spec().fps;
    report.detector_ms = detector_time.as_secs_f64() * 1000.0 / frames.max(1) as f64;
    Ok(report)
}

/// Compares what crow observed and reported with the footage's truth.
fn score(footage: &TruthFootage, observed: &[Observed], events: &[TrackEvent]) -> TruthReport {
    let counts = footage.counts();
    let mut report = TruthReport {
        frames: observed.len(),
        people: footage.acts().iter().map(|(_, n)| n).sum(),
        most_in_view: counts.occupancy.iter().copied().max().unwrap_or(0) as usize,
        recall_by_height: vec![Ratio::default(); HEIGHT_BANDS.len()],
        ..TruthReport::default()
    };
    let mut bias = Vec::new();
    let mut false_positives: Vec<(BBox, f32)> = Vec::new();
    let mut last_track: std::collections::HashMap<u32, u64> = Default::default();
    let mut occupancy_error = 0.0;
    for (i, o) in observed.iter().enumerate() {
        let truth_boxes: Vec<BBox> = o.truth.iter().map(|p| p.bbox).collect();
        let detected: Vec<BBox> = o.detections.iter().map(|(b, _)| *b).collect();
        let found = match_boxes(&truth_boxes, &detected, 0.5);
        for (j, (b, score)) in o.detections.iter().enumerate() {
            if !found.iter().any(|(_, d)| *d == j) {
                false_positives.push((*b, *score));
            }
        }
        for (k, p) in o.truth.iter().enumerate() {
            let hit = found.iter().find(|(t, _)| *t == k).map(|(_, d)| *d);
            if p.visible >= 0.9 {
                let band = HEIGHT_BANDS
                    .iter()
                    .position(|(lo, hi)| (*lo..*hi).contains(&p.height_px))
                    .unwrap_or(0);
                report.recall_by_height[band].add(hit.is_some());
                if p.height_px >= 60.0 {
                    report.recall_from_60px.add(hit.is_some());
                }
                if let Some(d) = hit {
                    let d = detected[d];
                    bias.push(f64::from((d.y + d.h - (p.bbox.y + p.bbox.h)) / p.bbox.h));
                }
            } else if p.visible >= 0.5 {
                report.recall_partly_hidden.add(hit.is_some());
            } else {
                report.recall_mostly_hidden.add(hit.is_some());
            }
        }
        report.precision.total += o.detections.len();
        report.precision.hits += found.len();

        // Tracking: people at least half visible against the confirmed tracks detected now.
        let seen: Vec<&PersonTruth> = o.truth.iter().filter(|p| p.visible >= 0.5).collect();
        let seen_boxes: Vec<BBox> = seen.iter().map(|p| p.bbox).collect();
        let track_boxes: Vec<BBox> = o.tracks.iter().map(|(_, b)| *b).collect();
        let pairs = match_boxes(&seen_boxes, &track_boxes, 0.3);
        report.track_precision.total += track_boxes.len();
        report.track_precision.hits += pairs.len();
        for (k, p) in seen.iter().enumerate() {
            let track = pairs
                .iter()
                .find(|(t, _)| *t == k)
                .map(|(_, j)| o.tracks[*j].0);
            report.tracked.add(track.is_some());
            if let Some(track) = track {
                if last_track.insert(p.id, track).is_some_and(|t| t != track) {
                    report.id_switches += 1;
                }
            }
        }
        occupancy_error += (f64::from(o.occupancy) - f64::from(counts.occupancy[i])).abs();
    }
    report.occupancy_error = occupancy_error / observed.len().max(1) as f64;
    report.steady_false_positive = steadiest(&false_positives);
    bias.sort_by(f64::total_cmp);
    report.foot_bias = bias.get(bias.len() / 2).copied().unwrap_or(0.0);

    let on = |kind: TrackEventKind, place: &'static str| {
        events
            .iter()
            .filter(move |e| e.kind == kind && e.place.as_deref() == Some(place))
    };
    report.door_in = Count {
        crow: on(TrackEventKind::LineIn, "door").count(),
        truth: counts.door_in as usize,
    };
    report.door_out = Count {
        crow: on(TrackEventKind::LineOut, "door").count(),
        truth: counts.door_out as usize,
    };
    // crow's visits: each zone exit closes the visit its track entered; as frame ranges.
    let fps = footage.spec().fps;
    let mut visits: Vec<(f64, f64)> = Vec::new();
    for exit in on(TrackEventKind::ZoneExit, "display") {
        let entered = on(TrackEventKind::ZoneEnter, "display")
            .rfind(|e| e.track_id == exit.track_id && e.frame_index <= exit.frame_index);
        if let Some(entered) = entered {
            let first = entered.frame_index as f64;
            let dwell = exit.dwell_ms.unwrap_or(0) as f64 / 1000.0 * fps;
            visits.push((first, first + dwell));
        }
    }
    report.visits = Count {
        crow: visits.len(),
        truth: counts.visits.len(),
    };
    let min_dwell_frames = (DISPLAY_MIN_DWELL_MS as f64 / 1000.0 * fps).ceil() as u64;
    report.dwells = Count {
        crow: on(TrackEventKind::ZoneDwell, "display").count(),
        truth: counts
            .visits
            .iter()
            .filter(|v| v.last_frame - v.first_frame >= min_dwell_frames)
            .count(),
    };
    // Pair true and reported visits by their overlap in time, best first.
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for (t, v) in counts.visits.iter().enumerate() {
        let (a0, a1) = (v.first_frame as f64, v.last_frame as f64);
        for (c, (b0, b1)) in visits.iter().enumerate() {
            let overlap = a1.min(*b1) - a0.max(*b0);
            if overlap >= 0.0 {
                pairs.push((overlap, t, c));
            }
        }
    }
    let mut dwell_error = 0.0;
    for (t, c) in pair_greedily(pairs, counts.visits.len(), visits.len()) {
        let truth = (counts.visits[t].last_frame - counts.visits[t].first_frame) as f64 / fps;
        let crow = (visits[c].1 - visits[c].0) / fps;
        dwell_error += (truth - crow).abs();
        report.visits_paired += 1;
    }
    report.dwell_error_s = dwell_error / report.visits_paired.max(1) as f64;
    report
}

/// People boxed by hand on frames of a real video (`tests/data/truth/vtest-people.json`): what the
/// composed footage cannot show, the detector on real people.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct LabelledFrames {
    /// The video's file name (looked up next to the labels' `video` argument).
    pub video: String,
    /// The frames' sampling rate: `frame` indexes [`crate::inference::MediaReader`]'s samples at it.
    pub sample_fps: f64,
    /// Width and height of the frames, pixels.
    pub frame_size: [u32; 2],
    /// How the labels were made.
    pub how: String,
    /// The labelled frames.
    pub frames: Vec<LabelledFrame>,
}

/// One labelled frame.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct LabelledFrame {
    /// Index among the video's samples at `sample_fps`.
    pub frame: usize,
    /// Every person in view: x, y, width, height in pixels.
    pub people: Vec<[f32; 4]>,
}

/// The detector against hand-labelled real frames.
#[derive(Debug, Clone, Default)]
pub struct LabelledReport {
    /// Frames compared.
    pub frames: usize,
    /// Labelled people found (a detection with IoU >= 0.5).
    pub recall: Ratio,
    /// Labelled people at least 60 px tall found.
    pub recall_from_60px: Ratio,
    /// Detections on a labelled person.
    pub precision: Ratio,
    /// Mean time of one detector call, ms.
    pub detector_ms: f64,
}

impl fmt::Display for LabelledReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "recall {} (>= 60 px: {}), precision {}, {:.1} ms per call, over {} frames",
            self.recall, self.recall_from_60px, self.precision, self.detector_ms, self.frames
        )
    }
}

/// Runs `detector` with `filter` over the whole frame and `tiles` (see
/// [`PersonDetector::detect_tiled`]) on the labelled frames of `video` and compares. Blocking (OpenCV).
pub fn measure_labelled(
    labels: &LabelledFrames,
    video: &Path,
    detector: &mut PersonDetector,
    filter: &DetectionFilter,
    tiles: [u32; 2],
) -> Result<LabelledReport, TruthError> {
    let samples = crate::inference::MediaReader::open(video, Some(labels.sample_fps))?;
    let wanted: std::collections::HashMap<usize, &LabelledFrame> =
        labels.frames.iter().map(|f| (f.frame, f)).collect();
    let mut report = LabelledReport::default();
    let mut took = Duration::ZERO;
    for (i, sample) in samples.enumerate() {
        let Some(label) = wanted.get(&i) else {
            continue;
        };
        let image = sample?.image;
        let (w, h) = {
            use crate::inference::opencv::prelude::MatTraitConst;
            (image.cols() as f32, image.rows() as f32)
        };
        if [w as u32, h as u32] != labels.frame_size {
            return Err(TruthError::Other(format!(
                "{}: frames are {w}x{h}, the labels are for {}x{}",
                video.display(),
                labels.frame_size[0],
                labels.frame_size[1]
            )));
        }
        let started = Instant::now();
        let found: Vec<BBox> = detector
            .detect_tiled(&image, filter, tiles)?
            .iter()
            .map(|d| d.bbox)
            .collect();
        took += started.elapsed();
        let truth: Vec<BBox> = label
            .people
            .iter()
            .map(|b| BBox {
                x: b[0] / w,
                y: b[1] / h,
                w: b[2] / w,
                h: b[3] / h,
            })
            .collect();
        let pairs = match_boxes(&truth, &found, 0.5);
        for (k, b) in label.people.iter().enumerate() {
            let hit = pairs.iter().any(|(t, _)| *t == k);
            report.recall.add(hit);
            if b[3] >= 60.0 {
                report.recall_from_60px.add(hit);
            }
        }
        report.precision.total += found.len();
        report.precision.hits += pairs.len();
        report.frames += 1;
    }
    if report.frames != labels.frames.len() {
        return Err(TruthError::Other(format!(
            "{} has {} of the {} labelled frames",
            video.display(),
            report.frames,
            labels.frames.len()
        )));
    }
    report.detector_ms = took.as_secs_f64() * 1000.0 / report.frames.max(1) as f64;
    Ok(report)
}
