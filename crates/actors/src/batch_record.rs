//! The `cctv` interaction record a batch becomes: its deterministic id, the retail facts measured
//! from its track events and occupancy, its summary, tags and data.

use std::collections::{BTreeMap, BTreeSet};

use crow_storage::{now_ms, BatchRecord, Interaction, SourceType, TrackEventKind};
use serde_json::json;

/// The frames a batch covers.
pub(crate) fn frame_range(batch: &BatchRecord) -> (u64, u64) {
    batch.frame_range.unwrap_or((
        batch.frames.first().map_or(0, |f| f.frame_index),
        batch.frames.last().map_or(0, |f| f.frame_index),
    ))
}

/// Deterministic id of the interaction derived from a batch.
pub(crate) fn batch_interaction_id(session_id: &str, batch_index: u64) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("crow:cctv:{session_id}:{batch_index}").as_bytes(),
    )
    .to_string()
}

/// Retail facts of a batch, from its track events and occupancy: what the record's summary and
/// `data.retail` say.
fn retail_facts(
    batch: &BatchRecord,
    names: &BTreeMap<String, String>,
) -> (serde_json::Value, Vec<String>, Option<String>) {
    let events = &batch.events;
    let tracks: BTreeSet<u64> = events.iter().map(|e| e.track_id).collect();
    let started = events
        .iter()
        .filter(|e| e.kind == TrackEventKind::TrackStarted)
        .count();
    let max_occupancy = batch.occupancy.iter().map(|o| o.people).max().unwrap_or(0);
    #[derive(Default)]
    struct Zone {
        visits: usize,
        dwells: usize,
        exits: usize,
        dwell_ms: Vec<i64>,
    }
    let mut zones: BTreeMap<&str, Zone> = BTreeMap::new();
    let mut lines: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for e in events {
        let place = e.place.as_deref().unwrap_or("");
        match e.kind {
            TrackEventKind::ZoneEnter => zones.entry(place).or_default().visits += 1,
            TrackEventKind::ZoneDwell => zones.entry(place).or_default().dwells += 1,
            TrackEventKind::ZoneExit => {
                let z = zones.entry(place).or_default();
                z.exits += 1;
                z.dwell_ms.extend(e.dwell_ms);
            }
            TrackEventKind::LineIn => lines.entry(place).or_default().0 += 1,
            TrackEventKind::LineOut => lines.entry(place).or_default().1 += 1,
            TrackEventKind::TrackStarted | TrackEventKind::TrackEnded => {}
        }
    }
    let mut tags = Vec::new();
    let mut parts = Vec::new();
    let people = |n: usize| {
        if n == 1 {
            "1 person".to_owned()
        } else {
            format!("{n} people")
        }
    };
    // Who did what where, in plain words: zones (with their products by name), then tripwires.
    let zone_products = |zone: &str| -> Vec<String> {
        let mut ids: Vec<&String> = events
            .iter()
            .filter(|e| e.place.as_deref() == Some(zone))
            .flat_map(|e| &e.product_ids)
            .collect();
        ids.sort();
        ids.dedup();
        ids.into_iter()
            .map(|id| names.get(id).cloned().unwrap_or_else(|| id.clone()))
            .collect()
    };
    for (zone, z) in &zones {
        let products = zone_products(zone);
        let place = if products.is_empty() {
            (*zone).to_owned()
        } else {
            format!("{zone} ({})", products.join(", "))
        };
        let s = |ms: i64| format!("{:.1}", ms as f64 / 1000.0);
        let (min, max) = (
            z.dwell_ms.iter().min().copied().unwrap_or(0),
            z.dwell_ms.iter().max().copied().unwrap_or(0),
        );
        let ended = match z.dwell_ms.len() {
            0 => None,
            1 => Some(format!("1 visit ended after {} s", s(min))),
            n => Some(format!("{n} visits ended after {}-{} s", s(min), s(max))),
        };
        let who = if z.dwells > 0 {
            Some(format!("{} stopped at {place}", people(z.dwells)))
        } else if z.visits > 0 {
            Some(format!("{} walked into {place}", people(z.visits)))
        } else {
            None
        };
        let sentence = match (who, ended) {
            (Some(who), Some(ended)) => format!("{who}, {ended} there"),
            (Some(who), None) => who,
            (None, Some(ended)) => format!("{ended} at {place}"),
            (None, None) => continue,
        };
        parts.push(sentence);
    }
    if !zones.is_empty() {
        tags.push("zone-visit".to_owned());
    }
    if zones.values().any(|z| z.dwells > 0) {
        tags.push("dwell".to_owned());
    }
    for (line, (i, o)) in &lines {
        parts.push(match (*i, *o) {
            (i, 0) => format!("{} came in through {line}", people(i)),
            (0, o) => format!("{} went out through {line}", people(o)),
            (i, o) => format!("{} came in through {line} and {o} went out", people(i)),
        });
    }
    if !lines.is_empty() {
        tags.push("footfall".to_owned());
    }
    if !tracks.is_empty() {
        tags.push("tracked".to_owned());
        let new = if started > 0 {
            format!(", {started} first seen")
        } else {
            String::new()
        };
        parts.push(format!(
            "up to {} in view{new}",
            people(max_occupancy as usize)
        ));
    }
    let facts = json!({
        "people_tracked": tracks.len(),
        "new_tracks": started,
        "max_occupancy": max_occupancy,
        "zones": zones.iter().map(|(id, z)| (id.to_string(), json!({
            "entered": z.visits, "dwelt": z.dwells, "exited": z.exits, "visit_dwell_ms": z.dwell_ms,
        }))).collect::<serde_json::Map<_, _>>(),
        "lines": lines.iter().map(|(id, (i, o))| (id.to_string(), json!({"in": i, "out": o})))
            .collect::<serde_json::Map<_, _>>(),
    });
    let sentence = (!parts.is_empty()).then(|| parts.join("; "));
    (facts, tags, sentence)
}

/// Builds the record: a summary of what was measured (tracks, zones, crossings) and what the frames
/// showed, the union of their tags (most frequent first), their mean confidence, and the frames, events
/// and occupancy themselves in `data`.
pub(crate) fn interaction_from_batch(
    batch: &BatchRecord,
    names: &BTreeMap<String, String>,
) -> Interaction {
    let frames = &batch.frames;
    let (first_index, last_index) = frame_range(batch);
    let times: Vec<i64> = frames
        .iter()
        .map(|f| f.captured_at_ms)
        .chain(batch.events.iter().map(|e| e.at_ms))
        .chain(batch.occupancy.iter().map(|o| o.at_ms))
        .collect();
    let (from_ms, to_ms) = (
        times.iter().copied().min().unwrap_or(0),
        times.iter().copied().max().unwrap_or(0),
    );

    let max_people = frames
        .iter()
        .map(|f| {
            f.details
                .get("people")
                .and_then(|p| p.as_array())
                .map_or(0, Vec::len)
        })
        .chain(batch.occupancy.iter().map(|o| o.people as usize))
        .max()
        .unwrap_or(0);
    let mut tag_counts: BTreeMap<&str, usize> = BTreeMap::new();
    for tag in frames.iter().flat_map(|f| &f.tags) {
        *tag_counts.entry(tag.as_str()).or_default() += 1;
    }
    let mut tags: Vec<(&str, usize)> = tag_counts.into_iter().collect();
    tags.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let (retail, retail_tags, retail_sentence) = retail_facts(batch, names);

    let clock = |ms: i64| crow_storage::metrics_report::utc(ms, "%H:%M:%S");
    let mut summary = format!(
        "Camera {} {}-{} UTC: ",
        batch.camera_id,
        clock(from_ms),
        clock(to_ms)
    );
    match retail_sentence {
        Some(s) => summary.push_str(&s),
        None => summary.push_str(&match max_people {
            0 => "nobody in view".to_owned(),
            1 => "1 person in view".to_owned(),
            k => format!("up to {k} people in view"),
        }),
    }
    summary.push('.');
    // What a vision model saw, in its words; the embedded OpenCV describer's measurements (motion,
    // movement) stay in `data.frames`.
    let seen: Vec<String> = frames
        .iter()
        .filter(|f| f.describer != crow_inference::describer::OPENCV_DESCRIBER)
        .map(|f| format!("[#{}] {}", f.frame_index, f.text))
        .collect();
    if !seen.is_empty() {
        summary.push_str(" Seen: ");
        summary.push_str(&seen.join(" "));
    }
    let confidence = if frames.is_empty() {
        // Only track events: the tracks' mean detector score.
        let scores: Vec<f32> = batch.events.iter().map(|e| e.score).collect();
        scores.iter().sum::<f32>() / scores.len().max(1) as f32
    } else {
        frames.iter().map(|f| f.confidence).sum::<f32>() / frames.len() as f32
    };
    let mut all_tags: Vec<String> = retail_tags;
    all_tags.extend(tags.into_iter().map(|(t, _)| t.to_owned()));
    Interaction {
        id: batch_interaction_id(&batch.session_id, batch.batch_index),
        organization_id: batch.organization_id.clone(),
        source_type: SourceType::Cctv,
        session_id: Some(batch.session_id.clone()),
        data: json!({
            "camera_id": batch.camera_id,
            "batch_index": batch.batch_index,
            "frame_range": [first_index, last_index],
            "captured_from_ms": from_ms,
            "captured_to_ms": to_ms,
            "max_people": max_people,
            "retail": retail,
            "events": batch.events,
            "occupancy": batch.occupancy,
            "frames": frames.iter().map(|f| json!({
                "frame_index": f.frame_index,
                "captured_at_ms": f.captured_at_ms,
                "describer": f.describer,
                "text": f.text,
                "confidence": f.confidence,
                "tags": f.tags,
                "details": f.details,
            })).collect::<Vec<_>>(),
        }),
        summary,
        confidence: confidence.clamp(0.0, 1.0),
        tags: all_tags,
        product_ids: Vec::new(),
        timestamp_ms: from_ms,
        created_at_ms: now_ms(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crow_storage::{FrameAnalysis, OccupancySample, TrackEvent};

    fn event(kind: TrackEventKind, track: u64, at_ms: i64, place: Option<&str>) -> TrackEvent {
        TrackEvent {
            kind,
            track_id: track,
            frame_index: track,
            at_ms,
            place: place.map(str::to_owned),
            dwell_ms: None,
            product_ids: Vec::new(),
            score: 0.9,
            evidence_frames: Vec::new(),
        }
    }

    #[test]
    fn the_summary_says_who_did_what_where_with_products_by_name() {
        let t0 = 1_764_000_000_000; // 16:00:00 UTC
        let mut events = Vec::new();
        for (track, dwell) in [(1, 4_000), (2, 6_500), (3, 9_000)] {
            let mut stop = event(
                TrackEventKind::ZoneDwell,
                track,
                t0 + 3_000,
                Some("display-1"),
            );
            stop.product_ids = vec!["sku-1".into()];
            events.push(stop);
            let mut exit = event(
                TrackEventKind::ZoneExit,
                track,
                t0 + dwell,
                Some("display-1"),
            );
            exit.dwell_ms = Some(dwell);
            exit.product_ids = vec!["sku-1".into()];
            events.push(exit);
        }
        for track in 4..7 {
            events.push(event(
                TrackEventKind::LineIn,
                track,
                t0 + 1_000,
                Some("door"),
            ));
        }
        for track in 7..9 {
            events.push(event(
                TrackEventKind::LineOut,
                track,
                t0 + 2_000,
                Some("door"),
            ));
        }
        let batch = BatchRecord {
            session_id: "s".into(),
            organization_id: "shop".into(),
            camera_id: "floor".into(),
            batch_index: 0,
            frames: vec![FrameAnalysis {
                frame_index: 5,
                captured_at_ms: t0 + 5_000,
                describer: crow_inference::describer::OPENCV_DESCRIBER.into(),
                text: "motion in 8 regions covering 4.8% of the frame".into(),
                confidence: 0.5,
                tags: vec!["motion".into()],
                details: serde_json::json!({}),
            }],
            created_at_ms: t0 + 10_000,
            frame_range: Some((0, 10)),
            events,
            occupancy: vec![OccupancySample {
                frame_index: 0,
                at_ms: t0,
                people: 4,
            }],
        };
        let names = BTreeMap::from([("sku-1".to_owned(), "Red running shoes".to_owned())]);
        let record = interaction_from_batch(&batch, &names);
        assert_eq!(
            record.summary,
            "Camera floor 16:00:00-16:00:09 UTC: 3 people stopped at display-1 (Red running shoes), 3 \
             visits ended after 4.0-9.0 s there; 3 people came in through door and 2 went out; up to 4 \
             people in view.",
        );
        // The describer's measurements stay in the data.
        assert_eq!(
            record.data["frames"][0]["text"],
            "motion in 8 regions covering 4.8% of the frame"
        );
        assert!(record.tags.contains(&"footfall".to_owned()));
    }
}
