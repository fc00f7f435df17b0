//! GBNF grammars generated from the shape of the JSON a task expects, so that a constrained model's output
//! always parses into that shape. The JSON is compact (the grammar allows no whitespace a small model
//! could spend its tokens on) and every repetition is bounded, so generation always terminates.

/// The shape of a JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonShape {
    /// An object with exactly these fields, in this order.
    Object(Vec<(String, JsonShape)>),
    /// An array of `min..=max` items of one shape.
    Array {
        /// Item shape.
        item: Box<JsonShape>,
        /// Fewest items.
        min: usize,
        /// Most items.
        max: usize,
    },
    /// A string of at most `max_chars` characters (no escapes, no control characters).
    String {
        /// Most characters.
        max_chars: usize,
    },
    /// One of these strings exactly (e.g. catalog ids). An empty list allows nothing, so an array of it
    /// can only be empty.
    OneOf(Vec<String>),
    /// One of these integers exactly (e.g. frame indexes). An empty list allows nothing.
    OneOfInt(Vec<u64>),
    /// A number from 0 to 1 with at most two decimals (`0`, `0.7`, `0.85`, `1`, `1.0`).
    Probability,
    /// An array of at most `max` of these item shapes, each at most once and in the order given: a
    /// subset without repeats (e.g. distinct frame indexes in increasing order).
    Subset {
        /// The candidate items, in the order they must appear.
        items: Vec<JsonShape>,
        /// Most items.
        max: usize,
    },
}

impl JsonShape {
    /// An object shape from `(name, shape)` pairs.
    pub fn object<'a>(fields: impl IntoIterator<Item = (&'a str, JsonShape)>) -> JsonShape {
        JsonShape::Object(fields.into_iter().map(|(n, s)| (n.to_owned(), s)).collect())
    }

    /// The most characters an answer of this shape can have. Every token a constrained model emits adds
    /// at least one character (short of a multi-byte character split over tokens), so a token budget of
    /// this size lets the longest answer the grammar allows finish: the JSON always parses.
    pub fn max_chars(&self) -> usize {
        match self {
            JsonShape::Object(fields) => {
                2 + fields
                    .iter()
                    .map(|(name, shape)| name.chars().count() + 3 + shape.max_chars())
                    .sum::<usize>()
                    + fields.len().saturating_sub(1)
            }
            JsonShape::Array { item, max, .. } => 2 + max * (item.max_chars() + 1),
            JsonShape::String { max_chars } => max_chars + 2,
            JsonShape::OneOf(values) => values
                .iter()
                .map(|v| v.chars().count() + 2)
                .max()
                .unwrap_or(2),
            JsonShape::OneOfInt(values) => values
                .iter()
                .map(|v| v.to_string().len())
                .max()
                .unwrap_or(1),
            JsonShape::Probability => 4,
            JsonShape::Subset { items, max } => {
                let longest = items.iter().map(JsonShape::max_chars).max().unwrap_or(0);
                2 + (*max).min(items.len()) * (longest + 1)
            }
        }
    }

    /// The GBNF grammar whose `root` is this shape.
    pub fn to_gbnf(&self) -> String {
        let mut rules = Vec::new();
        let root = self.rule(&mut rules, "root");
        let mut out = format!("root ::= {root}\n");
        for (name, body) in rules {
            out.push_str(&format!("{name} ::= {body}\n"));
        }
        out
    }

    /// Returns an expression for this shape, adding named rules for its parts.
    fn rule(&self, rules: &mut Vec<(String, String)>, hint: &str) -> String {
        match self {
            JsonShape::Object(fields) => {
                let mut parts = vec!["\"{\"".to_owned()];
                for (i, (name, shape)) in fields.iter().enumerate() {
                    if i > 0 {
                        parts.push("\",\"".to_owned());
                    }
                    let value = shape.rule(rules, &format!("{hint}-{}", sanitize(name)));
                    parts.push(format!(
                        "{} \":\" ( {value} )",
                        literal(&format!("\"{name}\""))
                    ));
                }
                parts.push("\"}\"".to_owned());
                parts.join(" ")
            }
            JsonShape::Array { item, min, max } => {
                let name = format!("{hint}-item");
                let item_expr = item.rule(rules, &name);
                let empty_choice = match &**item {
                    JsonShape::OneOf(v) => v.is_empty(),
                    JsonShape::OneOfInt(v) => v.is_empty(),
                    _ => false,
                };
                if *max == 0 || empty_choice {
                    return "\"[\" \"]\"".to_owned();
                }
                rules.push((name.clone(), item_expr));
                let items = format!(
                    "{name} ( \",\" {name} ){{{},{}}}",
                    min.saturating_sub(1).min(max - 1),
                    max - 1
                );
                if *min == 0 {
                    format!("\"[\" ( {items} )? \"]\"")
                } else {
                    format!("\"[\" {items} \"]\"")
                }
            }
            JsonShape::Subset { items, max } => {
                let max = (*max).min(items.len());
                if max == 0 {
                    return "\"[\" \"]\"".to_owned();
                }
                // `{hint}-s{i}-{k}`: item i as the k-th element, followed by a later item or the end.
                let exprs: Vec<String> = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| item.rule(rules, &format!("{hint}-item{i}")))
                    .collect();
                let name = |i: usize, k: usize| format!("{hint}-s{i}-{k}");
                for k in (1..=max).rev() {
                    for (i, expr) in exprs.iter().enumerate() {
                        let later: Vec<String> = if k < max {
                            (i + 1..items.len()).map(|j| name(j, k + 1)).collect()
                        } else {
                            Vec::new()
                        };
                        let body = if later.is_empty() {
                            format!("( {expr} )")
                        } else {
                            format!("( {expr} ) ( \",\" ( {} ) )?", later.join(" | "))
                        };
                        rules.push((name(i, k), body));
                    }
                }
                let first: Vec<String> = (0..items.len()).map(|i| name(i, 1)).collect();
                format!("\"[\" ( {} )? \"]\"", first.join(" | "))
            }
            JsonShape::String { max_chars } => {
                format!("\"\\\"\" [^\"\\\\\\x00-\\x1F]{{0,{max_chars}}} \"\\\"\"")
            }
            JsonShape::Probability => {
                "( \"0\" ( \".\" [0-9] [0-9]? )? | \"1\" ( \".0\" )? )".to_owned()
            }
            JsonShape::OneOfInt(values) => {
                if values.is_empty() {
                    return "\"0\"".to_owned();
                }
                values
                    .iter()
                    .map(|v| format!("\"{v}\""))
                    .collect::<Vec<_>>()
                    .join(" | ")
            }
            JsonShape::OneOf(values) => {
                if values.is_empty() {
                    return "\"\\\"\\\"\"".to_owned();
                }
                values
                    .iter()
                    .map(|v| literal(&format!("\"{}\"", v)))
                    .collect::<Vec<_>>()
                    .join(" | ")
            }
        }
    }
}

/// Rule names may hold letters, digits and '-'.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// A GBNF string literal matching `text` exactly.
fn literal(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_with_enum_array_and_bounded_string() {
        let shape = JsonShape::object([
            (
                "ids",
                JsonShape::Array {
                    item: Box::new(JsonShape::OneOf(vec!["a\"1".into(), "b".into()])),
                    min: 0,
                    max: 3,
                },
            ),
            ("reason", JsonShape::String { max_chars: 10 }),
        ]);
        let g = shape.to_gbnf();
        assert!(
            g.starts_with("root ::= \"{\" \"\\\"ids\\\"\" \":\" ( \"[\" ( root-ids-item"),
            "{g}"
        );
        assert!(
            g.contains("root-ids-item ::= \"\\\"a\\\"1\\\"\" | \"\\\"b\\\"\""),
            "{g}"
        );
        assert!(g.contains("{0,2}"), "at most 3 items: {g}");
        assert!(g.contains("{0,10}"), "{g}");
    }

    #[test]
    fn alternatives_inside_an_object_are_grouped() {
        let shape = JsonShape::object([
            ("id", JsonShape::OneOf(vec!["a".into(), "b".into()])),
            ("p", JsonShape::Probability),
        ]);
        let g = shape.to_gbnf();
        assert!(
            g.contains("( \"\\\"a\\\"\" | \"\\\"b\\\"\" )"),
            "a choice must not swallow the rest of the object: {g}"
        );
    }

    #[test]
    fn an_empty_choice_allows_only_an_empty_array() {
        let shape = JsonShape::object([(
            "ids",
            JsonShape::Array {
                item: Box::new(JsonShape::OneOf(vec![])),
                min: 0,
                max: 8,
            },
        )]);
        assert!(shape.to_gbnf().contains("\"[\" \"]\""));
    }

    #[test]
    fn the_longest_answer_is_counted() {
        let shape = JsonShape::object([
            ("a", JsonShape::String { max_chars: 5 }),
            (
                "n",
                JsonShape::Array {
                    item: Box::new(JsonShape::OneOfInt(vec![7, 12])),
                    min: 0,
                    max: 2,
                },
            ),
        ]);
        // {"a":"12345","n":[12,12]}
        assert!(shape.max_chars() >= r#"{"a":"12345","n":[12,12]}"#.len());
    }

    #[test]
    fn no_whitespace_anywhere() {
        let shape = JsonShape::object([("a", JsonShape::String { max_chars: 5 })]);
        let g = shape.to_gbnf();
        assert!(!g.contains("ws"), "{g}");
        assert!(!g.contains("\\n"), "{g}");
    }

    #[test]
    fn a_subset_is_ordered_without_repeats_and_bounded() {
        let shape = JsonShape::Subset {
            items: vec![
                JsonShape::OneOfInt(vec![3]),
                JsonShape::OneOfInt(vec![5]),
                JsonShape::OneOfInt(vec![9]),
            ],
            max: 2,
        };
        let g = shape.to_gbnf();
        assert!(
            g.starts_with("root ::= \"[\" ( root-s0-1 | root-s1-1 | root-s2-1 )? \"]\""),
            "{g}"
        );
        // The first element may be followed only by a later one, and a second element by nothing.
        assert!(
            g.contains("root-s0-1 ::= ( \"3\" ) ( \",\" ( root-s1-2 | root-s2-2 ) )?"),
            "{g}"
        );
        assert!(g.contains("root-s1-2 ::= ( \"5\" )\n"), "{g}");
        assert!(g.contains("root-s2-1 ::= ( \"9\" )\n"), "{g}");
    }
}
