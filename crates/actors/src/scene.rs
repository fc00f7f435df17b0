//! A session's view of its camera: the person tracker, the camera's zones, tripwires and masks, the
//! retail events they yield, and the gate that decides which frames are worth describing.
//!
//! Owned by one `IngestSessionActor`; its whole state ([`SceneState`]) is stored with every frame in the
//! session record, so a restarted actor continues the same tracks and visits and counts nobody twice.
//!
//! The gate describes a frame only for something that happened to a person: a new track, a zone entered,
//! a dwell reached, or the person's feet moving notably since their last described frame, and at most
//! `max_describes_per_track` times per track. Pixels alone never trigger it: lighting drift, an exposure
//! step or a blinking sign change no track, and detections whose feet lie in a motion mask are ignored.

use std::collections::BTreeMap;

use crow_inference::zones::{crossing, polygon_contains, signed_distance, Crossing, Point};
use crow_inference::{BBox, Detection, Track, TrackChange, Tracker, TrackerState};
use crow_storage::{CameraConfig, OccupancySample, TrackEvent, TrackEventKind};
use serde::{Deserialize, Serialize};

use crate::config::PerceptionConfig;

/// One zone visit of one track.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Visit {
    entered_frame: u64,
    entered_ms: i64,
    /// The last detection with the feet inside (`entered_ms` until a later one).
    #[serde(default)]
    last_inside_ms: Option<i64>,
    /// The enter frame was described (its keyframe is evidence).
    entered_described: bool,
    dwell_reported: bool,
}

impl Visit {
    /// The visit's dwell: from the first to the last detection with the feet inside. The one
    /// definition `zone_dwell`, `zone_exit` and the products they name share.
    fn dwell_ms(&self) -> i64 {
        self.last_inside_ms.unwrap_or(self.entered_ms) - self.entered_ms
    }
}

/// The side of a tripwire a track was last seen clearly on, and where its feet were then.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct LineSide {
    /// On the side a crossing "in" ends on.
    inside: bool,
    /// The feet.
    at: Point,
}

/// Feet closer to a tripwire than this fraction of the person's box height are on neither side once a
/// side is known: a crossing is counted when the feet are clearly on the other side, so a person
/// standing on the line, or a box jittering across it, is not counted in and out again.
const LINE_MARGIN: f32 = 0.1;

/// What the scene remembers of one confirmed track.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct TrackScene {
    /// Tripwire id -> the side the track was last seen clearly on.
    #[serde(default)]
    line_sides: BTreeMap<String, LineSide>,
    /// Zone id -> the visit in progress.
    visits: BTreeMap<String, Visit>,
    /// Feet in the last described frame that showed the track.
    described_foot: Option<Point>,
    /// Frames described because of this track.
    described: u32,
    /// The first described frame that showed it.
    first_described: Option<u64>,
}

/// Everything a session's scene stores.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct SceneState {
    tracker: TrackerState,
    tracks: BTreeMap<u64, TrackScene>,
    /// Events not yet handed to a batch, in frame order.
    pending_events: Vec<TrackEvent>,
    /// Occupancy changes not yet handed to a batch.
    pending_occupancy: Vec<OccupancySample>,
    /// Confirmed tracks in view after the latest frame.
    people: u32,
    /// Capture time of the last frame the gate sent to the describer.
    #[serde(default)]
    last_described_ms: Option<i64>,
    /// The tracked people (outside the masks) of the last frame the detector looked at: what a
    /// frame the near-duplicate gate finds unchanged shows.
    #[serde(default)]
    last_people: Vec<Detection>,
    /// Capture time of the last frame the detector looked at.
    #[serde(default)]
    last_detected_ms: Option<i64>,
}

/// What one frame's tracking yielded.
struct Followed {
    /// Each person of the frame with the id of the track it belongs to.
    tracked: Vec<(u64, Detection)>,
    /// The events of the frame.
    events: Vec<TrackEvent>,
    /// Reasons to describe the frame: (track, reason, urgent).
    reasons: Vec<(u64, String, bool)>,
}

/// The gate's decision for one frame.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    /// Describe it; the reasons, e.g. "new person 3".
    Describe(Vec<String>),
    /// The detector found nobody (outside the masks).
    NoPerson,
    /// People, but nothing new for them.
    Gated(String),
    /// Worth describing, but the describer has no room: nothing is marked as described, so what
    /// triggered it triggers again on a later frame.
    Shed(Vec<String>),
}

/// A session's scene.
pub(crate) struct Scene {
    config: PerceptionConfig,
    camera: Option<CameraConfig>,
    tracker: Tracker,
    state: SceneState,
}

impl Scene {
    /// A scene resuming from `stored` (the session record's `scene`; null for a new session).
    pub(crate) fn resume(config: PerceptionConfig, stored: &serde_json::Value) -> Scene {
        let mut state: SceneState = if stored.is_null() {
            SceneState::default()
        } else {
            serde_json::from_value(stored.clone()).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "stored scene state is unreadable; tracking starts afresh");
                SceneState::default()
            })
        };
        let tracker = Tracker::new(config.tracker, std::mem::take(&mut state.tracker));
        Scene {
            config,
            camera: None,
            tracker,
            state,
        }
    }

    /// The state to store.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let mut state = self.state.clone();
        state.tracker = self.tracker.state().clone();
        serde_json::to_value(state).unwrap_or_default()
    }

    /// The camera's own detector input, if it sets one.
    pub(crate) fn detector_input(&self) -> Option<[u32; 2]> {
        self.camera.as_ref().and_then(|c| c.detector_input)
    }

    /// The camera's own detector tiles, if it sets them.
    pub(crate) fn detector_tiles(&self) -> Option<[u32; 2]> {
        self.camera.as_ref().and_then(|c| c.detector_tiles)
    }

    /// Uses this camera configuration from the next frame on.
    pub(crate) fn set_camera(&mut self, camera: Option<CameraConfig>) {
        self.camera = camera;
    }

    /// Whether events or occupancy changes wait for a batch.
    pub(crate) fn has_pending(&self) -> bool {
        !self.state.pending_events.is_empty() || !self.state.pending_occupancy.is_empty()
    }

    /// Hands over the events and occupancy changes measured up to and including `last_frame`.
    pub(crate) fn take_through(
        &mut self,
        last_frame: u64,
    ) -> (Vec<TrackEvent>, Vec<OccupancySample>) {
        let split = |len: usize, pos: usize| pos.min(len);
        let events = &mut self.state.pending_events;
        let n = split(
            events.len(),
            events.partition_point(|e| e.frame_index <= last_frame),
        );
        let taken_events: Vec<TrackEvent> = events.drain(..n).collect();
        let occupancy = &mut self.state.pending_occupancy;
        let n = split(
            occupancy.len(),
            occupancy.partition_point(|o| o.frame_index <= last_frame),
        );
        (taken_events, occupancy.drain(..n).collect())
    }

    /// Judges one decoded, non-duplicate frame from its person detections. `room` says whether the
    /// describer can take the frame now.
    pub(crate) fn observe(
        &mut self,
        detections: &[Detection],
        frame_index: u64,
        at_ms: i64,
        room: bool,
    ) -> (Verdict, Vec<(u64, Detection)>) {
        let masks: &[Vec<[f32; 2]>] = self.camera.as_ref().map_or(&[], |c| &c.masks);
        let (people, weak): (Vec<Detection>, Vec<Detection>) = detections
            .iter()
            .filter(|d| !masks.iter().any(|m| polygon_contains(m, d.bbox.foot())))
            .partition(|d| d.score >= self.config.min_score);
        let Followed {
            tracked,
            mut events,
            mut reasons,
        } = self.track(&people, &weak, frame_index, at_ms);
        let nobody = tracked.is_empty();
        self.state.last_people = tracked.iter().map(|(_, d)| *d).collect();
        self.state.last_detected_ms = Some(at_ms);
        // The cap: a track that has been described often enough triggers nothing more.
        let cap = self.config.max_describes_per_track;
        let capped: Vec<u64> = reasons
            .iter()
            .filter(|(id, _, _)| {
                self.state
                    .tracks
                    .get(id)
                    .is_some_and(|t| t.described >= cap)
            })
            .map(|(id, _, _)| *id)
            .collect();
        reasons.retain(|(id, _, _)| !capped.contains(id));
        let recently = self
            .state
            .last_described_ms
            .is_some_and(|t| at_ms.saturating_sub(t) < self.config.min_describe_interval_ms as i64);
        let verdict = if nobody {
            Verdict::NoPerson
        } else if reasons.is_empty() {
            Verdict::Gated(if capped.is_empty() {
                "no new person, zone change or notable movement".to_owned()
            } else {
                format!("description cap reached for track {}", capped[0])
            })
        } else if recently && !reasons.iter().any(|(_, _, urgent)| *urgent) {
            Verdict::Gated(format!(
                "a frame was described less than {} ms ago",
                self.config.min_describe_interval_ms
            ))
        } else if !room {
            Verdict::Shed(reasons.into_iter().map(|(_, r, _)| r).collect())
        } else {
            self.state.last_described_ms = Some(at_ms);
            let mut triggering: Vec<u64> = reasons.iter().map(|(id, _, _)| *id).collect();
            triggering.dedup();
            for id in triggering {
                self.state.tracks.entry(id).or_default().described += 1;
            }
            // Every track this frame shows has been seen where it is now.
            for (id, d) in &tracked {
                let t = self.state.tracks.entry(*id).or_default();
                t.described_foot = Some(d.bbox.foot());
                t.first_described.get_or_insert(frame_index);
            }
            for e in &mut events {
                e.evidence_frames.push(frame_index);
            }
            for t in self.state.tracks.values_mut() {
                for v in t.visits.values_mut() {
                    if v.entered_frame == frame_index {
                        v.entered_described = true;
                    }
                }
            }
            Verdict::Describe(reasons.into_iter().map(|(_, r, _)| r).collect())
        };
        self.settle(events);
        (verdict, tracked)
    }

    /// Queues a frame's events for the next batch and forgets the tentative tracks the tracker
    /// dropped.
    fn settle(&mut self, mut events: Vec<TrackEvent>) {
        for e in &mut events {
            e.evidence_frames.sort_unstable();
            e.evidence_frames.dedup();
        }
        let live: Vec<u64> = self.tracker.tracks().iter().map(|t| t.id).collect();
        self.state.tracks.retain(|id, _| live.contains(id));
        self.state.pending_events.extend(events);
    }

    /// A frame the near-duplicate gate found unchanged since the last one the detector looked at: it
    /// shows the same people where they were, so the scene's clock moves on with them (dwell grows,
    /// people who left before that frame age out and their tracks end), and nothing is described.
    /// Returns whether the scene changed (an empty scene without tracks stays as it is).
    /// Whether a frame at `at_ms` should be detected even if it is a near-duplicate: someone is
    /// tracked and the detector last looked `interval_ms` or more ago (0: never). A person standing
    /// still, or moving less than the duplicate gate sees (a small person far away), is looked at again
    /// at that rate, so their track follows where they are.
    pub(crate) fn detection_due(&self, at_ms: i64, interval_ms: u64) -> bool {
        interval_ms > 0
            && !self.tracker.tracks().is_empty()
            && self
                .state
                .last_detected_ms
                .is_none_or(|t| at_ms.saturating_sub(t) >= interval_ms as i64)
    }

    pub(crate) fn observe_unchanged(&mut self, frame_index: u64, at_ms: i64) -> bool {
        if self.tracker.tracks().is_empty() && self.state.last_people.is_empty() {
            return false;
        }
        let people = std::mem::take(&mut self.state.last_people);
        let followed = self.track(&people, &[], frame_index, at_ms);
        self.state.last_people = people;
        self.settle(followed.events);
        true
    }

    /// Updates the tracker with one frame's people (and weak detections, which may only continue a
    /// track) and follows every confirmed track.
    fn track(
        &mut self,
        people: &[Detection],
        weak: &[Detection],
        frame_index: u64,
        at_ms: i64,
    ) -> Followed {
        let (changes, tracked) = self.tracker.update(people, weak, frame_index, at_ms);

        let mut events = Vec::new();
        // (track, reason, urgent): zone entries and dwells are described at once, the rest at most once
        // per `min_describe_interval_ms`.
        let mut reasons: Vec<(u64, String, bool)> = Vec::new();
        // A person not yet shown to the describer is worth a look, before the track is confirmed: a
        // camera sending sparse frames may never show them twice. Until a frame that shows them is
        // described, they stay new.
        for (id, _) in &tracked {
            let shown = self
                .state
                .tracks
                .get(id)
                .is_some_and(|t| t.first_described.is_some());
            if !shown {
                reasons.push((*id, format!("new person {id}"), false));
            }
        }
        for change in &changes {
            match change {
                TrackChange::Confirmed(id) | TrackChange::Seen(id) => {
                    let Some(track) = self.tracker.tracks().iter().find(|t| t.id == *id).cloned()
                    else {
                        continue;
                    };
                    let confirmed_now = matches!(change, TrackChange::Confirmed(_));
                    if confirmed_now {
                        let mut e = event(TrackEventKind::TrackStarted, &track, None);
                        e.evidence_frames.extend(
                            self.state
                                .tracks
                                .get(&track.id)
                                .and_then(|t| t.first_described),
                        );
                        events.push(e);
                    }
                    // Where the detector saw the feet on this frame (the track's box is smoothed,
                    // and lags a walker).
                    let Some(seen) = tracked.iter().find(|(t, _)| t == id).map(|(_, d)| d.bbox)
                    else {
                        continue;
                    };
                    self.follow(&track, seen, confirmed_now, &mut events, &mut reasons);
                }
                TrackChange::Missed(_) => {}
                TrackChange::Ended(track) => self.end(track, frame_index, at_ms, &mut events),
            }
        }

        // People in view: confirmed tracks (also while they coast through a missed detection), and
        // people detected on this frame whose track is not confirmed yet (a newcomer is in the scene
        // from their first detection, not their second).
        let people_now = self
            .tracker
            .tracks()
            .iter()
            .filter(|t| t.confirmed(self.tracker.config()) || t.last_frame == frame_index)
            .count() as u32;
        if people_now != self.state.people {
            self.state.people = people_now;
            self.state.pending_occupancy.push(OccupancySample {
                frame_index,
                at_ms,
                people: people_now,
            });
        }

        Followed {
            tracked,
            events,
            reasons,
        }
    }

    /// Zone visits, dwell, tripwires and movement of a track detected on this frame at `seen`. A track confirmed
    /// on this frame is first placed where it was first detected, so a zone it stood in and a line it
    /// crossed since then count from that detection (its events carry this frame, the one that
    /// confirmed them).
    fn follow(
        &mut self,
        track: &Track,
        seen: BBox,
        confirmed_now: bool,
        events: &mut Vec<TrackEvent>,
        reasons: &mut Vec<(u64, String, bool)>,
    ) {
        let foot = seen.foot();
        let movement = self.config.movement_threshold;
        let scene = self.state.tracks.entry(track.id).or_default();
        let first = track.first_bbox.filter(|_| confirmed_now);
        if let Some(d) = scene.described_foot {
            if distance(d, foot) >= movement {
                reasons.push((track.id, format!("person {} moved", track.id), false));
            }
        }
        let Some(camera) = &self.camera else {
            return;
        };
        for zone in &camera.zones {
            let enter = |visits: &mut BTreeMap<String, Visit>,
                         events: &mut Vec<TrackEvent>,
                         frame: u64,
                         at_ms: i64| {
                visits.insert(
                    zone.id.clone(),
                    Visit {
                        entered_frame: frame,
                        entered_ms: at_ms,
                        last_inside_ms: Some(at_ms),
                        entered_described: false,
                        dwell_reported: false,
                    },
                );
                let mut e = event(TrackEventKind::ZoneEnter, track, Some(&zone.id));
                e.product_ids = zone.product_ids.clone();
                events.push(e);
            };
            if let Some(first) = first {
                if polygon_contains(&zone.polygon, first.foot()) {
                    enter(&mut scene.visits, events, track.first_frame, track.first_ms);
                }
            }
            let inside = polygon_contains(&zone.polygon, foot);
            match (inside, scene.visits.get_mut(&zone.id)) {
                (true, None) => {
                    enter(&mut scene.visits, events, track.last_frame, track.last_ms);
                    reasons.push((
                        track.id,
                        format!("person {} entered {}", track.id, zone.id),
                        true,
                    ));
                }
                (true, Some(visit)) => {
                    visit.last_inside_ms = Some(track.last_ms);
                    if !visit.dwell_reported && visit.dwell_ms() >= zone.min_dwell_ms as i64 {
                        visit.dwell_reported = true;
                        let mut e = event(TrackEventKind::ZoneDwell, track, Some(&zone.id));
                        e.dwell_ms = Some(visit.dwell_ms());
                        e.product_ids = zone.product_ids.clone();
                        if visit.entered_described {
                            e.evidence_frames.push(visit.entered_frame);
                        }
                        events.push(e);
                        reasons.push((
                            track.id,
                            format!("person {} dwelt in {}", track.id, zone.id),
                            true,
                        ));
                    }
                }
                (false, Some(visit)) => {
                    let mut e = event(TrackEventKind::ZoneExit, track, Some(&zone.id));
                    e.dwell_ms = Some(visit.dwell_ms());
                    e.product_ids = zone.product_ids.clone();
                    if visit.entered_described {
                        e.evidence_frames.push(visit.entered_frame);
                    }
                    scene.visits.remove(&zone.id);
                    events.push(e);
                }
                (false, None) => {}
            }
        }
        // Where the feet were clearly on one side of each tripwire: from the first detection (for a
        // track confirmed now), then this one.
        let sightings: Vec<BBox> = first.into_iter().chain([seen]).collect();
        for line in &camera.lines {
            let (a, b) = ((line.a[0], line.a[1]), (line.b[0], line.b[1]));
            for sighting in &sightings {
                let feet = sighting.foot();
                let distance = signed_distance(a, b, feet);
                // Near the wire the side counts only until a clear one is known (a track first seen
                // on the line still counts its crossing).
                if distance == 0.0
                    || (distance.abs() < LINE_MARGIN * sighting.h
                        && scene.line_sides.contains_key(&line.id))
                {
                    continue;
                }
                let now = LineSide {
                    inside: distance > 0.0,
                    at: feet,
                };
                let before = scene.line_sides.insert(line.id.clone(), now);
                let Some(before) = before.filter(|b| b.inside != now.inside) else {
                    continue;
                };
                // On the other side now; counted if the way there passed through the wire (not
                // around one of its ends).
                if let Some(way) = crossing(a, b, before.at, feet) {
                    let kind = match way {
                        Crossing::In => TrackEventKind::LineIn,
                        Crossing::Out => TrackEventKind::LineOut,
                    };
                    events.push(event(kind, track, Some(&line.id)));
                }
            }
        }
    }

    /// A track ended, declared on frame `frame_index`: its open visits end, then the track. Dwell
    /// times run to its last detection inside; the events belong to the frame that declared them, so that
    /// they fall in the batch of that frame.
    fn end(&mut self, track: &Track, frame_index: u64, at_ms: i64, events: &mut Vec<TrackEvent>) {
        let declared = |mut e: TrackEvent| {
            e.frame_index = frame_index;
            e.at_ms = at_ms;
            e
        };
        if let Some(scene) = self.state.tracks.remove(&track.id) {
            let products = |zone: &str| {
                self.camera
                    .as_ref()
                    .and_then(|c| c.zones.iter().find(|z| z.id == zone))
                    .map(|z| z.product_ids.clone())
                    .unwrap_or_default()
            };
            for (zone, visit) in scene.visits {
                let mut e = event(TrackEventKind::ZoneExit, track, Some(&zone));
                e.dwell_ms = Some(visit.dwell_ms());
                e.product_ids = products(&zone);
                if visit.entered_described {
                    e.evidence_frames.push(visit.entered_frame);
                }
                events.push(declared(e));
            }
        }
        let mut e = event(TrackEventKind::TrackEnded, track, None);
        e.dwell_ms = Some(track.last_ms - track.first_ms);
        events.push(declared(e));
    }

    /// The session closes: every live track ends.
    pub(crate) fn finish(&mut self, frame_index: u64, at_ms: i64) {
        let mut events = Vec::new();
        for track in self.tracker.finish() {
            self.end(&track, frame_index, at_ms, &mut events);
        }
        self.state.tracks.clear();
        self.state.pending_events.extend(events);
        if self.state.people != 0 {
            self.state.people = 0;
            self.state.pending_occupancy.push(OccupancySample {
                frame_index,
                at_ms,
                people: 0,
            });
        }
    }
}

fn distance(a: Point, b: Point) -> f32 {
    ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt()
}

/// An event of `track` on its latest detection.
fn event(kind: TrackEventKind, track: &Track, place: Option<&str>) -> TrackEvent {
    TrackEvent {
        kind,
        track_id: track.id,
        frame_index: track.last_frame,
        at_ms: track.last_ms,
        place: place.map(str::to_owned),
        dwell_ms: None,
        product_ids: Vec::new(),
        score: (track.mean_score() * 1000.0).round() / 1000.0,
        evidence_frames: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crow_storage::{LineConfig, ZoneConfig};

    fn person(x: f32, y: f32) -> Detection {
        Detection {
            bbox: BBox {
                x,
                y,
                w: 0.06,
                h: 0.2,
            },
            score: 0.8,
            appearance: None,
        }
    }

    fn camera() -> CameraConfig {
        CameraConfig {
            organization_id: "o".into(),
            camera_id: "c".into(),
            zones: vec![ZoneConfig {
                id: "shelf".into(),
                polygon: vec![[0.4, 0.0], [0.6, 0.0], [0.6, 1.0], [0.4, 1.0]],
                product_ids: vec!["sku-1".into()],
                min_dwell_ms: 2_000,
            }],
            lines: vec![LineConfig {
                id: "door".into(),
                a: [0.8, 0.0],
                b: [0.8, 1.0],
            }],
            masks: vec![vec![[0.0, 0.0], [0.1, 0.0], [0.1, 1.0], [0.0, 1.0]]],
            detector_input: None,
            detector_tiles: None,
            updated_at_ms: 0,
        }
    }

    /// A new scene of the test camera.
    fn watching() -> Scene {
        let mut scene = Scene::resume(PerceptionConfig::default(), &serde_json::Value::Null);
        scene.set_camera(Some(camera()));
        scene
    }

    fn kinds(events: &[TrackEvent]) -> Vec<(TrackEventKind, Option<String>)> {
        events.iter().map(|e| (e.kind, e.place.clone())).collect()
    }

    /// The door events of a person whose feet are at `xs` (one frame a second) until the session ends.
    fn door_events(xs: &[f32]) -> Vec<TrackEventKind> {
        let mut scene = watching();
        for (f, x) in xs.iter().enumerate() {
            scene.observe(&[person(*x - 0.03, 0.5)], f as u64, f as i64 * 1000, true);
        }
        let end = xs.len() as u64;
        scene.finish(end, end as i64 * 1000);
        let (events, _) = scene.take_through(end);
        events
            .iter()
            .filter(|e| e.place.as_deref() == Some("door"))
            .map(|e| e.kind)
            .collect()
    }

    #[test]
    fn a_person_standing_on_the_line_is_counted_once() {
        use TrackEventKind::LineOut;
        // Walks up to the door (x = 0.8), stands on it with the feet jittering across it, walks on.
        let xs = [
            0.70, 0.75, 0.78, 0.795, 0.805, 0.797, 0.804, 0.799, 0.806, 0.85, 0.9,
        ];
        assert_eq!(door_events(&xs), vec![LineOut]);
        // First seen on the line: the crossing still counts.
        assert_eq!(door_events(&[0.795, 0.83, 0.86]), vec![LineOut]);
        // Turns back on the line without crossing it: nothing.
        assert_eq!(
            door_events(&[0.72, 0.76, 0.79, 0.805, 0.79, 0.75]),
            Vec::<TrackEventKind>::new()
        );
    }

    #[test]
    fn a_walker_enters_dwells_leaves_and_crosses_the_line() {
        let mut scene = watching();
        let mut verdicts = Vec::new();
        // Walks right: 0.2 -> 0.47 (in the shelf zone, 3 s) -> 0.9 (across the line), one frame a second.
        let xs = [
            0.2, 0.28, 0.36, 0.45, 0.46, 0.46, 0.47, 0.55, 0.65, 0.75, 0.85, 0.9,
        ];
        for (f, x) in xs.iter().enumerate() {
            let (v, _) = scene.observe(&[person(*x - 0.03, 0.5)], f as u64, f as i64 * 1000, true);
            verdicts.push(v);
        }
        scene.finish(12, 12_000);
        let (events, occupancy) = scene.take_through(12);
        use TrackEventKind::*;
        let shelf = Some("shelf".to_owned());
        assert_eq!(
            kinds(&events),
            vec![
                (TrackStarted, None),
                (ZoneEnter, shelf.clone()),
                (ZoneDwell, shelf.clone()),
                (ZoneExit, shelf.clone()),
                // The wire is drawn top to bottom: its "in" side is the left.
                (LineOut, Some("door".into())),
                (TrackEnded, None),
            ],
            "{events:#?}"
        );
        let dwell = events.iter().find(|e| e.kind == ZoneDwell).unwrap();
        assert_eq!(dwell.product_ids, vec!["sku-1".to_owned()]);
        assert!(dwell.dwell_ms.unwrap() >= 2_000);
        assert!(
            !dwell.evidence_frames.is_empty(),
            "the enter frame was described"
        );
        assert_eq!(
            occupancy.iter().map(|o| o.people).collect::<Vec<_>>(),
            vec![1, 0]
        );
        assert!(
            matches!(verdicts[0], Verdict::Describe(_)),
            "a new person: {:?}",
            verdicts[0]
        );
        assert!(
            matches!(verdicts[1], Verdict::Gated(_)),
            "confirmed, not moved far: {:?}",
            verdicts[1]
        );
        assert!(
            matches!(verdicts[4], Verdict::Gated(_)),
            "standing still: {:?}",
            verdicts[4]
        );
        assert!(
            matches!(verdicts[5], Verdict::Describe(_)),
            "the dwell is reached and shown"
        );
    }

    #[test]
    fn masked_people_and_empty_frames_are_not_people() {
        let mut scene = watching();
        for f in 0..5 {
            // Feet inside the mask on the left edge.
            let (v, _) = scene.observe(&[person(0.02, 0.5)], f, f as i64 * 1000, true);
            assert_eq!(v, Verdict::NoPerson);
        }
        let (v, _) = scene.observe(&[], 5, 5000, true);
        assert_eq!(v, Verdict::NoPerson);
        assert!(!scene.has_pending());
    }

    #[test]
    fn the_state_survives_a_restart_without_counting_twice() {
        let mut scene = watching();
        for f in 0..3 {
            scene.observe(
                &[person(0.2 + 0.01 * f as f32, 0.5)],
                f,
                f as i64 * 1000,
                true,
            );
        }
        let stored = scene.to_json();
        let mut resumed = Scene::resume(PerceptionConfig::default(), &stored);
        resumed.set_camera(Some(camera()));
        resumed.observe(&[person(0.23, 0.5)], 3, 3000, true);
        let (events, _) = resumed.take_through(3);
        let started = events
            .iter()
            .filter(|e| e.kind == TrackEventKind::TrackStarted)
            .count();
        assert_eq!(started, 1, "{events:?}");
    }

    #[test]
    fn a_dwell_of_exactly_the_minimum_is_a_dwell_and_exit_and_dwell_agree() {
        let mut scene = watching();
        // Outside, then inside the shelf zone at 1, 2 and 3 s (2 s from first to last, the zone's
        // minimum), then outside.
        let xs = [0.35, 0.47, 0.47, 0.47, 0.63];
        for (f, x) in xs.iter().enumerate() {
            scene.observe(&[person(*x - 0.03, 0.5)], f as u64, f as i64 * 1000, true);
        }
        let (events, _) = scene.take_through(10);
        let dwell: Vec<i64> = events
            .iter()
            .filter(|e| e.kind == TrackEventKind::ZoneDwell)
            .map(|e| e.dwell_ms.unwrap())
            .collect();
        let exit: Vec<i64> = events
            .iter()
            .filter(|e| e.kind == TrackEventKind::ZoneExit)
            .map(|e| e.dwell_ms.unwrap())
            .collect();
        assert_eq!(dwell, vec![2000], "{events:#?}");
        assert_eq!(exit, vec![2000], "{events:#?}");
    }

    #[test]
    fn a_crossing_between_the_first_two_detections_counts() {
        let mut scene = watching();
        // First seen just left of the door line (x 0.8), then right of it: confirmed on the second
        // detection, with the crossing. Starting inside the shelf zone counts that visit from the first
        // detection too.
        scene.observe(&[person(0.72, 0.5)], 0, 0, true);
        scene.observe(&[person(0.82, 0.5)], 1, 1000, true);
        let mut other = watching();
        other.observe(&[person(0.47, 0.5)], 0, 0, true);
        other.observe(&[person(0.47, 0.5)], 1, 1000, true);
        other.observe(&[person(0.47, 0.5)], 2, 2000, true);
        let (events, _) = scene.take_through(10);
        use TrackEventKind::*;
        assert_eq!(
            kinds(&events),
            vec![(TrackStarted, None), (LineOut, Some("door".into()))]
        );
        let (events, _) = other.take_through(10);
        let shelf = Some("shelf".to_owned());
        assert_eq!(
            kinds(&events),
            vec![
                (TrackStarted, None),
                (ZoneEnter, shelf.clone()),
                (ZoneDwell, shelf)
            ],
            "the 2 s dwell counts from the first detection: {events:#?}"
        );
    }

    #[test]
    fn unchanged_frames_keep_a_standing_person_and_end_one_who_left() {
        let mut scene = watching();
        // Someone stands in the shelf zone: two detected frames, then frames the near-duplicate gate
        // finds unchanged. They are still there: the visit's dwell grows to the zone's minimum.
        scene.observe(&[person(0.44, 0.5)], 0, 0, true);
        scene.observe(&[person(0.44, 0.5)], 1, 1000, true);
        for f in 2..6 {
            scene.observe_unchanged(f, f as i64 * 1000);
        }
        let (events, occupancy) = scene.take_through(10);
        assert!(
            events
                .iter()
                .any(|e| e.kind == TrackEventKind::ZoneDwell && e.dwell_ms == Some(2000)),
            "{events:#?}"
        );
        assert!(!events.iter().any(|e| e.kind == TrackEventKind::TrackEnded));
        assert_eq!(occupancy.last().map(|o| o.people), Some(1));
        // They leave: one detected frame without them, then a still, empty scene. The track ends once
        // it has been gone for longer than max_lost_ms, and occupancy returns to 0.
        scene.observe(&[], 6, 6000, true);
        for f in 7..15 {
            scene.observe_unchanged(f, f as i64 * 1000);
        }
        let (events, occupancy) = scene.take_through(20);
        let ended: Vec<&TrackEvent> = events
            .iter()
            .filter(|e| e.kind == TrackEventKind::TrackEnded)
            .collect();
        assert_eq!(ended.len(), 1, "{events:#?}");
        // Last seen (unchanged) at 5 s; gone for more than 3 s at 9 s.
        assert_eq!(ended[0].at_ms, 9000);
        assert_eq!(occupancy.last().map(|o| o.people), Some(0));
    }
}
