//! A multi-object tracker in the manner of SORT and ByteTrack: each person detection of a frame is
//! associated with a track by its *predicted* box (constant-velocity motion, per second of capture time)
//! and its appearance (colours of the upper body and the legs), by an optimal assignment over all pairs;
//! weak detections may only continue tracks; what is left unmatched starts a tentative track, and a track
//! not detected for longer than `max_lost_ms` of capture time ends, however many frames that took (or at
//! once when its prediction has left the frame).
//!
//! Coordinates are normalised to the frame (0..1), so the tracker does not care about resolution. Its
//! whole state is plain data ([`TrackerState`], serde), so a session actor can store it with every frame
//! and a restarted actor continues the same tracks with the same ids: nobody is counted twice.

use pathfinding::prelude::{kuhn_munkres, Matrix};
use serde::{Deserialize, Serialize};

/// An axis-aligned box in normalised frame coordinates: `x`, `y` of the top-left corner, `w`, `h`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    /// Left edge, 0..1 of the frame width.
    pub x: f32,
    /// Top edge, 0..1 of the frame height.
    pub y: f32,
    /// Width, fraction of the frame width.
    pub w: f32,
    /// Height, fraction of the frame height.
    pub h: f32,
}

impl BBox {
    /// Intersection over union with `other` (0 when they do not overlap).
    pub fn iou(&self, other: &BBox) -> f32 {
        let ix = (self.x + self.w).min(other.x + other.w) - self.x.max(other.x);
        let iy = (self.y + self.h).min(other.y + other.h) - self.y.max(other.y);
        if ix <= 0.0 || iy <= 0.0 {
            return 0.0;
        }
        let inter = ix * iy;
        let union = self.w * self.h + other.w * other.h - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }

    /// The bottom-centre point: where a standing person touches the floor. Zone membership and line
    /// crossings use it, so a person reaching over a zone's edge does not count as in it.
    pub fn foot(&self) -> (f32, f32) {
        (self.x + self.w / 2.0, self.y + self.h)
    }

    fn centre(&self) -> (f32, f32) {
        (self.x + self.w / 2.0, self.y + self.h / 2.0)
    }
}

/// One person detection in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Where.
    pub bbox: BBox,
    /// The detector's score, 0..1.
    pub score: f32,
    /// What the person looks like (the detector measures it on the frame), if the box is big enough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appearance: Option<Appearance>,
}

/// Bins per body half: 8 hues for coloured pixels, then 4 grey levels for the rest.
pub const APPEARANCE_HALF_BINS: usize = 12;

/// What a person looks like: colour histograms of the upper and the lower half of their box (clothes),
/// each half summing to 255. The same person seen at another size or place matches; people in
/// different clothes do not, so the tracker does not hand one person's track to a neighbour who walks
/// into their predicted place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appearance(pub [u8; 2 * APPEARANCE_HALF_BINS]);

impl Appearance {
    /// From the pixel counts per bin of the upper and the lower half; `None` when a half has too few
    /// pixels to say anything.
    pub fn from_counts(
        upper: &[u32; APPEARANCE_HALF_BINS],
        lower: &[u32; APPEARANCE_HALF_BINS],
    ) -> Option<Appearance> {
        let mut out = [0u8; 2 * APPEARANCE_HALF_BINS];
        for (half, counts) in [upper, lower].iter().enumerate() {
            let total: u32 = counts.iter().sum();
            if total < 16 {
                return None;
            }
            for (bin, c) in counts.iter().enumerate() {
                out[half * APPEARANCE_HALF_BINS + bin] =
                    ((u64::from(*c) * 255 + u64::from(total) / 2) / u64::from(total)) as u8;
            }
        }
        Some(Appearance(out))
    }

    /// Histogram intersection of both halves: 0 (nothing in common) ..= 1 (the same colours).
    pub fn similarity(&self, other: &Appearance) -> f32 {
        let common: u32 = self
            .0
            .iter()
            .zip(other.0.iter())
            .map(|(a, b)| u32::from(*a.min(b)))
            .sum();
        (common as f32 / 510.0).min(1.0)
    }

    /// This appearance moved towards `other` by `weight` (0..1).
    fn blend(&self, other: &Appearance, weight: f32) -> Appearance {
        let mut out = self.0;
        for (o, b) in out.iter_mut().zip(other.0.iter()) {
            *o = (f32::from(*o) + weight * (f32::from(*b) - f32::from(*o))).round() as u8;
        }
        Appearance(out)
    }
}

/// Tracker settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackerConfig {
    /// Least IoU between a predicted track box and a detection for an overlap match.
    pub iou_threshold: f32,
    /// Without overlap, a detection whose centre lies within this many box heights of the predicted
    /// centre (and of a similar size) still continues the track: people walk far between frames at
    /// low frame rates.
    pub max_centre_distance: f32,
    /// A track ends at the first update at which it has not been detected for longer than this (ms of
    /// capture time): by time, not by a count of frames, so it means the same at any frame rate.
    pub max_lost_ms: u32,
    /// Detections needed before a track is confirmed (counted, evented); fewer is noise.
    pub min_hits: u32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            iou_threshold: 0.2,
            max_centre_distance: 1.0,
            max_lost_ms: 3_000,
            min_hits: 2,
        }
    }
}

/// One tracked person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Track {
    /// Stable id within the session, from 1.
    pub id: u64,
    /// Last detected box (after smoothing).
    pub bbox: BBox,
    /// Velocity of x, y, w, h per second of capture time.
    velocity: [f32; 4],
    /// Detections associated so far.
    pub hits: u32,
    /// Consecutive updates without a detection.
    pub misses: u32,
    /// The box of the first detection (where a count of crossings starts).
    #[serde(default)]
    pub first_bbox: Option<BBox>,
    /// Frame and time of the first detection.
    pub first_frame: u64,
    /// See `first_frame`, ms since the epoch.
    pub first_ms: i64,
    /// Frame and time of the latest detection.
    pub last_frame: u64,
    /// See `last_frame`.
    pub last_ms: i64,
    /// Sum of the detector scores of its detections (mean = `score_sum / hits`).
    pub score_sum: f32,
    /// What the person looks like, averaged over their detections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appearance: Option<Appearance>,
}

impl Track {
    /// Whether the track has been seen often enough to be a person rather than noise.
    pub fn confirmed(&self, config: &TrackerConfig) -> bool {
        self.hits >= config.min_hits.max(1)
    }

    /// Mean detector score over its detections.
    pub fn mean_score(&self) -> f32 {
        self.score_sum / self.hits.max(1) as f32
    }

    /// The box where the track is expected at `at_ms`.
    fn predicted(&self, at_ms: i64) -> BBox {
        let s = (at_ms - self.last_ms).max(0) as f32 / 1000.0;
        BBox {
            x: self.bbox.x + self.velocity[0] * s,
            y: self.bbox.y + self.velocity[1] * s,
            w: (self.bbox.w + self.velocity[2] * s).max(0.005),
            h: (self.bbox.h + self.velocity[3] * s).max(0.005),
        }
    }
}

/// Everything the tracker remembers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrackerState {
    /// Id the next new track gets, minus one.
    pub last_id: u64,
    /// Live tracks (tentative and confirmed).
    pub tracks: Vec<Track>,
}

/// What one update did to a track.
#[derive(Debug, Clone, PartialEq)]
pub enum TrackChange {
    /// The track reached `min_hits` on this frame: a person is now counted.
    Confirmed(u64),
    /// A confirmed track was detected again on this frame.
    Seen(u64),
    /// A confirmed track was not detected on this frame (it may come back).
    Missed(u64),
    /// A confirmed track ended (not detected for longer than `max_lost_ms`); its last state.
    Ended(Track),
}

/// The tracker of one camera session.
#[derive(Debug, Clone)]
pub struct Tracker {
    config: TrackerConfig,
    state: TrackerState,
}

/// Weight of a new measurement against the prediction (alpha-beta filter).
const ALPHA: f32 = 0.7;
/// Weight of the new velocity estimate against the previous one.
const BETA: f32 = 0.5;
/// Weight of a detection's appearance against the track's.
const APPEARANCE_UPDATE: f32 = 0.3;
/// Appearance similarity at and below which a pair's affinity is cut to a twentieth; from it up to
/// `APPEARANCE_FULL` the cut eases off.
const APPEARANCE_FLOOR: f32 = 0.3;
/// Appearance similarity from which a pair keeps its whole motion affinity.
const APPEARANCE_FULL: f32 = 0.8;

impl Tracker {
    /// A tracker resuming from `state` (use `TrackerState::default()` for a new session).
    pub fn new(config: TrackerConfig, state: TrackerState) -> Tracker {
        Tracker { config, state }
    }

    /// The state to store.
    pub fn state(&self) -> &TrackerState {
        &self.state
    }

    /// The settings.
    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// Live tracks, confirmed or not.
    pub fn tracks(&self) -> &[Track] {
        &self.state.tracks
    }

    /// Associates one frame's detections with the live tracks, in the manner of ByteTrack: first the
    /// confident detections (`high`) with every live track, by an optimal assignment (Kuhn-Munkres over
    /// the pairs' affinities, not greedily); then the weak ones (`low`, which alone would be noise) with
    /// the confirmed tracks still unmatched, so a person the detector is unsure of for a frame (partly
    /// hidden, turning) keeps their track. Unmatched confident detections start tentative tracks;
    /// unmatched weak ones are dropped. Returns what changed for confirmed tracks, in track id order,
    /// and each detection that now belongs to a track with that track's id (confident ones first).
    pub fn update(
        &mut self,
        high: &[Detection],
        low: &[Detection],
        frame_index: u64,
        at_ms: i64,
    ) -> (Vec<TrackChange>, Vec<(u64, Detection)>) {
        let config = self.config;
        let live: Vec<usize> = (0..self.state.tracks.len()).collect();
        let first = assign(&self.state.tracks, &live, high, at_ms, &config);
        let mut matched = vec![false; self.state.tracks.len()];
        for (ti, _) in &first {
            matched[*ti] = true;
        }
        let waiting: Vec<usize> = live
            .into_iter()
            .filter(|ti| !matched[*ti] && self.state.tracks[*ti].confirmed(&config))
            .collect();
        let second = assign(&self.state.tracks, &waiting, low, at_ms, &config);
        for (ti, _) in &second {
            matched[*ti] = true;
        }

        let mut changes = Vec::new();
        let mut tracked = Vec::with_capacity(high.len() + second.len());
        let mut continued = vec![None; high.len()];
        for (ti, di) in first {
            continued[di] = Some(ti);
        }
        for (di, d) in high.iter().enumerate() {
            let id = match continued[di] {
                Some(ti) => self.continue_track(ti, d, frame_index, at_ms, &mut changes),
                None => {
                    self.state.last_id += 1;
                    let track = Track {
                        id: self.state.last_id,
                        bbox: d.bbox,
                        velocity: [0.0; 4],
                        first_bbox: Some(d.bbox),
                        hits: 1,
                        misses: 0,
                        first_frame: frame_index,
                        first_ms: at_ms,
                        last_frame: frame_index,
                        last_ms: at_ms,
                        score_sum: d.score,
                        appearance: d.appearance,
                    };
                    if track.confirmed(&config) {
                        changes.push(TrackChange::Confirmed(track.id));
                    }
                    self.state.tracks.push(track);
                    matched.push(true);
                    self.state.last_id
                }
            };
            tracked.push((id, *d));
        }
        for (ti, di) in second {
            let id = self.continue_track(ti, &low[di], frame_index, at_ms, &mut changes);
            tracked.push((id, low[di]));
        }

        let mut kept = Vec::with_capacity(self.state.tracks.len());
        for (track, was_matched) in std::mem::take(&mut self.state.tracks)
            .into_iter()
            .zip(matched)
        {
            if was_matched {
                kept.push(track);
                continue;
            }
            let mut track = track;
            track.misses += 1;
            let confirmed = track.confirmed(&config);
            let lost_ms = at_ms - track.last_ms;
            // A person whose predicted box has left the frame walked out: gone now, not after
            // `max_lost_ms` (occupancy would count them for that long).
            let left = outside_frame(&track.predicted(at_ms));
            if left || lost_ms > i64::from(config.max_lost_ms) || (!confirmed && track.misses > 1) {
                if confirmed {
                    changes.push(TrackChange::Ended(track));
                }
            } else {
                if confirmed {
                    changes.push(TrackChange::Missed(track.id));
                }
                kept.push(track);
            }
        }
        self.state.tracks = kept;
        changes.sort_by_key(|c| match c {
            TrackChange::Confirmed(id) | TrackChange::Seen(id) | TrackChange::Missed(id) => *id,
            TrackChange::Ended(t) => t.id,
        });
        (changes, tracked)
    }

    /// Continues track `ti` with detection `d`: the box smoothed against the prediction (alpha-beta),
    /// the speed re-estimated. Returns the track's id.
    fn continue_track(
        &mut self,
        ti: usize,
        d: &Detection,
        frame_index: u64,
        at_ms: i64,
        changes: &mut Vec<TrackChange>,
    ) -> u64 {
        let config = self.config;
        let track = &mut self.state.tracks[ti];
        let was_confirmed = track.confirmed(&config);
        let seconds = (at_ms - track.last_ms) as f32 / 1000.0;
        let p = track.predicted(at_ms);
        let m = d.bbox;
        let smoothed = BBox {
            x: p.x + ALPHA * (m.x - p.x),
            y: p.y + ALPHA * (m.y - p.y),
            w: p.w + ALPHA * (m.w - p.w),
            h: p.h + ALPHA * (m.h - p.h),
        };
        // Two frames at the same capture time say nothing about speed.
        if seconds > 0.0 {
            let measured_v = [
                (smoothed.x - track.bbox.x) / seconds,
                (smoothed.y - track.bbox.y) / seconds,
                (smoothed.w - track.bbox.w) / seconds,
                (smoothed.h - track.bbox.h) / seconds,
            ];
            if track.hits == 1 {
                // The second detection gives the first speed: taken whole (from the raw boxes), or
                // a walker's prediction lags a full step behind at low frame rates.
                let raw = [
                    (m.x - track.bbox.x) / seconds,
                    (m.y - track.bbox.y) / seconds,
                    (m.w - track.bbox.w) / seconds,
                    (m.h - track.bbox.h) / seconds,
                ];
                track.velocity = raw;
            } else {
                for (v, mv) in track.velocity.iter_mut().zip(measured_v) {
                    *v += BETA * (mv - *v);
                }
            }
        }
        // On the second detection the prediction knew no speed: the measurement stands as it is.
        track.bbox = if track.hits == 1 && seconds > 0.0 {
            m
        } else {
            smoothed
        };
        track.appearance = match (track.appearance, d.appearance) {
            (Some(a), Some(b)) => Some(a.blend(&b, APPEARANCE_UPDATE)),
            (a, b) => a.or(b),
        };
        track.hits += 1;
        track.misses = 0;
        track.last_frame = frame_index;
        track.last_ms = at_ms;
        track.score_sum += d.score;
        if !was_confirmed && track.confirmed(&config) {
            changes.push(TrackChange::Confirmed(track.id));
        } else if was_confirmed {
            changes.push(TrackChange::Seen(track.id));
        }
        track.id
    }

    /// Ends every live track (the session closes): the confirmed ones are returned.
    pub fn finish(&mut self) -> Vec<Track> {
        let config = self.config;
        std::mem::take(&mut self.state.tracks)
            .into_iter()
            .filter(|t| t.confirmed(&config))
            .collect()
    }
}

/// Whether a box's centre lies outside the frame or its bottom below it: its person walked out.
fn outside_frame(b: &BBox) -> bool {
    let (cx, cy) = b.centre();
    !(0.0..=1.0).contains(&cx) || !(0.0..=1.0).contains(&cy) || b.y > 1.0
}

/// Affinities are scaled to integers for the assignment.
const AFFINITY_SCALE: f32 = 1_000_000.0;
/// The weight of a pair that may not match: below any sum of allowed pairs.
const FORBIDDEN: i64 = -1_000_000_000_000;

/// The assignment of `detections` to the tracks `candidates` (indexes into `tracks`) that maximises the
/// summed affinity over allowed pairs; each track and detection in at most one pair. Returns (track
/// index, detection index) pairs.
fn assign(
    tracks: &[Track],
    candidates: &[usize],
    detections: &[Detection],
    at_ms: i64,
    config: &TrackerConfig,
) -> Vec<(usize, usize)> {
    let (n, m) = (candidates.len(), detections.len());
    if n == 0 || m == 0 {
        return Vec::new();
    }
    // One column per detection, then one "unmatched" column per track (weight 0), so every track has
    // a column and leaving a track unmatched beats any forbidden pair.
    let mut weights = Matrix::new(n, m + n, 0i64);
    for (row, ti) in candidates.iter().enumerate() {
        let track = &tracks[*ti];
        let predicted = track.predicted(at_ms);
        for (col, d) in detections.iter().enumerate() {
            weights[(row, col)] = affinity(&predicted, &d.bbox, config)
                .map(|a| a * resemblance(track.appearance.as_ref(), d.appearance.as_ref()))
                .map_or(FORBIDDEN, |a| (a * AFFINITY_SCALE).round() as i64);
        }
    }
    let (_, columns) = kuhn_munkres(&weights);
    columns
        .into_iter()
        .enumerate()
        .filter(|(row, col)| *col < m && weights[(*row, *col)] > 0)
        .map(|(row, col)| (candidates[row], col))
        .collect()
}

/// How much of a pair's motion affinity its appearance leaves: 1 for the same clothes, down to 0.05
/// for different ones (never 0: a person's look changes with light and pose, so motion still decides
/// when nobody else fits); 1 when either side was too small to measure.
fn resemblance(track: Option<&Appearance>, detection: Option<&Appearance>) -> f32 {
    match (track, detection) {
        (Some(a), Some(b)) => ((a.similarity(b) - APPEARANCE_FLOOR)
            / (APPEARANCE_FULL - APPEARANCE_FLOOR))
            .clamp(0.05, 1.0),
        _ => 1.0,
    }
}

/// How well a detection continues a track, or `None` if it cannot. Overlap matches always rank above
/// distance matches.
fn affinity(predicted: &BBox, detection: &BBox, config: &TrackerConfig) -> Option<f32> {
    let iou = predicted.iou(detection);
    if iou >= config.iou_threshold {
        return Some(1.0 + iou);
    }
    let size_ratio = (detection.h / predicted.h.max(1e-4)).max(predicted.h / detection.h.max(1e-4));
    if size_ratio > 1.6 {
        return None;
    }
    let (pc, dc) = (predicted.centre(), detection.centre());
    let distance = ((pc.0 - dc.0).powi(2) + (pc.1 - dc.1).powi(2)).sqrt() / predicted.h.max(1e-4);
    (distance <= config.max_centre_distance).then(|| 1.0 - distance / config.max_centre_distance)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32, y: f32) -> Detection {
        Detection {
            bbox: BBox {
                x,
                y,
                w: 0.05,
                h: 0.2,
            },
            score: 0.9,
            appearance: None,
        }
    }

    fn ended(changes: &[TrackChange]) -> Vec<u64> {
        changes
            .iter()
            .filter_map(|c| match c {
                TrackChange::Ended(t) => Some(t.id),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn two_walkers_keep_their_ids_through_a_missed_detection() {
        let mut t = Tracker::new(TrackerConfig::default(), TrackerState::default());
        let mut ids = Vec::new();
        for f in 0..20u64 {
            let a = det(0.1 + 0.02 * f as f32, 0.5);
            let b = det(0.8 - 0.02 * f as f32, 0.3);
            // Frame 7 misses the first walker; frames 12-13 miss the second.
            let dets: Vec<Detection> = match f {
                7 => vec![b],
                12 | 13 => vec![a],
                _ => vec![a, b],
            };
            let (changes, _) = t.update(&dets, &[], f, f as i64 * 1000);
            assert!(ended(&changes).is_empty(), "frame {f}: {changes:?}");
            ids.push(t.tracks().iter().map(|t| t.id).collect::<Vec<_>>());
        }
        assert_eq!(t.state().last_id, 2, "no track was split: {ids:?}");
        let done = t.finish();
        assert_eq!(done.len(), 2);
    }

    #[test]
    fn a_track_ends_by_time_at_any_frame_rate_and_noise_is_never_confirmed() {
        let config = TrackerConfig::default();
        let mut t = Tracker::new(config, TrackerState::default());
        t.update(&[det(0.5, 0.5)], &[], 0, 0);
        let (c, _) = t.update(&[det(0.51, 0.5)], &[], 1, 1000);
        assert_eq!(c, vec![TrackChange::Confirmed(1)]);
        // A one-frame blip elsewhere: tentative, dropped silently.
        let (c, _) = t.update(&[det(0.51, 0.5), det(0.1, 0.1)], &[], 2, 2000);
        assert_eq!(c, vec![TrackChange::Seen(1)]);
        // Gone after 2 s: at 5 frames/s the track lives through 3 s of empty frames (15 of them) and
        // ends on the first frame more than 3 s after it was last seen.
        let mut all = Vec::new();
        let mut ended_at = None;
        for f in 3..40u64 {
            let at = 2000 + (f - 2) as i64 * 200;
            let (c, _) = t.update(&[], &[], f, at);
            if !ended(&c).is_empty() && ended_at.is_none() {
                ended_at = Some(at);
            }
            all.extend(c);
        }
        assert_eq!(ended(&all), vec![1]);
        assert_eq!(ended_at, Some(2000 + i64::from(config.max_lost_ms) + 200));
        assert!(t.tracks().is_empty());
    }

    #[test]
    fn a_person_walking_out_of_the_frame_ends_at_once() {
        let mut t = Tracker::new(TrackerConfig::default(), TrackerState::default());
        // Walking right at 0.15 of the frame per second, last seen with the box's centre at 0.955.
        for f in 0..6u64 {
            let x = 0.18 + 0.15 * f as f32;
            let (c, _) = t.update(&[det(x, 0.4)], &[], f, f as i64 * 1000);
            assert!(ended(&c).is_empty(), "frame {f}: {c:?}");
        }
        let (c, _) = t.update(&[], &[], 6, 6000);
        assert_eq!(ended(&c), vec![1], "predicted outside the frame: gone");
        // One who stops being detected in the middle of the frame is only missed.
        let mut t = Tracker::new(TrackerConfig::default(), TrackerState::default());
        for f in 0..3u64 {
            t.update(&[det(0.4 + 0.01 * f as f32, 0.4)], &[], f, f as i64 * 1000);
        }
        let (c, _) = t.update(&[], &[], 3, 3000);
        assert_eq!(c, vec![TrackChange::Missed(1)]);
    }

    #[test]
    fn a_walker_at_one_frame_per_second_is_predicted_a_full_step_ahead() {
        // 0.15 of the frame per second, boxes 0.05 wide: consecutive boxes never overlap.
        let mut t = Tracker::new(TrackerConfig::default(), TrackerState::default());
        t.update(&[det(0.1, 0.4)], &[], 0, 0);
        t.update(&[det(0.25, 0.4)], &[], 1, 1000);
        let predicted = t.tracks()[0].predicted(2000);
        assert!(
            (predicted.x - 0.4).abs() < 0.03,
            "predicted at {} instead of 0.4",
            predicted.x
        );
    }

    #[test]
    fn speed_is_per_second_so_a_gap_in_frames_is_predicted_across() {
        let mut t = Tracker::new(TrackerConfig::default(), TrackerState::default());
        // A walker at 0.1 of the frame per second, seen every 200 ms, then not for 2 s (frames lost
        // upstream), then again where their speed puts them: the same track.
        for f in 0..10u64 {
            let x = 0.1 + 0.02 * f as f32;
            t.update(&[det(x, 0.4)], &[], f, f as i64 * 200);
        }
        let x = 0.1 + 0.02 * 19.0;
        let (c, tracked) = t.update(&[det(x, 0.4)], &[], 10, 19 * 200);
        assert_eq!(c, vec![TrackChange::Seen(1)], "{:?}", t.tracks());
        assert_eq!(
            tracked.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            vec![1]
        );
    }

    #[test]
    fn state_round_trips_so_a_restart_continues_the_same_tracks() {
        let mut t = Tracker::new(TrackerConfig::default(), TrackerState::default());
        for f in 0..3 {
            t.update(&[det(0.2 + 0.03 * f as f32, 0.4)], &[], f, 0);
        }
        let saved = serde_json::to_string(t.state()).unwrap();
        let mut resumed = Tracker::new(
            TrackerConfig::default(),
            serde_json::from_str(&saved).unwrap(),
        );
        let (c, tracked) = resumed.update(&[det(0.29, 0.4)], &[], 3, 0);
        assert_eq!(c, vec![TrackChange::Seen(1)]);
        assert_eq!(
            tracked.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            vec![1]
        );
    }

    #[test]
    fn the_assignment_is_optimal_where_greedy_matching_swaps_people() {
        // Two people walking right, A behind B. On the third frame A's detection lies closer to B's
        // prediction than to A's, and B's own detection is far ahead: greedy matching by best pair
        // gives B A's detection, A gets none and B's detection starts a new track (an identity
        // switch). The optimal assignment keeps both.
        let mut t = Tracker::new(TrackerConfig::default(), TrackerState::default());
        let at = |x: f32| det(x, 0.4);
        t.update(&[at(0.30), at(0.40)], &[], 0, 0);
        t.update(&[at(0.32), at(0.42)], &[], 1, 1000);
        // Predicted: A at 0.321, B at 0.421. A's detection at 0.38 (affinity 0.71 with A, 0.80 with
        // B), B's at 0.53 (0.46 with B, too far for A).
        let (_, tracked) = t.update(&[at(0.38), at(0.53)], &[], 2, 2000);
        let ids: Vec<u64> = tracked.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, vec![1, 2], "{:?}", t.tracks());
    }

    #[test]
    fn appearance_keeps_two_people_who_turn_back_from_swapping_tracks() {
        let dressed = |x: f32, hue_bin: usize| Detection {
            appearance: {
                let mut half = [0u32; APPEARANCE_HALF_BINS];
                half[hue_bin] = 100;
                Appearance::from_counts(&half, &half)
            },
            ..det(x, 0.4)
        };
        // A (red) walks right, B (blue) walks left; on the third frame both turn back where they
        // stand. By motion alone each detection lies where the other was predicted: the tracks swap.
        let run = |red: usize, blue: usize| {
            let mut t = Tracker::new(TrackerConfig::default(), TrackerState::default());
            t.update(&[dressed(0.30, red), dressed(0.60, blue)], &[], 0, 0);
            t.update(&[dressed(0.40, red), dressed(0.50, blue)], &[], 1, 1000);
            let (_, tracked) = t.update(&[dressed(0.42, red), dressed(0.48, blue)], &[], 2, 2000);
            tracked
                .iter()
                .map(|(id, d)| (*id, d.bbox.x))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            run(0, 0),
            vec![(2, 0.42), (1, 0.48)],
            "same clothes: motion decides"
        );
        assert_eq!(
            run(0, 5),
            vec![(1, 0.42), (2, 0.48)],
            "red stays red, blue stays blue"
        );
        let (red, blue) = (dressed(0.0, 0), dressed(0.0, 5));
        let (red, blue) = (red.appearance.unwrap(), blue.appearance.unwrap());
        assert_eq!(red.similarity(&red), 1.0);
        assert_eq!(red.similarity(&blue), 0.0);
    }

    #[test]
    fn a_weak_detection_keeps_a_track_but_starts_none() {
        let mut t = Tracker::new(TrackerConfig::default(), TrackerState::default());
        for f in 0..3u64 {
            t.update(&[det(0.2 + 0.01 * f as f32, 0.4)], &[], f, f as i64 * 1000);
        }
        // The detector is unsure for a frame (a low score): it continues the confirmed track...
        let weak = Detection {
            score: 0.3,
            ..det(0.23, 0.4)
        };
        let noise = Detection {
            score: 0.3,
            ..det(0.7, 0.1)
        };
        let (c, tracked) = t.update(&[], &[weak, noise], 3, 3000);
        assert_eq!(c, vec![TrackChange::Seen(1)]);
        assert_eq!(tracked, vec![(1, weak)]);
        // ...and a weak detection elsewhere starts nothing.
        assert_eq!(t.tracks().len(), 1);
    }

    #[test]
    fn iou_and_foot() {
        let a = BBox {
            x: 0.0,
            y: 0.0,
            w: 0.5,
            h: 0.5,
        };
        let b = BBox { x: 0.25, ..a };
        assert!((a.iou(&b) - 1.0 / 3.0).abs() < 1e-5);
        assert_eq!(a.foot(), (0.25, 0.5));
    }
}
