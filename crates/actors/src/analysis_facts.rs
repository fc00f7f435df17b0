//! The analysis crow computes before any model speaks, and the check a model's wording must pass.
//!
//! Facts ([`compute`]): record counts per source; store metrics over the window (people in and out,
//! people first seen, the busiest hour, zones ranked by visits with their median dwell, products ranked
//! by visits, by name); anomalies — hours whose count deviates from the same hour on the organization's
//! previous days by more than [`ANOMALY_SIGMAS`] standard deviations (floored at √mean and 1); themes of
//! web and social events by tag, each with the newest event's own words quoted; recommendations that
//! follow from anomalies and themes. Each fact is a sentence with its figures and its sources (record
//! ids, or the metrics query that gives it).
//!
//! Wording ([`check_phrasing`]): a model may restate the facts in plain words, but every statement must
//! cite facts, every number in it must be a number of a cited fact, and it may not speak of
//! satisfaction, purchases or feelings unless a cited fact quotes an event saying so. An answer that
//! fails is refused whole and the facts are worded by crow's templates.

use std::collections::{BTreeMap, BTreeSet};

use crow_inference::text::Phrasing;
use crow_storage::metrics_report::{self, Grouping, MetricsQuery, MetricsReport, MetricsRow};
use crow_storage::{
    AnalysisFact, AnalysisRecord, AnalysisStatement, AnalysisStats, FactKind, InteractionFilter,
    Records, SourceType, MAX_PAGE_SIZE,
};

use crate::config::AnalysisConfig;

/// How far back an analysis without a start looks.
pub(crate) const DEFAULT_WINDOW_MS: i64 = 7 * DAY_MS;
/// Previous days an hour is compared with.
pub(crate) const HISTORY_DAYS: i64 = 7;
/// Fewest previous days with the same hour for a comparison.
pub(crate) const MIN_HISTORY_DAYS: usize = 3;
/// How many standard deviations make an anomaly.
pub(crate) const ANOMALY_SIGMAS: f64 = 3.0;
/// Most anomalies, zones, products and themes stated.
const TOP_N: usize = 3;
/// Longest quote of an event, characters.
const QUOTE_CHARS: usize = 160;
const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// Words about feelings and sales that no measurement supports; a statement may use one only when a
/// fact it cites quotes an event that does.
const UNMEASURED_WORDS: &[&str] = &[
    "satisf",
    "purchas",
    "bought",
    "buy",
    "sale",
    "sold",
    "revenue",
    "sentiment",
    "happy",
    "unhappy",
    "love",
    "angry",
    "loyal",
    "frustrat",
    "delight",
    "enjoy",
];

/// An analysis's facts and the exact figures over its window.
pub(crate) struct Computed {
    pub stats: AnalysisStats,
    pub facts: Vec<AnalysisFact>,
}

struct Theme {
    count: u64,
    source: SourceType,
    /// The newest record with the tag: id and its own words.
    newest: (String, String),
}

fn clock(ms: i64) -> String {
    metrics_report::utc(ms, "%Y-%m-%d %H:%M")
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The words of an event record, quoted: its summary (whose text the event brought), shortened.
fn quote(text: &str) -> String {
    let mut q: String = text.chars().take(QUOTE_CHARS).collect();
    if text.chars().count() > QUOTE_CHARS {
        q.push('…');
    }
    q.replace('"', "'")
}

/// Reads the window's records (up to the scan limit) and computes the facts.
pub(crate) async fn compute(
    records: &Records,
    record: &AnalysisRecord,
    config: &AnalysisConfig,
    now_ms: i64,
) -> Result<Computed, String> {
    let to_ms = record.to_ms.unwrap_or(now_ms);
    let from_ms = record.from_ms.unwrap_or(to_ms - DEFAULT_WINDOW_MS);
    let mut stats = AnalysisStats::default();
    let mut tags = BTreeMap::<String, u64>::new();
    let mut products = BTreeMap::<String, u64>::new();
    let mut themes = BTreeMap::<String, Theme>::new();
    let mut scanned = 0usize;
    let window = InteractionFilter {
        from_ms: record.from_ms,
        to_ms: record.to_ms,
        ..Default::default()
    };
    let mut token: Option<String> = None;
    'pages: loop {
        let page = records
            .list_interactions(
                &record.organization_id,
                &window,
                MAX_PAGE_SIZE,
                token.as_deref(),
            )
            .await
            .map_err(|e| failed("reading the records", e))?;
        for i in page.interactions {
            if scanned == config.scan_limit {
                stats.truncated = true;
                break 'pages;
            }
            scanned += 1;
            if record.source.is_some_and(|s| s != i.source_type) {
                continue;
            }
            stats.records += 1;
            match i.source_type {
                SourceType::Web => stats.web += 1,
                SourceType::Cctv => stats.cctv += 1,
                SourceType::Social => stats.social += 1,
            }
            for t in &i.tags {
                *tags.entry(t.clone()).or_default() += 1;
                if i.source_type != SourceType::Cctv && t != i.source_type.as_str() {
                    // Newest first: the first record seen with a tag is its newest.
                    themes
                        .entry(t.clone())
                        .or_insert_with(|| Theme {
                            count: 0,
                            source: i.source_type,
                            newest: (i.id.clone(), quote(&i.summary)),
                        })
                        .count += 1;
                }
            }
            for p in &i.product_ids {
                *products.entry(p.clone()).or_default() += 1;
            }
        }
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    stats.top_tags = top(tags, 5);
    stats.top_products = top(products, 5);
    if stats.records == 0 {
        return Err("the window holds no interactions".to_owned());
    }

    let mut facts = Vec::new();
    let mut add = |kind,
                   text: String,
                   interaction_ids: Vec<String>,
                   metrics: Option<String>,
                   test: Option<String>| {
        facts.push(AnalysisFact {
            number: facts.len() as u32 + 1,
            kind,
            text,
            interaction_ids,
            metrics,
            test,
        });
    };
    add(
        FactKind::Count,
        format!(
            "The window holds {}: {} web, {} CCTV and {} social{}.",
            plural(stats.records, "record", "records"),
            stats.web,
            stats.cctv,
            stats.social,
            if stats.truncated {
                " (the scan limit was reached)"
            } else {
                ""
            }
        ),
        Vec::new(),
        None,
        None,
    );

    if record.source.is_none() || record.source == Some(SourceType::Cctv) {
        let utc = metrics_report::time_zone("UTC").map_err(|e| e.to_string())?;
        let query = |from_ms, to_ms, grouping| MetricsQuery {
            camera_id: None,
            from_ms,
            to_ms,
            grouping,
            time_zone: utc.clone(),
        };
        let by_hour = |from: i64, to: i64| format!("by=hour&from={from}&to={to}");
        // Hourly facts (the busiest hour, anomalies) for windows a report can hold hour by hour.
        let hourly = to_ms - from_ms <= metrics_report::MAX_REPORT_ROWS as i64 * HOUR_MS;
        let no_hours = MetricsReport {
            grouping: Grouping::Hour,
            time_zone: "UTC".into(),
            source_width: crow_storage::metrics::BucketWidth::Hour,
            from_ms,
            to_ms,
            rows: Vec::new(),
        };
        let hours = if hourly {
            records
                .metrics_report(
                    &record.organization_id,
                    &query(from_ms, to_ms, Grouping::Hour),
                )
                .await
                .map_err(|e| failed("reading the store metrics", e))?
        } else {
            no_hours.clone()
        };
        let whole = records
            .metrics_report(
                &record.organization_id,
                &query(from_ms, to_ms, Grouping::Total),
            )
            .await
            .map_err(|e| failed("reading the store metrics", e))?;
        let total = whole.rows.first();
        let metrics_ref = Some(format!("by=total&from={from_ms}&to={to_ms}"));
        if let Some(t) = total.filter(|t| t.people + t.people_in + t.people_out > 0) {
            add(
                FactKind::Metric,
                format!(
                    "Cameras counted {} in and {} out through the tripwires, and first saw {}.",
                    plural(t.people_in, "person", "people"),
                    t.people_out,
                    plural(t.people, "person", "people"),
                ),
                Vec::new(),
                metrics_ref.clone(),
                None,
            );
            let counted = |r: &MetricsRow| {
                if t.people_in > 0 {
                    r.people_in
                } else {
                    r.people
                }
            };
            let what = if t.people_in > 0 {
                "came in"
            } else {
                "were first seen"
            };
            if let Some(busiest) = hours
                .rows
                .iter()
                .filter(|r| counted(r) > 0)
                .max_by_key(|r| (counted(r), -r.start_ms))
            {
                add(
                    FactKind::Metric,
                    format!(
                        "The busiest hour was {} to {} UTC: {} {what}.",
                        clock(busiest.start_ms),
                        &clock(busiest.end_ms)[11..],
                        plural(counted(busiest), "person", "people"),
                    ),
                    Vec::new(),
                    Some(by_hour(busiest.start_ms, busiest.end_ms)),
                    None,
                );
            }
            let mut zones: Vec<_> = t.zones.iter().filter(|z| z.visits > 0).collect();
            zones.sort_by(|a, b| b.visits.cmp(&a.visits).then(a.zone_id.cmp(&b.zone_id)));
            for z in zones.into_iter().take(TOP_N) {
                let median = z
                    .dwell_p50_ms
                    .map(|ms| format!(", a median visit of {:.0} s", ms as f64 / 1000.0))
                    .unwrap_or_default();
                add(
                    FactKind::Metric,
                    format!(
                        "Zone {} of camera {} had {}, {} of them at least its minimum dwell{median}.",
                        z.zone_id,
                        z.camera_id,
                        plural(z.visits, "visit", "visits"),
                        z.dwelt
                    ),
                    Vec::new(),
                    metrics_ref.clone(),
                    None,
                );
            }
            let names: BTreeMap<String, String> = records
                .catalog(&record.organization_id, 10_000)
                .await
                .map(|c| c.into_iter().map(|p| (p.id, p.name)).collect())
                .unwrap_or_default();
            let mut visited: Vec<_> = t.products.iter().collect();
            visited.sort_by(|a, b| {
                b.visits
                    .cmp(&a.visits)
                    .then(a.product_id.cmp(&b.product_id))
            });
            for p in visited.into_iter().take(TOP_N) {
                let name = names
                    .get(&p.product_id)
                    .map_or(p.product_id.clone(), |n| format!("{n} ({})", p.product_id));
                add(
                    FactKind::Metric,
                    format!(
                        "{name} had {} at its display.",
                        plural(p.visits, "visit", "visits")
                    ),
                    Vec::new(),
                    metrics_ref.clone(),
                    None,
                );
            }
            let history = if hourly {
                records
                    .metrics_report(
                        &record.organization_id,
                        &query(
                            hours.from_ms - HISTORY_DAYS * DAY_MS,
                            hours.to_ms,
                            Grouping::Hour,
                        ),
                    )
                    .await
                    .map_err(|e| failed("reading the store metrics", e))?
            } else {
                no_hours
            };
            let uses_lines = t.people_in > 0;
            for a in anomalies(&hours, &history, uses_lines)
                .into_iter()
                .take(TOP_N)
            {
                let start = a.row_start;
                add(
                    FactKind::Anomaly,
                    format!(
                        "From {} to {} UTC {} {what}, against {:.1} on average (standard deviation {:.1}) in that hour on the {} previous days.",
                        clock(start),
                        &clock(start + HOUR_MS)[11..],
                        plural(a.value, "person", "people"),
                        a.mean,
                        a.sd,
                        a.days
                    ),
                    Vec::new(),
                    Some(by_hour(start - HISTORY_DAYS * DAY_MS, start + HOUR_MS)),
                    Some(format!(
                        "|value - mean| > {ANOMALY_SIGMAS} x max(standard deviation, sqrt(mean), 1) over the same hour of the previous {HISTORY_DAYS} days (at least {MIN_HISTORY_DAYS} of them)"
                    )),
                );
                add(
                    FactKind::Recommendation,
                    format!(
                        "Review the footage from {} to {} UTC, whose count departs from that hour's history.",
                        clock(start),
                        &clock(start + HOUR_MS)[11..],
                    ),
                    Vec::new(),
                    Some(by_hour(start, start + HOUR_MS)),
                    None,
                );
            }
        }
    }

    let mut ranked: Vec<(&String, &Theme)> = themes.iter().collect();
    ranked.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
    for (tag, theme) in ranked.into_iter().take(TOP_N) {
        let (id, words) = &theme.newest;
        add(
            FactKind::Theme,
            format!(
                "{} tagged {tag}; the newest says: \"{words}\"",
                plural(
                    theme.count,
                    &format!("{} record is", theme.source.as_str()),
                    &format!("{} records are", theme.source.as_str())
                ),
            ),
            vec![id.clone()],
            None,
            None,
        );
        if ["complaint", "return", "refund", "issue", "problem"]
            .iter()
            .any(|w| tag.contains(w))
        {
            add(
                FactKind::Recommendation,
                format!(
                    "Read the {} tagged {tag}, the newest quoted above.",
                    plural(theme.count, "record", "records")
                ),
                vec![id.clone()],
                None,
                None,
            );
        }
    }
    Ok(Computed { stats, facts })
}

/// The stored (client-visible) error of an analysis that failed inside crow: what failed and a
/// correlation id; the details are in the log under that id.
pub(crate) fn failed(what: &str, error: impl std::fmt::Display) -> String {
    let id = crate::log_internal("analysis", error);
    format!("{what} failed (correlation id {id})")
}

fn top(counts: BTreeMap<String, u64>, n: usize) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

/// An hour whose count departs from the same hour of the previous days.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Anomaly {
    pub row_start: i64,
    pub value: u64,
    pub mean: f64,
    pub sd: f64,
    pub days: usize,
    /// How many allowed deviations away.
    pub score: f64,
}

/// The window's hours (`hours`) whose count (people in, or people first seen without tripwires)
/// departs from the same hour of the previous [`HISTORY_DAYS`] days in `history`, most deviant first.
pub(crate) fn anomalies(
    hours: &MetricsReport,
    history: &MetricsReport,
    uses_lines: bool,
) -> Vec<Anomaly> {
    let count = |r: &MetricsRow| if uses_lines { r.people_in } else { r.people };
    let by_start: BTreeMap<i64, u64> = history
        .rows
        .iter()
        .map(|r| (r.start_ms, count(r)))
        .collect();
    let first_observed = history
        .rows
        .iter()
        .find(|r| r.people + r.people_in + r.people_out > 0 || r.mean_people > 0.0)
        .map_or(i64::MAX, |r| r.start_ms);
    let mut found = Vec::new();
    for row in &hours.rows {
        // Only days since the organization's first measured hour: before it, zeros are no history.
        let past: Vec<f64> = (1..=HISTORY_DAYS)
            .map(|d| row.start_ms - d * DAY_MS)
            .filter(|s| *s >= first_observed - (first_observed.rem_euclid(DAY_MS)))
            .filter_map(|s| by_start.get(&s).map(|v| *v as f64))
            .collect();
        if past.len() < MIN_HISTORY_DAYS {
            continue;
        }
        let n = past.len() as f64;
        let mean = past.iter().sum::<f64>() / n;
        let sd = (past.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        let allowed = sd.max(mean.sqrt()).max(1.0);
        let value = count(row);
        let score = (value as f64 - mean).abs() / allowed;
        if score > ANOMALY_SIGMAS {
            found.push(Anomaly {
                row_start: row.start_ms,
                value,
                mean,
                sd,
                days: past.len(),
                score,
            });
        }
    }
    found.sort_by(|a, b| b.score.total_cmp(&a.score));
    found
}

/// The numbers written in a text (`12`, `3.5`, `1,204`), as values.
fn numbers(text: &str) -> Vec<f64> {
    let mut out = Vec::new();
    let mut current = String::new();
    let flush = |current: &mut String, out: &mut Vec<f64>| {
        let trimmed = current.trim_end_matches(['.', ',']).replace(',', "");
        if let Ok(v) = trimmed.parse::<f64>() {
            out.push(v);
        }
        current.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() || (!current.is_empty() && (c == '.' || c == ',')) {
            current.push(c);
        } else if !current.is_empty() {
            flush(&mut current, &mut out);
        }
    }
    flush(&mut current, &mut out);
    out
}

/// Checks a model's wording against the facts; returns the statements to keep or why it is refused.
pub(crate) fn check_phrasing(
    phrasing: &Phrasing,
    facts: &[AnalysisFact],
) -> Result<Vec<AnalysisStatement>, String> {
    let mut kept = Vec::new();
    for (i, s) in phrasing.statements.iter().enumerate() {
        let n = i + 1;
        let text = s.text.trim();
        let words: Vec<&str> = text.split_whitespace().collect();
        if words.len() < 3 {
            return Err(format!("statement {n} is not a sentence: {text:?}"));
        }
        let distinct: BTreeSet<String> = words.iter().map(|w| w.to_lowercase()).collect();
        if distinct.len() * 2 < words.len() {
            return Err(format!("statement {n} repeats itself: {text:?}"));
        }
        if s.facts.is_empty() {
            return Err(format!("statement {n} cites no fact: {text:?}"));
        }
        let cited: Vec<&AnalysisFact> = s
            .facts
            .iter()
            .filter_map(|f| facts.iter().find(|x| u64::from(x.number) == *f))
            .collect();
        if cited.len() != s.facts.len() {
            return Err(format!("statement {n} cites a fact that does not exist"));
        }
        let allowed: Vec<f64> = cited
            .iter()
            .flat_map(|f| numbers(&f.text))
            .chain(s.facts.iter().map(|f| *f as f64))
            .collect();
        for v in numbers(text) {
            if !allowed.iter().any(|a| (a - v).abs() < 1e-9) {
                return Err(format!(
                    "statement {n} states {v}, which none of the facts it cites ({:?}) holds: {text:?}",
                    s.facts
                ));
            }
        }
        let lower = text.to_lowercase();
        for word in UNMEASURED_WORDS {
            let quoted = cited.iter().any(|f| f.text.to_lowercase().contains(word));
            if lower.contains(word) && !quoted {
                return Err(format!(
                    "statement {n} speaks of {word}…, which crow did not measure and no cited event says: {text:?}"
                ));
            }
        }
        kept.push(AnalysisStatement {
            text: text.to_owned(),
            facts: s.facts.iter().map(|f| *f as u32).collect(),
        });
    }
    if kept.is_empty() {
        return Err("no statement".to_owned());
    }
    Ok(kept)
}

/// crow's own wording: the count, metric and anomaly facts, one sentence each, citing themselves.
pub(crate) fn template_statements(facts: &[AnalysisFact]) -> Vec<AnalysisStatement> {
    facts
        .iter()
        .filter(|f| {
            matches!(
                f.kind,
                FactKind::Count | FactKind::Metric | FactKind::Anomaly
            )
        })
        .take(4)
        .map(|f| AnalysisStatement {
            text: f.text.clone(),
            facts: vec![f.number],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crow_inference::text::PhrasedStatement;

    fn fact(number: u32, kind: FactKind, text: &str) -> AnalysisFact {
        AnalysisFact {
            number,
            kind,
            text: text.into(),
            interaction_ids: Vec::new(),
            metrics: None,
            test: None,
        }
    }

    fn phrasing(statements: &[(&str, &[u64])]) -> Phrasing {
        Phrasing {
            statements: statements
                .iter()
                .map(|(t, f)| PhrasedStatement {
                    text: (*t).into(),
                    facts: f.to_vec(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_wording_is_kept_only_when_every_number_and_claim_is_a_cited_facts() {
        let facts = [
            fact(1, FactKind::Count, "The window holds 3 records: 1 web, 0 CCTV and 2 social."),
            fact(2, FactKind::Metric, "Cameras counted 1,204 people in and 1,180 out through the tripwires, and first saw 1,400 people."),
            fact(3, FactKind::Theme, "1 social record is tagged complaint; the newest says: \"I am not satisfied, my boots leak\""),
        ];
        let good = phrasing(&[
            ("Three records: 1 web and 2 social ones.", &[1]),
            ("1,204 people came in and 1,180 left.", &[2]),
            (
                "A customer wrote that they are not satisfied with boots that leak.",
                &[3],
            ),
        ]);
        assert_eq!(check_phrasing(&good, &facts).unwrap().len(), 3);
        for (bad, why) in [
            (
                phrasing(&[("The store had a 100% satisfaction rating.", &[1])]),
                "states 100",
            ),
            (
                phrasing(&[("Customers were satisfied with the service.", &[1, 2])]),
                "satisf",
            ),
            (
                phrasing(&[("The customer has purchased a pair of boots.", &[3])]),
                "purchas",
            ),
            (phrasing(&[("1,204 people came in.", &[1])]), "states 1204"),
            (phrasing(&[("x: x: x: x: x: x:", &[1])]), "repeats itself"),
            (phrasing(&[("y", &[1])]), "not a sentence"),
            (
                phrasing(&[("Many people came in today.", &[])]),
                "cites no fact",
            ),
            (
                phrasing(&[("Many people came in today.", &[9])]),
                "does not exist",
            ),
        ] {
            let e = check_phrasing(&bad, &facts).unwrap_err();
            assert!(e.contains(why), "{e} (wanted {why})");
        }
        assert_eq!(
            numbers("at 14:00, 3.5 s and 1,204."),
            [14.0, 0.0, 3.5, 1204.0]
        );
    }

    fn hour_row(start_ms: i64, people_in: u64) -> MetricsRow {
        MetricsRow {
            start_ms,
            end_ms: start_ms + HOUR_MS,
            start: String::new(),
            people_in,
            people_out: 0,
            people: people_in,
            visits: 0,
            mean_people: 0.0,
            cameras: Vec::new(),
            lines: Vec::new(),
            zones: Vec::new(),
            products: Vec::new(),
        }
    }

    fn report(rows: Vec<MetricsRow>) -> MetricsReport {
        MetricsReport {
            grouping: Grouping::Hour,
            time_zone: "UTC".into(),
            source_width: crow_storage::metrics::BucketWidth::Hour,
            from_ms: rows.first().map_or(0, |r| r.start_ms),
            to_ms: rows.last().map_or(0, |r| r.end_ms),
            rows,
        }
    }

    #[test]
    fn an_hour_far_from_its_own_history_is_an_anomaly_and_ordinary_noise_is_not() {
        let day0 = 20 * DAY_MS;
        // Seven previous days: 10-14 people in at 15:00, nothing else.
        let mut history = Vec::new();
        for d in 0..8 {
            for h in 0..24 {
                let start = day0 + d * DAY_MS + h * HOUR_MS;
                let v = if h == 15 { 10 + (d as u64 % 5) } else { 0 };
                history.push(hour_row(start, v));
            }
        }
        // Today: 15:00 normal (13), 16:00 has 30 against 0.
        let today = day0 + 7 * DAY_MS;
        let last = history.len();
        history[last - 24 + 15] = hour_row(today + 15 * HOUR_MS, 13);
        history[last - 24 + 16] = hour_row(today + 16 * HOUR_MS, 30);
        let hours = report(history[last - 24..].to_vec());
        let found = anomalies(&hours, &report(history), true);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].row_start, today + 16 * HOUR_MS);
        assert_eq!((found[0].value, found[0].days), (30, 7));
    }
}
