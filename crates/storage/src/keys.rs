//! Key layouts. Identifiers are validated upstream to `[A-Za-z0-9._-]`, so `\0` is a safe separator, and
//! numbers are big-endian so that sled's byte order is numeric order.

const SEP: u8 = 0;

/// `a \0 b`
pub(crate) fn pair(a: &str, b: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + b.len() + 1);
    k.extend_from_slice(a.as_bytes());
    k.push(SEP);
    k.extend_from_slice(b.as_bytes());
    k
}

/// `a \0` — the prefix of every key that starts with `a`.
pub(crate) fn prefix(a: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + 1);
    k.extend_from_slice(a.as_bytes());
    k.push(SEP);
    k
}

/// `a \0 n(8 bytes BE)`
pub(crate) fn indexed(a: &str, n: u64) -> Vec<u8> {
    let mut k = prefix(a);
    k.extend_from_slice(&n.to_be_bytes());
    k
}

/// The trailing big-endian u64 of an [`indexed`] key.
pub(crate) fn index_of(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

/// `stored_at_ms(8 bytes BE) session \0 frame_index`: a keyframe's entry in the oldest-first order
/// that retention prunes by.
pub(crate) fn keyframe_order(stored_at_ms: i64, frame_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + frame_key.len());
    k.extend_from_slice(&(stored_at_ms.max(0) as u64).to_be_bytes());
    k.extend_from_slice(frame_key);
    k
}

/// A [`keyframe_order`] key's time and frame key; `None` when it is too short to be one.
pub(crate) fn split_keyframe_order(order: &[u8]) -> Option<(i64, &[u8])> {
    let stored_at: [u8; 8] = order.get(..8)?.try_into().ok()?;
    let stored_at = i64::try_from(u64::from_be_bytes(stored_at)).unwrap_or(i64::MAX);
    Some((stored_at, &order[8..]))
}

/// The keyframe size stored as the value of a [`keyframe_order`] entry.
pub(crate) fn keyframe_size(key: &[u8], value: &[u8]) -> crate::Result<u64> {
    let bytes: [u8; 8] = value
        .try_into()
        .map_err(|_| crate::StorageError::corrupt(key, "keyframe size is not 8 bytes"))?;
    Ok(u64::from_be_bytes(bytes))
}

/// The 8 bytes that order timestamps newest first: the sign bit flipped (so negative timestamps sort before
/// positive ones), then every bit inverted (descending order).
pub(crate) fn newest_first(timestamp_ms: i64) -> [u8; 8] {
    (!((timestamp_ms as u64) ^ (1 << 63))).to_be_bytes()
}

/// Position of a record in every newest-first tree: `!ts(8 bytes) id`, ties broken by id.
pub(crate) fn position(timestamp_ms: i64, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + id.len());
    k.extend_from_slice(&newest_first(timestamp_ms));
    k.extend_from_slice(id.as_bytes());
    k
}

/// The timestamp and id of a [`position`]; `None` unless it is one (8 bytes, then a non-empty UTF-8 id).
pub(crate) fn parse_position(position: &[u8]) -> Option<(i64, &str)> {
    let (head, id) = position.split_at_checked(8)?;
    let inverted = u64::from_be_bytes(head.try_into().ok()?);
    let timestamp_ms = ((!inverted) ^ (1 << 63)) as i64;
    let id = std::str::from_utf8(id).ok().filter(|id| !id.is_empty())?;
    Some((timestamp_ms, id))
}

/// Interaction key: `org \0 !ts(8 bytes) id`, so that a forward scan is newest first.
pub(crate) fn interaction(org: &str, timestamp_ms: i64, id: &str) -> Vec<u8> {
    let mut k = prefix(org);
    k.extend_from_slice(&position(timestamp_ms, id));
    k
}

/// Prefix of the secondary index of one source: `org \0 s \0 source \0`; entries append a position.
pub(crate) fn source_index(org: &str, source: &str) -> Vec<u8> {
    let mut k = prefix(org);
    k.extend_from_slice(b"s\0");
    k.extend_from_slice(source.as_bytes());
    k.push(SEP);
    k
}

/// Prefix of the secondary index of one search word: `org \0 t \0 word \0`; entries append a position.
pub(crate) fn word_index(org: &str, word: &str) -> Vec<u8> {
    let mut k = prefix(org);
    k.extend_from_slice(b"t\0");
    k.extend_from_slice(word.as_bytes());
    k.push(SEP);
    k
}

/// The first key after every key that starts with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    // Only reachable for an all-0xFF prefix, which no key layout here produces.
    vec![u8::MAX; prefix.len() + 1]
}

/// The 8 bytes that order timestamps oldest first: the sign bit flipped.
pub(crate) fn oldest_first(timestamp_ms: i64) -> [u8; 8] {
    ((timestamp_ms as u64) ^ (1 << 63)).to_be_bytes()
}

/// Prefix of one camera's metric buckets of one width: `org \0 camera \0 width`.
pub(crate) fn metric_prefix(org: &str, camera: &str, width_code: u8) -> Vec<u8> {
    let mut k = pair(org, camera);
    k.push(SEP);
    k.push(width_code);
    k
}

/// Metric bucket key: `org \0 camera \0 width start(8 bytes, oldest first)`.
pub(crate) fn metric_bucket(org: &str, camera: &str, width_code: u8, start_ms: i64) -> Vec<u8> {
    let mut k = metric_prefix(org, camera, width_code);
    k.extend_from_slice(&oldest_first(start_ms));
    k
}

/// The camera, width code and start of a [`metric_bucket`] key whose organization prefix is known.
pub(crate) fn parse_metric_bucket(key: &[u8], org_prefix_len: usize) -> Option<(&str, u8, i64)> {
    let rest = key.get(org_prefix_len..)?;
    let sep = rest.iter().position(|b| *b == SEP)?;
    let camera = std::str::from_utf8(&rest[..sep]).ok()?;
    let tail = rest.get(sep + 1..)?;
    let (code, start) = tail.split_first()?;
    let start: [u8; 8] = start.try_into().ok()?;
    Some((
        camera,
        *code,
        (u64::from_be_bytes(start) ^ (1 << 63)) as i64,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interaction_keys_sort_newest_first() {
        let a = interaction("org", -5, "a");
        let b = interaction("org", 0, "a");
        let c = interaction("org", 1_700_000_000_000, "a");
        let d = interaction("org", 1_700_000_000_000, "b");
        assert!(c < b && b < a, "newer timestamps must sort first");
        assert!(c < d, "equal timestamps sort by id");
    }

    #[test]
    fn prefix_end_bounds_exactly_the_prefix() {
        let p = source_index("org", "web");
        let end = prefix_end(&p);
        let mut inside = p.clone();
        inside.extend_from_slice(&[0xFF; 12]);
        assert!(p < end && inside < end);
        assert!(source_index("org", "wec") >= end);
    }

    #[test]
    fn positions_round_trip() {
        for ts in [i64::MIN + 1, -5, 0, 1_700_000_000_000] {
            assert_eq!(parse_position(&position(ts, "id-1")), Some((ts, "id-1")));
        }
        assert_eq!(parse_position(&newest_first(3)), None, "an id is required");
        assert_eq!(parse_position(b"short"), None);
    }

    #[test]
    fn index_round_trips() {
        assert_eq!(index_of(&indexed("s", 42)), Some(42));
        assert_eq!(index_of(b"short"), None);
    }
}
