//! GBNF grammars generated from the shape of the JSON a task expects, so that a constrained model's output
//! always parses into that shape. Every repetition is bounded, so generation always terminates.

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
}

impl JsonShape {
    /// An object shape from `(name, shape)` pairs.
    pub fn object<'a>(fields: impl IntoIterator<Item = (&'a str, JsonShape)>) -> JsonShape {
        JsonShape::Object(fields.into_iter().map(|(n, s)| (n.to_owned(), s)).collect())
    }

    /// The GBNF grammar whose `root` is this shape.
    pub fn to_gbnf(&self) -> String {
        let mut rules = Vec::new();
        let root = self.rule(&mut rules, "root");
        let mut out = format!("root ::= {root}\n");
        for (name, body) in rules {
            out.push_str(&format!("{name} ::= {body}\n"));
        }
        out.push_str("ws ::= [ \\t\\n]{0,2}\n");
        out
    }

    /// Returns an expression for this shape, adding named rules for its parts.
    fn rule(&self, rules: &mut Vec<(String, String)>, hint: &str) -> String {
        match self {
            JsonShape::Object(fields) => {
                let mut parts = vec!["\"{\" ws".to_owned()];
                for (i, (name, shape)) in fields.iter().enumerate() {
                    if i > 0 {
                        parts.push("\",\" ws".to_owned());
                    }
                    let value = shape.rule(rules, &format!("{hint}-{}", sanitize(name)));
                    parts.push(format!(
                        "{} ws \":\" ws ( {value} ) ws",
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
                    return "\"[\" ws \"]\"".to_owned();
                }
                rules.push((name.clone(), item_expr));
                let items = format!(
                    "{name} ( ws \",\" ws {name} ){{{},{}}}",
                    min.saturating_sub(1).min(max - 1),
                    max - 1
                );
                if *min == 0 {
                    format!("\"[\" ws ( {items} )? ws \"]\"")
                } else {
                    format!("\"[\" ws {items} ws \"]\"")
                }
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
            g.starts_with(
                "root ::= \"{\" ws \"\\\"ids\\\"\" ws \":\" ws ( \"[\" ws ( root-ids-item"
            ),
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
            g.contains("ws ( \"\\\"a\\\"\" | \"\\\"b\\\"\" ) ws"),
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
        assert!(shape.to_gbnf().contains("\"[\" ws \"]\""));
    }
}
