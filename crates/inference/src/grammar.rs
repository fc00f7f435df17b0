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

    /// The JSON Schema of this shape, for servers that constrain output by schema (the OpenAI-compatible
    /// `response_format: {"type": "json_schema"}` of vLLM, SGLang and llama-server). The schema is as
    /// strict as JSON Schema allows; what it cannot say (a subset's order) [`JsonShape::check`] checks.
    pub fn to_json_schema(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            JsonShape::Object(fields) => {
                let properties: serde_json::Map<String, serde_json::Value> = fields
                    .iter()
                    .map(|(name, shape)| (name.clone(), shape.to_json_schema()))
                    .collect();
                let required: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
                json!({
                    "type": "object",
                    "properties": properties,
                    "required": required,
                    "additionalProperties": false,
                })
            }
            JsonShape::Array { item, min, max } => {
                if item.allows_nothing() {
                    return json!({"type": "array", "maxItems": 0});
                }
                json!({"type": "array", "items": item.to_json_schema(), "minItems": min, "maxItems": max})
            }
            JsonShape::Subset { items, max } => {
                let max = (*max).min(items.len());
                if max == 0 {
                    return json!({"type": "array", "maxItems": 0});
                }
                let alternatives: Vec<serde_json::Value> =
                    items.iter().map(JsonShape::to_json_schema).collect();
                let item = if alternatives.len() == 1 {
                    alternatives.into_iter().next().unwrap_or_default()
                } else {
                    json!({ "anyOf": alternatives })
                };
                json!({"type": "array", "items": item, "maxItems": max, "uniqueItems": true})
            }
            JsonShape::String { max_chars } => json!({"type": "string", "maxLength": max_chars}),
            JsonShape::OneOf(values) => json!({"type": "string", "enum": values}),
            JsonShape::OneOfInt(values) => json!({"type": "integer", "enum": values}),
            JsonShape::Probability => json!({"type": "number", "minimum": 0, "maximum": 1}),
        }
    }

    /// Whether `value` has this shape, with every bound of the grammar: an answer from a server that
    /// may not have constrained its output is checked before crow reads it. The error names the first
    /// place that does not fit (`$.matches[0].frames`).
    pub fn check(&self, value: &serde_json::Value) -> Result<(), String> {
        self.check_at(value, "$")
    }

    fn check_at(&self, value: &serde_json::Value, at: &str) -> Result<(), String> {
        use serde_json::Value;
        let wrong = |what: &str| Err(format!("{at}: expected {what}"));
        match (self, value) {
            (JsonShape::Object(fields), Value::Object(map)) => {
                if let Some(extra) = map.keys().find(|k| !fields.iter().any(|(n, _)| n == *k)) {
                    return Err(format!("{at}: unexpected field {extra:?}"));
                }
                for (name, shape) in fields {
                    let v = map
                        .get(name)
                        .ok_or_else(|| format!("{at}: missing field {name:?}"))?;
                    shape.check_at(v, &format!("{at}.{name}"))?;
                }
                Ok(())
            }
            (JsonShape::Array { item, min, max }, Value::Array(values)) => {
                if values.len() < *min || values.len() > *max {
                    return wrong(&format!("{min}..={max} items, found {}", values.len()));
                }
                for (i, v) in values.iter().enumerate() {
                    item.check_at(v, &format!("{at}[{i}]"))?;
                }
                Ok(())
            }
            (JsonShape::Subset { items, max }, Value::Array(values)) => {
                if values.len() > *max {
                    return wrong(&format!("at most {max} items, found {}", values.len()));
                }
                // Each value must fit a candidate no earlier value took. The order is the grammar's
                // convention, not part of the meaning (JSON Schema cannot say it), so any order passes.
                let mut taken = vec![false; items.len()];
                for (i, v) in values.iter().enumerate() {
                    let found = (0..items.len())
                        .find(|&c| !taken[c] && items[c].check_at(v, "").is_ok())
                        .ok_or_else(|| {
                            format!("{at}[{i}]: not one of the candidates, or repeated")
                        })?;
                    taken[found] = true;
                }
                Ok(())
            }
            (JsonShape::String { max_chars }, Value::String(s)) => {
                if s.chars().count() > *max_chars {
                    return wrong(&format!("at most {max_chars} characters"));
                }
                Ok(())
            }
            (JsonShape::OneOf(values), Value::String(s)) if values.contains(s) => Ok(()),
            (JsonShape::OneOf(_), _) => wrong("one of the allowed strings"),
            (JsonShape::OneOfInt(values), Value::Number(n))
                if n.as_u64().is_some_and(|n| values.contains(&n)) =>
            {
                Ok(())
            }
            (JsonShape::OneOfInt(_), _) => wrong("one of the allowed integers"),
            (JsonShape::Probability, Value::Number(n))
                if n.as_f64().is_some_and(|p| (0.0..=1.0).contains(&p)) =>
            {
                Ok(())
            }
            (JsonShape::Object(_), _) => wrong("an object"),
            (JsonShape::Array { .. } | JsonShape::Subset { .. }, _) => wrong("an array"),
            (JsonShape::String { .. }, _) => wrong("a string"),
            (JsonShape::Probability, _) => wrong("a number from 0 to 1"),
        }
    }

    /// Whether no value has this shape (an empty choice).
    fn allows_nothing(&self) -> bool {
        match self {
            JsonShape::OneOf(v) => v.is_empty(),
            JsonShape::OneOfInt(v) => v.is_empty(),
            _ => false,
        }
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

    fn frames_and_quote() -> JsonShape {
        JsonShape::object([
            (
                "frames",
                JsonShape::Subset {
                    items: vec![
                        JsonShape::OneOfInt(vec![3]),
                        JsonShape::OneOfInt(vec![5]),
                        JsonShape::OneOfInt(vec![9]),
                    ],
                    max: 2,
                },
            ),
            ("quote", JsonShape::String { max_chars: 8 }),
            ("p", JsonShape::Probability),
        ])
    }

    #[test]
    fn check_accepts_what_the_grammar_allows_and_names_what_it_does_not() {
        let shape = frames_and_quote();
        let ok = serde_json::json!({"quote": "a red", "frames": [3, 9], "p": 0.5});
        assert_eq!(shape.check(&ok), Ok(()), "field order does not matter");
        let reordered = serde_json::json!({"quote": "", "frames": [9, 3], "p": 1});
        assert_eq!(shape.check(&reordered), Ok(()), "nor a subset's order");
        for (bad, place) in [
            (
                serde_json::json!({"frames": [3, 3], "quote": "", "p": 0}),
                "$.frames[1]",
            ),
            (
                serde_json::json!({"frames": [3, 5, 9], "quote": "", "p": 0}),
                "$.frames",
            ),
            (
                serde_json::json!({"frames": [4], "quote": "", "p": 0}),
                "$.frames[0]",
            ),
            (
                serde_json::json!({"frames": [], "quote": "too long!", "p": 0}),
                "$.quote",
            ),
            (
                serde_json::json!({"frames": [], "quote": "", "p": 1.5}),
                "$.p",
            ),
            (
                serde_json::json!({"frames": [], "quote": ""}),
                "missing field \"p\"",
            ),
            (
                serde_json::json!({"frames": [], "quote": "", "p": 0, "x": 1}),
                "unexpected field \"x\"",
            ),
            (serde_json::json!([]), "expected an object"),
        ] {
            let err = shape.check(&bad).unwrap_err();
            assert!(err.contains(place), "{bad}: {err}");
        }
    }

    #[test]
    fn the_json_schema_says_what_the_grammar_says() {
        let schema = frames_and_quote().to_json_schema();
        assert_eq!(
            schema["required"],
            serde_json::json!(["frames", "quote", "p"])
        );
        assert_eq!(schema["additionalProperties"], false);
        let frames = &schema["properties"]["frames"];
        assert_eq!(frames["maxItems"], 2);
        assert_eq!(frames["uniqueItems"], true);
        assert_eq!(
            frames["items"]["anyOf"][1],
            serde_json::json!({"type": "integer", "enum": [5]})
        );
        assert_eq!(schema["properties"]["quote"]["maxLength"], 8);
        let empty = JsonShape::Subset {
            items: vec![],
            max: 4,
        };
        assert_eq!(
            empty.to_json_schema(),
            serde_json::json!({"type": "array", "maxItems": 0})
        );
    }
}
