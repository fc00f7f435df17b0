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

/// Interaction key: `org \0 !ts(8 bytes) id`, so that a forward scan is newest first, ties broken by id.
pub(crate) fn interaction(org: &str, timestamp_ms: i64, id: &str) -> Vec<u8> {
    let mut k = prefix(org);
    // Flip the sign bit so negative timestamps sort before positive ones, then invert for descending order.
    let ordered = (timestamp_ms as u64) ^ (1 << 63);
    k.extend_from_slice(&(!ordered).to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
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
    fn index_round_trips() {
        assert_eq!(index_of(&indexed("s", 42)), Some(42));
        assert_eq!(index_of(b"short"), None);
    }
}
