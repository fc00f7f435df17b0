//! Web, social and CCTV events from `CreateInteraction`: validation of the request, and the processing that
//! turns an accepted event into an [`Interaction`].

use std::collections::BTreeSet;

use crow_storage::text::words;
use crow_storage::{now_ms, Interaction, NewInteraction, Product};
use serde_json::Value;

use crate::config::LimitsConfig;
use crate::{validate_id, PipelineError};

pub use crow_storage::validate::{CreateInteraction, MAX_EVENT_PRODUCTS, MAX_FUTURE_MS};

/// Checks a request against the limits and returns the event to enqueue (with a fresh id); see
/// [`crow_storage::validate::event`].
pub fn validate(
    req: CreateInteraction,
    limits: &LimitsConfig,
) -> Result<NewInteraction, PipelineError> {
    crow_storage::validate::event(req, &limits.event()).map_err(PipelineError::from)
}

/// First string among `fields` of the data object.
fn field<'a>(data: &'a Value, fields: &[&str]) -> Option<&'a str> {
    fields
        .iter()
        .find_map(|f| data.get(*f).and_then(Value::as_str))
        .filter(|s| !s.trim().is_empty())
}

/// A tag from free text: its words joined by '-', at most 40 characters.
fn tag_of(text: &str) -> Option<String> {
    let t: String = words(text).collect::<Vec<_>>().join("-");
    let t: String = t.chars().take(40).collect();
    (!t.is_empty()).then_some(t)
}

/// Turns an accepted event into its interaction: tags from the source and the event's type, channel and
/// platform; the caller's product ids plus those named in `data.product_id(s)`, plus catalog products whose
/// whole name occurs in the event's text; and a summary generated from the data when the caller gave none.
pub fn process(record: &NewInteraction, catalog: &[Product]) -> Interaction {
    let data = &record.data;
    let event = field(data, &["event", "event_type", "type", "action"]);
    let channel = field(data, &["platform", "channel", "network"]);
    let text = field(data, &["text", "message", "title", "query", "page", "url"]);

    let mut tags = vec![record.source_type.as_str().to_owned()];
    for t in [event, channel].into_iter().flatten().filter_map(tag_of) {
        if !tags.contains(&t) {
            tags.push(t);
        }
    }

    let mut product_ids = record.product_ids.clone();
    let named = data
        .get("product_id")
        .into_iter()
        .chain(
            data.get("product_ids")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        )
        .filter_map(Value::as_str)
        .filter(|p| validate_id("product", p).is_ok());
    for p in named {
        if product_ids.len() < MAX_EVENT_PRODUCTS && !product_ids.iter().any(|x| x == p) {
            product_ids.push(p.to_owned());
        }
    }
    let event_words: BTreeSet<String> = record
        .summary
        .iter()
        .map(String::as_str)
        .chain(text)
        .flat_map(words)
        .collect();
    for p in catalog {
        let name: Vec<String> = words(&p.name).collect();
        if !name.is_empty()
            && name.iter().all(|w| event_words.contains(w))
            && product_ids.len() < MAX_EVENT_PRODUCTS
            && !product_ids.contains(&p.id)
        {
            product_ids.push(p.id.clone());
        }
    }
    if !product_ids.is_empty() {
        tags.push("product".to_owned());
    }

    let summary = record.summary.clone().unwrap_or_else(|| {
        let mut s = match event {
            Some(e) => format!("{} {e} event", record.source_type.as_str()),
            None => format!("{} event", record.source_type.as_str()),
        };
        if let Some(c) = channel {
            s.push_str(&format!(" on {c}"));
        }
        if !product_ids.is_empty() {
            s.push_str(&format!(" about {}", product_ids.join(", ")));
        }
        if let Some(t) = text {
            let t: String = t.chars().take(160).collect();
            s.push_str(&format!(": {t}"));
        }
        s
    });

    Interaction {
        id: record.id.clone(),
        organization_id: record.organization_id.clone(),
        source_type: record.source_type,
        session_id: record.session_id.clone(),
        data: data.clone(),
        summary,
        confidence: 1.0,
        tags,
        product_ids,
        timestamp_ms: record.timestamp_ms,
        created_at_ms: now_ms(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crow_storage::SourceType;

    fn req(data: &str) -> CreateInteraction {
        CreateInteraction {
            organization_id: "org".into(),
            source_type: Some(SourceType::Web),
            data_json: data.into(),
            ..Default::default()
        }
    }

    #[test]
    fn limits_name_the_field_and_rule() {
        let limits = LimitsConfig::default();
        let err = |r| validate(r, &limits).unwrap_err().to_string();
        assert!(err(req("[1]")).contains("must be a JSON object"));
        assert!(err(req("{\"a\":")).contains("not valid JSON (line 1"));
        let deep = format!("{}1{}", "{\"a\":".repeat(20), "}".repeat(20));
        assert!(err(req(&deep)).contains("max_data_depth"));
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(70_000));
        assert!(err(req(&big)).contains("max_data_bytes"));
        let mut r = req("{}");
        r.source_type = None;
        assert!(err(r).contains("source_type is required"));
    }

    #[test]
    fn processing_derives_tags_products_and_summary() {
        let limits = LimitsConfig::default();
        let r = validate(
            req(r#"{"event":"Add to cart","product_id":"sku-1","text":"Red running shoes, size 42"}"#),
            &limits,
        )
        .unwrap();
        let catalog = vec![Product {
            id: "sku-2".into(),
            organization_id: "org".into(),
            name: "Running shoes".into(),
            category: String::new(),
            description: String::new(),
            tags: vec![],
            aliases: vec![],
            updated_at_ms: 0,
        }];
        let i = process(&r, &catalog);
        assert_eq!(i.tags, ["web", "add-to-cart", "product"]);
        assert_eq!(i.product_ids, ["sku-1", "sku-2"]);
        assert!(
            i.summary
                .starts_with("web Add to cart event about sku-1, sku-2: Red"),
            "{}",
            i.summary
        );
    }
}
