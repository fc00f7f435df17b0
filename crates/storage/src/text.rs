//! Search words: how text is cut into the words the search index holds and queries look up.

use std::collections::BTreeSet;

use crate::model::Interaction;

/// Shortest indexed word, in characters.
pub const MIN_WORD_CHARS: usize = 1;
/// Longest indexed word, in characters; longer runs are cut to this.
pub const MAX_WORD_CHARS: usize = 40;
/// Most distinct words indexed per record (the first ones found: summary, tags, products, then data).
pub const MAX_WORDS_PER_RECORD: usize = 96;

/// The search words of `text`: maximal runs of letters and digits, lowercased, at least
/// [`MIN_WORD_CHARS`] long, cut to [`MAX_WORD_CHARS`]. `"Sku-101 Red-Shoes!"` gives `sku`, `101`, `red`,
/// `shoes`.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= MIN_WORD_CHARS)
        .map(|w| {
            w.chars()
                .take(MAX_WORD_CHARS)
                .flat_map(char::to_lowercase)
                .collect()
        })
}

/// The words a record is found by: its summary, tags, product ids and every string in its data.
pub fn interaction_words(i: &Interaction) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut add = |text: &str| {
        for w in words(text) {
            if out.len() >= MAX_WORDS_PER_RECORD {
                return;
            }
            out.insert(w);
        }
    };
    add(&i.summary);
    i.tags.iter().for_each(|t| add(t));
    i.product_ids.iter().for_each(|p| add(p));
    let mut stack = vec![&i.data];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::String(s) => add(s),
            serde_json::Value::Array(a) => stack.extend(a.iter().rev()),
            serde_json::Value::Object(o) => stack.extend(o.values().rev()),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lowercase_alphanumeric_runs() {
        let w: Vec<String> = words("Sku-101 Red-Shoes! a Ümlaut").collect();
        assert_eq!(w, ["sku", "101", "red", "shoes", "a", "ümlaut"]);
    }
}
