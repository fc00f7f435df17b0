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
fn retail_facts(batch: &BatchRecord) -> (serde_json::Value, Vec<String>, Option<String>) {
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
    if !tracks.is_empty() {
        tags.push("tracked".to_owned());
        parts.push(format!(
            "{} tracked {} ({} new), up to {} in view",
            tracks.len(),
            if tracks.len() == 1 {
                "person"
            } else {
                "people"
            },
            started,
            max_occupancy
        ));
    }
    for (zone, z) in &zones {
        let mean = (!z.dwell_ms.is_empty())
            .then(|| z.dwell_ms.iter().sum::<i64>() as f64 / z.dwell_ms.len() as f64 / 1000.0);
        parts.push(format!(
            "zone {zone}: {} entered, {} dwelt{}",
            z.visits,
            z.dwells,
            mean.map(|m| format!(", mean visit {m:.1} s"))
                .unwrap_or_default()
        ));
    }
    if !zones.is_empty() {
        tags.push("zone-visit".to_owned());
    }
    if zones.values().any(|z| z.dwells > 0) {
        tags.push("dwell".to_owned());
    }
    for (line, (i, o)) in &lines {
        parts.push(format!("line {line}: {i} in, {o} out"));
    }
    if !lines.is_empty() {
        tags.push("footfall".to_owned());
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
pub(crate) fn interaction_from_batch(batch: &BatchRecord) -> Interaction {
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
    let with_motion = frames
        .iter()
        .filter(|f| f.tags.iter().any(|t| t == "motion"))
        .count();

    let mut tag_counts: BTreeMap<&str, usize> = BTreeMap::new();
    for tag in frames.iter().flat_map(|f| &f.tags) {
        *tag_counts.entry(tag.as_str()).or_default() += 1;
    }
    let mut tags: Vec<(&str, usize)> = tag_counts.into_iter().collect();
    tags.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let movement = tags
        .iter()
        .find(|(t, _)| t.starts_with("moving-"))
        .map(|(t, _)| &t["moving-".len()..]);
    let (retail, retail_tags, retail_sentence) = retail_facts(batch);

    let mut summary = format!(
        "Camera {} frames {first_index}-{last_index} ({:.1} s, {} described): ",
        batch.camera_id,
        (to_ms - from_ms) as f64 / 1000.0,
        frames.len()
    );
    match retail_sentence {
        Some(s) => summary.push_str(&s),
        None => summary.push_str(&match max_people {
            0 => "no people detected".to_owned(),
            1 => "up to 1 person visible".to_owned(),
            k => format!("up to {k} people visible"),
        }),
    }
    if !frames.is_empty() {
        summary.push_str(&format!(
            "; motion in {with_motion} of {} frames",
            frames.len()
        ));
    }
    if let Some(dir) = movement {
        summary.push_str(&format!(", mostly moving {dir}"));
    }
    summary.push('.');
    for f in frames {
        summary.push_str(&format!(" [#{}] {}", f.frame_index, f.text));
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
