//! `crow metrics`: store metrics per hour, day or five minutes, as a table, CSV or JSON.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use crow::proto::{self, GetMetricsRequest};

use super::common::interaction_client;
use crate::ServerArg;

/// How `crow metrics` groups time.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum By {
    /// Five minutes.
    #[value(name = "5m")]
    FiveMinutes,
    /// Hours.
    Hour,
    /// Days (midnight to midnight of --tz).
    Day,
    /// The whole range in one row.
    Total,
}

/// How `crow metrics` prints.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum MetricsFormat {
    /// One line per group, then the zones, tripwires and products of the range.
    Table,
    /// CSV, one line per group (what `?format=csv` of the HTTP route returns).
    Csv,
    /// The report as JSON.
    Json,
}

#[derive(Args)]
pub(crate) struct MetricsArgs {
    /// Organization id.
    #[arg(long, env = "CROW_ORG")]
    org: String,
    /// One camera [default: every camera of the organization].
    #[arg(long)]
    camera: Option<String>,
    /// Grouping.
    #[arg(long, value_enum, default_value = "hour")]
    by: By,
    /// How far back from --to: 90m, 24h, 7d [default: 24h, unless --from is given].
    #[arg(long, conflicts_with = "from")]
    since: Option<String>,
    /// From: RFC 3339 (2026-12-07T09:00:00+01:00) or ms since the Unix epoch.
    #[arg(long)]
    from: Option<String>,
    /// To, exclusive: RFC 3339 or ms since the Unix epoch [default: now].
    #[arg(long)]
    to: Option<String>,
    /// IANA time zone of hours and days, e.g. Europe/Paris [default: UTC].
    #[arg(long, default_value = "UTC")]
    tz: String,
    /// Output.
    #[arg(long, value_enum, default_value = "table")]
    format: MetricsFormat,
    #[command(flatten)]
    server: ServerArg,
}

/// A time given as RFC 3339 or as ms since the Unix epoch.
fn instant_ms(value: &str, flag: &str) -> Result<i64> {
    if let Ok(ms) = value.parse::<i64>() {
        return Ok(ms);
    }
    value
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .with_context(|| {
            format!("{flag} {value:?} is neither RFC 3339 (2026-12-07T09:00:00Z) nor ms since the epoch")
        })
}

/// A duration such as `90m`, `24h`, `7d` or `30s`, in ms.
fn duration_ms(value: &str) -> Result<i64> {
    let unit_at = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (n, unit) = value.split_at(unit_at);
    let n: i64 = n.parse().ok().filter(|n| *n > 0).with_context(|| {
        format!("--since {value:?}: a positive number then s, m, h or d, e.g. 24h")
    })?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => bail!("--since {value:?}: the unit must be s, m, h or d, e.g. 24h or 7d"),
    };
    Ok(n * unit_ms)
}

pub(crate) async fn metrics(args: MetricsArgs) -> Result<()> {
    let to_ms = match &args.to {
        Some(t) => instant_ms(t, "--to")?,
        None => crow::storage::now_ms(),
    };
    let from_ms = match (&args.from, &args.since) {
        (Some(f), _) => instant_ms(f, "--from")?,
        (None, Some(s)) => to_ms - duration_ms(s)?,
        (None, None) => to_ms - 24 * 3_600_000,
    };
    let grouping = match args.by {
        By::FiveMinutes => proto::MetricsGrouping::FiveMinutes,
        By::Hour => proto::MetricsGrouping::Hour,
        By::Day => proto::MetricsGrouping::Day,
        By::Total => proto::MetricsGrouping::Total,
    };
    let mut client = interaction_client(&args.server).await?;
    let report = client
        .get_metrics(GetMetricsRequest {
            organization_id: args.org.clone(),
            camera_id: args.camera.clone().unwrap_or_default(),
            from_ms,
            to_ms,
            grouping: grouping as i32,
            time_zone: args.tz.clone(),
        })
        .await?
        .into_inner();
    match args.format {
        MetricsFormat::Csv => print!("{}", crow::store_metrics::csv(&report)),
        MetricsFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&crow::http::dto::MetricsReport::new(args.org, report))?
        ),
        MetricsFormat::Table => print_table(&report),
    }
    Ok(())
}

fn seconds(ms: Option<i64>) -> String {
    ms.map_or("-".to_owned(), |ms| format!("{:.1} s", ms as f64 / 1000.0))
}

/// One line per group, then the range's zones, tripwires and products summed over the groups.
fn print_table(report: &proto::MetricsReport) {
    println!(
        "{:<25} {:>6} {:>6} {:>7} {:>7} {:>12}",
        format!("start ({})", report.time_zone),
        "in",
        "out",
        "people",
        "visits",
        "mean in view"
    );
    let mut total = proto::MetricsRow::default();
    for row in &report.rows {
        println!(
            "{:<25} {:>6} {:>6} {:>7} {:>7} {:>12.2}",
            row.start, row.people_in, row.people_out, row.people, row.visits, row.mean_people
        );
        total.people_in += row.people_in;
        total.people_out += row.people_out;
        total.people += row.people;
        total.visits += row.visits;
    }
    println!(
        "{:<25} {:>6} {:>6} {:>7} {:>7}",
        "total", total.people_in, total.people_out, total.people, total.visits
    );
    // The range's per-place figures: one report over the whole range would give the same sums; the
    // dwell quantiles of single groups are shown where a single group holds the range.
    let single = report.rows.len() == 1;
    let mut lines: std::collections::BTreeMap<(String, String), (u64, u64)> = Default::default();
    let mut zones: std::collections::BTreeMap<(String, String), (u64, u64, u64)> =
        Default::default();
    let mut products: std::collections::BTreeMap<String, u64> = Default::default();
    for row in &report.rows {
        for l in &row.lines {
            let e = lines
                .entry((l.camera_id.clone(), l.line_id.clone()))
                .or_default();
            e.0 += l.people_in;
            e.1 += l.people_out;
        }
        for z in &row.zones {
            let e = zones
                .entry((z.camera_id.clone(), z.zone_id.clone()))
                .or_default();
            e.0 += z.visits;
            e.1 += z.dwelt;
            e.2 += z.dwell_total_ms;
        }
        for p in &row.products {
            *products.entry(p.product_id.clone()).or_default() += p.visits;
        }
    }
    for ((camera, line), (i, o)) in &lines {
        println!("tripwire {camera}/{line}: {i} in, {o} out");
    }
    for ((camera, zone), (visits, dwelt, total_ms)) in &zones {
        let quantiles = report
            .rows
            .first()
            .filter(|_| single)
            .and_then(|row| {
                row.zones
                    .iter()
                    .find(|z| &z.camera_id == camera && &z.zone_id == zone)
            })
            .map(|z| {
                format!(
                    ", dwell p50 {} p90 {}",
                    seconds(z.dwell_p50_ms),
                    seconds(z.dwell_p90_ms)
                )
            })
            .unwrap_or_default();
        println!(
            "zone {camera}/{zone}: {visits} visits, {dwelt} stayed the minimum dwell, {:.1} s in all{quantiles}",
            *total_ms as f64 / 1000.0
        );
    }
    for (product, visits) in &products {
        println!("product {product}: {visits} visits");
    }
}
