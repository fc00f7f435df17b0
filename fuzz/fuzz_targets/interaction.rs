//! `CreateInteraction` validation: any request must be accepted within the limits or refused with a
//! message, never panic. The input is split on 0xFF bytes into the request's string fields (invalid
//! UTF-8 is replaced, as protobuf decoding would refuse it earlier).
#![no_main]

use crow_storage::validate::{event, CreateInteraction, EventLimits};
use crow_storage::SourceType;
use libfuzzer_sys::fuzz_target;

const LIMITS: EventLimits = EventLimits {
    max_data_bytes: 64 * 1024,
    max_data_depth: 16,
    max_summary_chars: 2_000,
};

fuzz_target!(|input: &[u8]| {
    let mut parts = input
        .split(|&b| b == 0xFF)
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let mut next = || parts.next().unwrap_or_default();
    let selector = next();
    let source_type = match selector.len() % 4 {
        0 => None,
        1 => Some(SourceType::Web),
        2 => Some(SourceType::Cctv),
        _ => Some(SourceType::Social),
    };
    let organization_id = next();
    let data_json = next();
    let session_id = Some(next()).filter(|s| !s.is_empty());
    let summary = Some(next()).filter(|s| !s.is_empty());
    let timestamp_ms = next().parse::<i64>().ok();
    let product_ids: Vec<String> = next().split(',').map(str::to_owned).collect();
    let idempotency_key = Some(next()).filter(|s| !s.is_empty());
    let request = CreateInteraction {
        organization_id,
        source_type,
        data_json,
        session_id,
        summary,
        timestamp_ms,
        product_ids,
        idempotency_key,
    };
    match event(request.clone(), &LIMITS) {
        Ok(e) => {
            assert!(e.data.is_object());
            assert!(request.data_json.len() <= LIMITS.max_data_bytes);
            assert!(e
                .summary
                .is_none_or(|s| s.chars().count() <= LIMITS.max_summary_chars));
            assert_eq!(e.organization_id, request.organization_id);
        }
        Err(refusal) => assert!(!refusal.0.is_empty()),
    }
});
