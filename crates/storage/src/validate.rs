//! Rules for what clients may send, applied before anything is stored: identifiers (which the key
//! layouts of this crate rely on, see `keys.rs`) and `CreateInteraction` events. Every message names the
//! field and the rule in the client's terms.

use serde_json::Value;

use crate::{now_ms, NewInteraction, SourceType};

/// Longest identifier (organization, camera, session, product, idempotency key), characters.
pub const MAX_ID_LEN: usize = 128;

/// A request that breaks a rule; the message is safe to return to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// Checks an identifier from outside: 1..=128 characters of `[A-Za-z0-9._-]`, so that `\0` stays a
/// safe key separator.
pub fn id(what: &str, id: &str) -> Result<(), Invalid> {
    if id.is_empty() {
        return Err(invalid(format!("{what} is required")));
    }
    if id.len() > MAX_ID_LEN {
        return Err(invalid(format!(
            "{what} is longer than {MAX_ID_LEN} characters"
        )));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(invalid(format!(
            "{what} may only contain A-Z, a-z, 0-9, '.', '_' and '-'"
        )));
    }
    Ok(())
}

/// Limits on one event (from `[pipeline.limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLimits {
    /// Largest `data_json`, bytes.
    pub max_data_bytes: usize,
    /// Deepest nesting of `data_json`.
    pub max_data_depth: usize,
    /// Longest summary, characters.
    pub max_summary_chars: usize,
}

/// Most product ids one event may name.
pub const MAX_EVENT_PRODUCTS: usize = 32;
/// How far in the future an event's timestamp may be, ms (clock skew between a store and crow).
pub const MAX_FUTURE_MS: i64 = 24 * 3_600_000;

/// A `CreateInteraction` request, before validation.
#[derive(Debug, Clone, Default)]
pub struct CreateInteraction {
    /// Owning organization.
    pub organization_id: String,
    /// Where it came from; `None` when the caller did not say.
    pub source_type: Option<SourceType>,
    /// The event's details: must be a JSON object.
    pub data_json: String,
    /// CCTV session, if any.
    pub session_id: Option<String>,
    /// Caller's summary, if any.
    pub summary: Option<String>,
    /// When it happened; `None` means now.
    pub timestamp_ms: Option<i64>,
    /// Catalog product ids it is about.
    pub product_ids: Vec<String>,
    /// Idempotency key, if any.
    pub idempotency_key: Option<String>,
}

fn invalid(m: impl Into<String>) -> Invalid {
    Invalid(m.into())
}

fn too_deep(limits: &EventLimits) -> Invalid {
    invalid(format!(
        "data_json is nested deeper than pipeline.limits.max_data_depth ({})",
        limits.max_data_depth
    ))
}

fn depth(v: &Value) -> usize {
    // Iterative, so a hostile nesting cannot overflow the stack (serde_json already caps parsing at 128).
    let mut max = 0;
    let mut stack = vec![(v, 1usize)];
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|x| (x, d + 1))),
            Value::Object(o) => stack.extend(o.values().map(|x| (x, d + 1))),
            _ => {}
        }
    }
    max
}

/// Checks a `CreateInteraction` request against the limits and returns the event to enqueue (with a
/// fresh, time-ordered id). Pure: no I/O, no panics on any input (fuzzed by `fuzz/fuzz_targets`).
pub fn event(req: CreateInteraction, limits: &EventLimits) -> Result<NewInteraction, Invalid> {
    id("organization_id", &req.organization_id)?;
    let source_type = req
        .source_type
        .ok_or_else(|| invalid("source_type is required (web, cctv or social)"))?;
    if req.data_json.len() > limits.max_data_bytes {
        return Err(invalid(format!(
            "data_json is larger than pipeline.limits.max_data_bytes ({} bytes)",
            limits.max_data_bytes
        )));
    }
    let data: Value = if req.data_json.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        serde_json::from_str(&req.data_json).map_err(|e| {
            // serde_json stops at 128 levels; that is the depth limit too, in the user's terms.
            if e.to_string().starts_with("recursion limit exceeded") {
                too_deep(limits)
            } else {
                invalid(format!(
                    "data_json is not valid JSON (line {}, column {})",
                    e.line(),
                    e.column()
                ))
            }
        })?
    };
    if !data.is_object() {
        return Err(invalid("data_json must be a JSON object"));
    }
    if depth(&data) > limits.max_data_depth {
        return Err(too_deep(limits));
    }
    if let Some(s) = &req.session_id {
        id("session_id", s)?;
    }
    let summary = match req.summary {
        Some(s) if s.chars().count() > limits.max_summary_chars => {
            return Err(invalid(format!(
                "summary is longer than pipeline.limits.max_summary_chars ({} characters)",
                limits.max_summary_chars
            )))
        }
        Some(s) if s.trim().is_empty() => None,
        other => other,
    };
    let now = now_ms();
    let timestamp_ms = match req.timestamp_ms {
        None => now,
        Some(t) if t < 0 => return Err(invalid("timestamp_ms must not be negative")),
        Some(t) if t > now + MAX_FUTURE_MS => {
            return Err(invalid("timestamp_ms is more than 24 hours in the future"))
        }
        Some(t) => t,
    };
    if req.product_ids.len() > MAX_EVENT_PRODUCTS {
        return Err(invalid(format!(
            "product_ids has more than {MAX_EVENT_PRODUCTS} ids"
        )));
    }
    let mut product_ids: Vec<String> = Vec::new();
    for p in req.product_ids {
        id("product_ids[]", &p)?;
        if !product_ids.contains(&p) {
            product_ids.push(p);
        }
    }
    if let Some(k) = &req.idempotency_key {
        id("idempotency_key", k)?;
    }
    Ok(NewInteraction {
        id: uuid::Uuid::now_v7().to_string(),
        organization_id: req.organization_id,
        source_type,
        session_id: req.session_id,
        data,
        summary,
        product_ids,
        timestamp_ms,
        received_at_ms: now,
        idempotency_key: req.idempotency_key,
    })
}

/// Most zones, tripwires or masks per camera.
pub const MAX_CAMERA_SHAPES: usize = 32;
/// The person detector's input width and height, pixels.
pub const DETECTOR_INPUT_SIDES: std::ops::RangeInclusive<u32> = 32..=4096;
/// The person detector's tiles per column and per row.
pub const DETECTOR_TILES: std::ops::RangeInclusive<u32> = 1..=4;
/// Most corners of one polygon.
pub const MAX_POLYGON_POINTS: usize = 64;
/// Most products one zone may be mapped to.
pub const MAX_ZONE_PRODUCTS: usize = 32;

fn point(what: &str, p: [f32; 2]) -> Result<(), Invalid> {
    if p.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)) {
        Ok(())
    } else {
        Err(invalid(format!(
            "{what}: coordinates are normalised to the frame and must lie in 0..1, got ({}, {})",
            p[0], p[1]
        )))
    }
}

fn polygon(what: &str, points: &[[f32; 2]]) -> Result<(), Invalid> {
    if !(3..=MAX_POLYGON_POINTS).contains(&points.len()) {
        return Err(invalid(format!(
            "{what} needs 3 to {MAX_POLYGON_POINTS} points, got {}",
            points.len()
        )));
    }
    for p in points {
        point(what, *p)?;
    }
    Ok(())
}

/// Checks that both numbers of an optional pair lie in `range`; `what` says what the pair is.
fn pair_within(
    what: &str,
    pair: Option<[u32; 2]>,
    range: std::ops::RangeInclusive<u32>,
) -> Result<(), Invalid> {
    match pair {
        Some(p) if !p.iter().all(|v| range.contains(v)) => Err(invalid(format!(
            "{what}, each {}..={}, got {}x{}",
            range.start(),
            range.end(),
            p[0],
            p[1]
        ))),
        _ => Ok(()),
    }
}

/// Checks a camera configuration: identifiers, 0..1 coordinates, polygon sizes, unique zone and line
/// ids, bounded counts.
pub fn camera(c: &crate::CameraConfig) -> Result<(), Invalid> {
    id("organization_id", &c.organization_id)?;
    id("camera_id", &c.camera_id)?;
    for (what, n) in [
        ("zones", c.zones.len()),
        ("lines", c.lines.len()),
        ("masks", c.masks.len()),
    ] {
        if n > MAX_CAMERA_SHAPES {
            return Err(invalid(format!(
                "a camera may have at most {MAX_CAMERA_SHAPES} {what}, got {n}"
            )));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for z in &c.zones {
        id("zone id", &z.id)?;
        if !seen.insert(z.id.as_str()) {
            return Err(invalid(format!("zone id {:?} appears twice", z.id)));
        }
        polygon(&format!("zone {:?}", z.id), &z.polygon)?;
        if z.product_ids.len() > MAX_ZONE_PRODUCTS {
            return Err(invalid(format!(
                "zone {:?} maps more than {MAX_ZONE_PRODUCTS} products",
                z.id
            )));
        }
        for p in &z.product_ids {
            id("zone product id", p)?;
        }
        if z.min_dwell_ms > 3_600_000 {
            return Err(invalid(format!(
                "zone {:?}: min_dwell_ms is at most one hour (3600000)",
                z.id
            )));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for l in &c.lines {
        id("line id", &l.id)?;
        if !seen.insert(l.id.as_str()) {
            return Err(invalid(format!("line id {:?} appears twice", l.id)));
        }
        point(&format!("line {:?}", l.id), l.a)?;
        point(&format!("line {:?}", l.id), l.b)?;
        if l.a == l.b {
            return Err(invalid(format!("line {:?} has equal end points", l.id)));
        }
    }
    for (i, m) in c.masks.iter().enumerate() {
        polygon(&format!("mask {i}"), m)?;
    }
    pair_within(
        "detector_input is width and height in pixels",
        c.detector_input,
        DETECTOR_INPUT_SIDES,
    )?;
    pair_within(
        "detector_tiles is columns and rows",
        c.detector_tiles,
        DETECTOR_TILES,
    )?;
    Ok(())
}
