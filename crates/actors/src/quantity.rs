//! Questions about quantities ("how many people came in through the door between 3 and 4 pm
//! yesterday?"): crow reads the question into a plan — a measure, a place, a time range — from a closed
//! vocabulary and the organization's own tripwires, zones and products, runs it on the store metrics
//! and answers with the number and the records whose events make it. A question about something crow
//! does not measure (sales, feelings, age) is answered "I cannot measure that", with what it can
//! measure. Other questions go to retrieval ([`crate::ask`]).
//!
//! Times are UTC (the answer says so): "today", "yesterday", "this morning" (06-12), "this afternoon"
//! (12-18), "this evening" (18-24), "last hour", "last N hours/days", "this week" (the last 7 days),
//! "between 3 and 4 pm", "from 15:00 to 16:00", "at 3 pm" (that hour); none: every stored hour.

use crow_storage::metrics_report::{self, Grouping, MetricsQuery, MetricsRow};
use crow_storage::{CameraConfig, Product};

/// What a quantity question asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Crossings of tripwires in their "in" direction.
    PeopleIn,
    /// Crossings in their "out" direction.
    PeopleOut,
    /// People first seen by the cameras.
    People,
    /// Zone visits begun.
    Visits,
    /// The median length of zone visits.
    MedianDwell,
    /// The hour with the most people in (or first seen).
    BusiestHour,
    /// Visits of a product's display.
    ProductVisits,
}

/// A place of a question: a tripwire or a zone of one camera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The camera.
    pub camera_id: String,
    /// The tripwire or zone id.
    pub id: String,
}

/// A plan: what to measure, where and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The measure.
    pub measure: Measure,
    /// The tripwire or zone named, if any.
    pub place: Option<Place>,
    /// The product named, if any (for product visits).
    pub product: Option<Product>,
    /// The range: from (inclusive), ms since the epoch.
    pub from_ms: i64,
    /// To (exclusive).
    pub to_ms: i64,
    /// The range in words ("between 2026-12-07 15:00 and 16:00 UTC").
    pub period: String,
}

/// How crow reads a question.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// A quantity crow measures.
    Quantity(Box<Plan>),
    /// A quantity crow does not measure; the words that say so.
    Unmeasurable(String),
    /// Not a quantity question.
    Other,
}

/// What crow measures, said to a question it cannot answer.
pub const MEASURABLE: &str = "people coming in and going out through a tripwire, people first seen by a camera, visits to a zone and how long they lasted, the busiest hour, and visits to a product's display — per hour, day or any range";

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Words of a question, lowercase, split on anything but letters, digits and ':'.
fn words(question: &str) -> Vec<String> {
    question
        .to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == ':'))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

fn has(words: &[String], any: &[&str]) -> bool {
    words.iter().any(|w| any.iter().any(|a| w.starts_with(a)))
}

fn phrase(text: &str, any: &[&str]) -> bool {
    any.iter().any(|p| text.contains(p))
}

/// An hour of the day from words such as `3`, `3pm`, `15`, `15:00` and a following `am`/`pm`.
fn hour_of(word: &str, next: Option<&str>) -> Option<i64> {
    let (digits, suffix) = word.split_at(
        word.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(word.len()),
    );
    let mut hour: i64 = digits.parse().ok()?;
    let suffix = suffix.trim_start_matches(":00");
    let meridiem = match (suffix, next) {
        ("pm", _) | ("", Some("pm")) => Some(true),
        ("am", _) | ("", Some("am")) => Some(false),
        ("", _) => None,
        _ => return None,
    };
    match meridiem {
        Some(true) if hour < 12 => hour += 12,
        Some(false) if hour == 12 => hour = 0,
        _ => {}
    }
    (0..=24).contains(&hour).then_some(hour)
}

/// The hours named in the question, in order ("between 3 and 4 pm": the pm applies to both).
fn hours(words: &[String]) -> Vec<i64> {
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if !w.starts_with(|c: char| c.is_ascii_digit()) {
            continue;
        }
        let next = words.get(i + 1).map(String::as_str);
        // A bare number before "and N pm" takes that meridiem.
        let after_and = (next == Some("and") || next == Some("to"))
            .then(|| words.get(i + 3).map(String::as_str))
            .flatten();
        let next = next
            .filter(|n| *n == "am" || *n == "pm")
            .or(after_and.filter(|n| *n == "am" || *n == "pm"));
        if let Some(h) = hour_of(w, next) {
            out.push(h);
        }
    }
    out
}

/// The time range the question names, and its words.
fn period(words: &[String], text: &str, now_ms: i64) -> (i64, i64, String) {
    let today = now_ms.div_euclid(DAY_MS) * DAY_MS;
    let clock = |ms: i64| metrics_report::utc(ms, "%Y-%m-%d %H:%M");
    let day = if has(words, &["yesterday"]) {
        Some(today - DAY_MS)
    } else if has(words, &["today", "tonight"])
        || phrase(text, &["this morning", "this afternoon", "this evening"])
    {
        Some(today)
    } else {
        None
    };
    let named = hours(words);
    if let (Some(&a), Some(&b)) = (named.first(), named.get(1)) {
        if b > a {
            let base = day.unwrap_or(today);
            let (from, to) = (base + a * HOUR_MS, base + b * HOUR_MS);
            return (
                from,
                to,
                format!("between {} and {} UTC", clock(from), &clock(to)[11..]),
            );
        }
    }
    if let Some(&a) = named.first() {
        if phrase(text, &[" at ", " around "]) {
            let base = day.unwrap_or(today);
            let from = base + a * HOUR_MS;
            return (
                from,
                from + HOUR_MS,
                format!(
                    "between {} and {} UTC",
                    clock(from),
                    &clock(from + HOUR_MS)[11..]
                ),
            );
        }
    }
    let part = |from_h: i64, to_h: i64| {
        let base = day.unwrap_or(today);
        let (from, to) = (base + from_h * HOUR_MS, base + to_h * HOUR_MS);
        (
            from,
            to,
            format!("between {} and {} UTC", clock(from), &clock(to)[11..]),
        )
    };
    if text.contains("morning") {
        return part(6, 12);
    }
    if text.contains("afternoon") {
        return part(12, 18);
    }
    if text.contains("evening") {
        return part(18, 24);
    }
    if let Some(d) = day {
        return (d, d + DAY_MS, format!("on {} (UTC)", &clock(d)[..10]));
    }
    // "last N hours / days", "last hour", "this week", "past week".
    for (i, w) in words.iter().enumerate() {
        if w == "last" || w == "past" {
            let (n, unit) = match (words.get(i + 1), words.get(i + 2)) {
                (Some(n), Some(u)) if n.parse::<i64>().is_ok() => {
                    (n.parse::<i64>().unwrap_or(1), u.as_str())
                }
                (Some(u), _) => (1, u.as_str()),
                _ => continue,
            };
            let span = if unit.starts_with("hour") {
                n * HOUR_MS
            } else if unit.starts_with("day") {
                n * DAY_MS
            } else if unit.starts_with("week") {
                n * 7 * DAY_MS
            } else {
                continue;
            };
            let to = now_ms.div_euclid(HOUR_MS) * HOUR_MS + HOUR_MS;
            return (
                to - span,
                to,
                format!(
                    "in the {} {} before {} UTC",
                    w,
                    &text_span(n, unit),
                    clock(to)
                ),
            );
        }
    }
    if phrase(text, &["this week"]) {
        let to = now_ms.div_euclid(HOUR_MS) * HOUR_MS + HOUR_MS;
        return (
            to - 7 * DAY_MS,
            to,
            format!("in the 7 days before {} UTC", clock(to)),
        );
    }
    let to = now_ms.div_euclid(HOUR_MS) * HOUR_MS + HOUR_MS;
    (0, to, "in every stored hour".to_owned())
}

fn text_span(n: i64, unit: &str) -> String {
    if n == 1 {
        unit.trim_end_matches('s').to_owned()
    } else {
        format!("{n} {unit}")
    }
}

/// The words a place id stands for (`running-shoes` -> `running shoes`).
fn id_words(id: &str) -> String {
    id.to_lowercase().replace(['-', '_', '.'], " ")
}

/// Reads a question. `cameras` and `catalog` are the organization's, for its places and products.
pub fn read(question: &str, cameras: &[CameraConfig], catalog: &[Product], now_ms: i64) -> Reading {
    let w = words(question);
    let text = format!(" {} ", w.join(" "));
    let asks_quantity = phrase(
        &text,
        &[
            " how many ",
            " how much ",
            " how long ",
            " number of ",
            " count of ",
            " busiest ",
            " which hour ",
            " what hour ",
            " average ",
            " median ",
            " how old ",
            " what age ",
        ],
    );
    if !asks_quantity {
        return Reading::Other;
    }
    const UNMEASURED: &[&str] = &[
        "bought",
        "buy",
        "purchas",
        "sale",
        "sold",
        "revenue",
        "spent money",
        "paid",
        "satisf",
        "happy",
        "unhappy",
        "angry",
        "mood",
        "age ",
        "old ",
        "older",
        "gender",
        "women",
        "men ",
        "female",
        "male",
        "children",
        "kids",
        "staff",
        "employee",
        "cashier",
        "stolen",
        "theft",
    ];
    if let Some(word) = UNMEASURED.iter().find(|u| text.contains(&format!(" {u}"))) {
        return Reading::Unmeasurable(word.trim().to_owned());
    }

    let lines: Vec<Place> = cameras
        .iter()
        .flat_map(|c| {
            c.lines.iter().map(move |l| Place {
                camera_id: c.camera_id.clone(),
                id: l.id.clone(),
            })
        })
        .collect();
    let zones: Vec<(Place, Vec<String>)> = cameras
        .iter()
        .flat_map(|c| {
            c.zones.iter().map(move |z| {
                (
                    Place {
                        camera_id: c.camera_id.clone(),
                        id: z.id.clone(),
                    },
                    z.product_ids.clone(),
                )
            })
        })
        .collect();
    let named = |id: &str| text.contains(&format!(" {} ", id_words(id)));
    let product = catalog
        .iter()
        .filter(|p| {
            let name = id_words(&p.name);
            !name.trim().is_empty()
                && (text.contains(&format!(" {} ", name.trim())) || named(&p.id))
        })
        .max_by_key(|p| p.name.len())
        .cloned();
    let line = lines.iter().find(|l| named(&l.id)).cloned();
    let zone = zones
        .iter()
        .find(|(z, _)| named(&z.id))
        .or_else(|| {
            product
                .as_ref()
                .and_then(|p| zones.iter().find(|(_, products)| products.contains(&p.id)))
        })
        .map(|(z, _)| z.clone());

    let measure = if phrase(&text, &[" busiest ", " which hour ", " what hour "]) {
        Measure::BusiestHour
    } else if phrase(
        &text,
        &[
            " how long ",
            " dwell",
            " time spent",
            " spend time",
            " stay",
            " stayed",
        ],
    ) {
        Measure::MedianDwell
    } else if has(&w, &["enter", "came", "come", "arriv", "walked"])
        || phrase(&text, &[" in through ", " went in "])
    {
        Measure::PeopleIn
    } else if has(&w, &["left", "leav", "exit", "depart"])
        || phrase(&text, &[" went out ", " out through "])
    {
        Measure::PeopleOut
    } else if product.is_some() && has(&w, &["visit", "stop", "look"]) {
        Measure::ProductVisits
    } else if has(&w, &["visit", "stop"]) && zone.is_some() {
        Measure::Visits
    } else if has(&w, &["people", "person", "visitor", "customer", "shopper"]) {
        // Visitors: through the door where there is one, else the people the cameras saw.
        if lines.is_empty() {
            Measure::People
        } else {
            Measure::PeopleIn
        }
    } else if has(&w, &["visit", "stop"]) {
        Measure::Visits
    } else {
        return Reading::Unmeasurable(
            w.iter()
                .skip_while(|x| *x != "many" && *x != "much" && *x != "long")
                .nth(1)
                .cloned()
                .unwrap_or_else(|| question.trim().to_owned()),
        );
    };
    let place = match measure {
        Measure::PeopleIn | Measure::PeopleOut => line,
        Measure::Visits | Measure::MedianDwell => zone,
        Measure::ProductVisits | Measure::People | Measure::BusiestHour => None,
    };
    let (from_ms, to_ms, period) = period(&w, &text, now_ms);
    Reading::Quantity(Box::new(Plan {
        measure,
        place,
        product: product.filter(|_| measure == Measure::ProductVisits),
        from_ms,
        to_ms,
        period,
    }))
}

/// The plan's grouping: hours for the busiest hour, else the whole range.
pub fn grouping(plan: &Plan) -> Grouping {
    if plan.measure == Measure::BusiestHour {
        Grouping::Hour
    } else {
        Grouping::Total
    }
}

/// The metrics query of a plan (UTC).
pub fn query(plan: &Plan) -> Result<MetricsQuery, crow_storage::StorageError> {
    Ok(MetricsQuery {
        camera_id: plan.place.as_ref().map(|p| p.camera_id.clone()),
        from_ms: plan.from_ms,
        to_ms: plan.to_ms,
        grouping: grouping(plan),
        time_zone: metrics_report::time_zone("UTC")?,
    })
}

/// The zones of a row the plan's place selects (all without one).
fn zones_of<'r>(r: &'r MetricsRow, place: Option<&Place>) -> Vec<&'r metrics_report::ZoneRow> {
    r.zones
        .iter()
        .filter(|z| place.is_none_or(|p| p.id == z.zone_id && p.camera_id == z.camera_id))
        .collect()
}

/// The number a plan asks for, from the rows of its report, and the sentence that says it.
pub fn answer(plan: &Plan, rows: &[MetricsRow]) -> (f64, String) {
    let place = plan.place.as_ref();
    let at = |what: &str| match place {
        Some(p) => format!("{what} {} (camera {})", p.id, p.camera_id),
        None => "all cameras".to_owned(),
    };
    let sum = |f: &dyn Fn(&MetricsRow) -> u64| rows.iter().map(f).sum::<u64>();
    let line = |r: &MetricsRow, inward: bool| {
        r.lines
            .iter()
            .filter(|l| place.is_none_or(|p| p.id == l.line_id && p.camera_id == l.camera_id))
            .map(|l| if inward { l.people_in } else { l.people_out })
            .sum::<u64>()
    };
    let people = |n: u64| {
        if n == 1 {
            "1 person".to_owned()
        } else {
            format!("{n} people")
        }
    };
    match plan.measure {
        Measure::PeopleIn => {
            let n = sum(&|r| line(r, true));
            (
                n as f64,
                format!(
                    "{} came in through {} {}.",
                    people(n),
                    at("tripwire"),
                    plan.period
                ),
            )
        }
        Measure::PeopleOut => {
            let n = sum(&|r| line(r, false));
            (
                n as f64,
                format!(
                    "{} went out through {} {}.",
                    people(n),
                    at("tripwire"),
                    plan.period
                ),
            )
        }
        Measure::People => {
            let n = sum(&|r| r.people);
            (
                n as f64,
                format!("The cameras first saw {} {}.", people(n), plan.period),
            )
        }
        Measure::Visits => {
            let n = sum(&|r| zones_of(r, place).iter().map(|z| z.visits).sum());
            (
                n as f64,
                format!(
                    "{} had {n} visit{} {}.",
                    at("Zone"),
                    if n == 1 { "" } else { "s" },
                    plan.period
                ),
            )
        }
        Measure::ProductVisits => {
            let Some(p) = &plan.product else {
                return (0.0, "No product was named.".to_owned());
            };
            let n = sum(&|r| {
                r.products
                    .iter()
                    .filter(|x| x.product_id == p.id)
                    .map(|x| x.visits)
                    .sum()
            });
            (
                n as f64,
                format!(
                    "{} ({}) had {n} visit{} at its display {}.",
                    p.name,
                    p.id,
                    if n == 1 { "" } else { "s" },
                    plan.period
                ),
            )
        }
        Measure::MedianDwell => {
            // One Total row: its zones' medians; several zones: the one named, else the busiest.
            let zones: Vec<_> = rows
                .iter()
                .flat_map(|r| zones_of(r, place))
                .filter(|z| z.dwell_p50_ms.is_some())
                .collect();
            match zones.iter().max_by_key(|z| z.exits) {
                Some(z) => {
                    let s = z.dwell_p50_ms.unwrap_or(0) as f64 / 1000.0;
                    (s, format!("The median visit to zone {} (camera {}) lasted {s:.0} s over {} visits {}.", z.zone_id, z.camera_id, z.exits, plan.period))
                }
                None => (
                    0.0,
                    format!("No visit to {} ended {}.", at("zone"), plan.period),
                ),
            }
        }
        Measure::BusiestHour => {
            let count = |r: &MetricsRow| {
                if r.people_in > 0 {
                    r.people_in
                } else {
                    r.people
                }
            };
            match rows
                .iter()
                .filter(|r| count(r) > 0)
                .max_by_key(|r| (count(r), -r.start_ms))
            {
                Some(r) => {
                    let n = count(r);
                    (
                        n as f64,
                        format!(
                            "The busiest hour {} began at {} UTC: {} came in or were first seen.",
                            plan.period,
                            &r.start[..16].replace('T', " "),
                            people(n)
                        ),
                    )
                }
                None => (0.0, format!("Nobody was counted {}.", plan.period)),
            }
        }
    }
}

/// Whether an event of a record is one the plan counts (to cite the records that make the number).
pub fn counts_event(plan: &Plan, camera_id: &str, event: &crow_storage::TrackEvent) -> bool {
    use crow_storage::TrackEventKind as K;
    if event.at_ms < plan.from_ms || event.at_ms >= plan.to_ms {
        return false;
    }
    let here = plan
        .place
        .as_ref()
        .is_none_or(|p| p.camera_id == camera_id && event.place.as_deref() == Some(p.id.as_str()));
    match plan.measure {
        Measure::PeopleIn => event.kind == K::LineIn && here,
        Measure::PeopleOut => event.kind == K::LineOut && here,
        Measure::People | Measure::BusiestHour => {
            event.kind == K::TrackStarted || event.kind == K::LineIn
        }
        Measure::Visits => event.kind == K::ZoneEnter && here,
        Measure::MedianDwell => event.kind == K::ZoneExit && here,
        Measure::ProductVisits => {
            event.kind == K::ZoneDwell
                && plan
                    .product
                    .as_ref()
                    .is_some_and(|p| event.product_ids.contains(&p.id))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crow_storage::{LineConfig, ZoneConfig};

    const NOW: i64 = 1_765_123_200_000 + 10 * HOUR_MS; // 2025-12-07 10:00 UTC

    fn store() -> (Vec<CameraConfig>, Vec<Product>) {
        let camera = CameraConfig {
            organization_id: "shop".into(),
            camera_id: "entrance".into(),
            zones: vec![ZoneConfig {
                id: "shoe-wall".into(),
                polygon: vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]],
                product_ids: vec!["sku-1".into()],
                min_dwell_ms: 3_000,
            }],
            lines: vec![LineConfig {
                id: "door".into(),
                a: [0.0, 0.5],
                b: [1.0, 0.5],
            }],
            masks: vec![],
            detector_input: None,
            detector_tiles: None,
            updated_at_ms: 0,
        };
        let product = Product {
            organization_id: "shop".into(),
            id: "sku-1".into(),
            name: "Red running shoes".into(),
            category: "shoes".into(),
            description: String::new(),
            tags: vec![],
            aliases: vec![],
            updated_at_ms: 0,
        };
        (vec![camera], vec![product])
    }

    fn plan(q: &str) -> Plan {
        let (cameras, catalog) = store();
        match read(q, &cameras, &catalog, NOW) {
            Reading::Quantity(p) => *p,
            other => panic!("{q}: {other:?}"),
        }
    }

    #[test]
    fn questions_become_plans_of_measure_place_and_hours() {
        let p = plan("How many people entered through the door between 3 and 4 pm yesterday?");
        assert_eq!(p.measure, Measure::PeopleIn);
        assert_eq!(p.place.as_ref().map(|p| p.id.as_str()), Some("door"));
        let yesterday = NOW.div_euclid(DAY_MS) * DAY_MS - DAY_MS;
        assert_eq!(
            (p.from_ms, p.to_ms),
            (yesterday + 15 * HOUR_MS, yesterday + 16 * HOUR_MS)
        );
        assert_eq!(
            plan("How many left through the door today?").measure,
            Measure::PeopleOut
        );
        let dwell = plan("How long did people stay at the shoe wall this morning?");
        assert_eq!(dwell.measure, Measure::MedianDwell);
        assert_eq!(
            dwell.place.as_ref().map(|p| p.id.as_str()),
            Some("shoe-wall")
        );
        let product = plan("How many visits did the red running shoes get in the last 3 days?");
        assert_eq!(product.measure, Measure::ProductVisits);
        assert_eq!(product.to_ms - product.from_ms, 3 * DAY_MS);
        assert_eq!(
            plan("What was the busiest hour today?").measure,
            Measure::BusiestHour
        );
        assert_eq!(
            plan("How many visitors came at 15:00 yesterday?").to_ms
                - plan("How many visitors came at 15:00 yesterday?").from_ms,
            HOUR_MS
        );
        let (cameras, catalog) = store();
        assert!(matches!(
            read("How many shoes did we sell?", &cameras, &catalog, NOW),
            Reading::Unmeasurable(_)
        ));
        assert!(matches!(
            read("How many women came in?", &cameras, &catalog, NOW),
            Reading::Unmeasurable(_)
        ));
        assert_eq!(
            read("Was a child lost near the toys?", &cameras, &catalog, NOW),
            Reading::Other
        );
    }
}
