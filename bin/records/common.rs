//! What the record commands share: the server connection, sources, times and how a record prints.

use anyhow::Result;
use clap::{Args, ValueEnum};
use crow::client::AuthChannel as Channel;
use crow::proto::interaction_service_client::InteractionServiceClient;
use crow::proto::{self};
use serde_json::json;

use crate::ServerArg;

/// A source as the CLI spells it.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Source {
    Web,
    Cctv,
    Social,
}

impl Source {
    pub(crate) fn proto(self) -> i32 {
        (match self {
            Source::Web => proto::SourceType::Web,
            Source::Cctv => proto::SourceType::Cctv,
            Source::Social => proto::SourceType::Social,
        }) as i32
    }
}

pub(crate) fn source_of(s: Option<Source>) -> i32 {
    s.map_or(proto::SourceType::Unspecified as i32, Source::proto)
}

/// The records an analysis or a question covers.
#[derive(Args)]
pub(crate) struct RecordWindow {
    /// Only records at or after this time, ms since the Unix epoch [default: the first record].
    #[arg(long)]
    pub(crate) from_ms: Option<i64>,
    /// Only records before this time, ms since the Unix epoch [default: now].
    #[arg(long)]
    pub(crate) to_ms: Option<i64>,
    /// Only this source.
    #[arg(long, value_enum)]
    pub(crate) source: Option<Source>,
}

/// A channel to the server presenting `CROW_TOKEN` (and `CROW_GATEWAY_KEY`), over TLS for `https://`.
pub(crate) async fn channel(server: &ServerArg) -> Result<Channel> {
    Ok(crow::client::channel(&server.server, server.credentials()?).await?)
}

pub(crate) async fn interaction_client(
    server: &ServerArg,
) -> Result<InteractionServiceClient<Channel>> {
    Ok(InteractionServiceClient::new(channel(server).await?))
}

pub(crate) fn source_name(value: i32) -> &'static str {
    match proto::SourceType::try_from(value) {
        Ok(proto::SourceType::Web) => "web",
        Ok(proto::SourceType::Cctv) => "cctv",
        Ok(proto::SourceType::Social) => "social",
        _ => "unspecified",
    }
}

/// A UTC timestamp from ms since the epoch, without a date crate.
pub(crate) fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

pub(crate) fn interaction_json(i: &proto::Interaction) -> serde_json::Value {
    let data: serde_json::Value =
        serde_json::from_str(&i.data_json).unwrap_or(serde_json::Value::Null);
    json!({
        "id": i.id, "organization_id": i.organization_id, "source_type": source_name(i.source_type),
        "session_id": i.session_id, "summary": i.summary, "confidence": i.confidence,
        "tags": i.tags, "product_ids": i.product_ids, "timestamp_ms": i.timestamp_ms,
        "created_at_ms": i.created_at_ms, "data": data,
    })
}

pub(crate) fn print_interaction(i: &proto::Interaction) {
    println!(
        "{}  {:<6} conf {:.2}  [{}]{}\n    {}\n    id {}  session {}",
        format_ms(i.timestamp_ms),
        source_name(i.source_type),
        i.confidence,
        i.tags.join(", "),
        if i.product_ids.is_empty() {
            String::new()
        } else {
            format!("  products {}", i.product_ids.join(", "))
        },
        i.summary,
        i.id,
        if i.session_id.is_empty() {
            "-"
        } else {
            &i.session_id
        },
    );
}
