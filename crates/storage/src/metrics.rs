//! Store metrics measured from the track events and occupancy changes of `cctv` records: people in and
//! out per tripwire, people first seen, zone visits and dwell, people in view and in each zone, visits
//! per product — in buckets per camera, kept up to date as each record is stored (the same transaction),
//! so a query reads buckets and never rescans records.
//!
//! The rules, which [`RecordMetrics::buckets`] applies and the tests check against the records:
//! - every event counts in the bucket of its own capture time (`at_ms`): a line crossing, a zone
//!   entry (a visit), a zone dwell (a visit that reached the zone's `min_dwell_ms`, one product visit
//!   for each product the zone was mapped to), a zone exit (its `dwell_ms` is the visit's length), a
//!   track start (a person first seen by that camera);
//! - people in view and in each zone are step functions of time: the occupancy samples (people in
//!   view) and zone entries and exits (people in a zone) change them, and each bucket gets the
//!   person-milliseconds it held and the most people at any instant in it. The level a camera was left
//!   at carries over from one record to the next ([`OccupancyCarry`]), for at most [`CARRY_LIMIT_MS`]
//!   (a session lasts an hour and ends at 0: a longer silence means the stream stopped);
//! - buckets are stored five minutes and one hour wide, aligned to UTC; hours and days of a time zone
//!   whose offset is whole hours are read from the hourly buckets, other offsets from the five-minute
//!   ones ([`source_width`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use sled::transaction::TransactionalTree;

use crate::keys;
use crate::model::{Interaction, OccupancySample, SourceType, TrackEvent, TrackEventKind};
use crate::store::{decode, encode, tx_get, tx_put, Store, TxResult};
use crate::Result;

/// How long a level of people in view is carried without a change: longer than a session lasts.
pub const CARRY_LIMIT_MS: i64 = 3_600_000;

/// The widths buckets are stored at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BucketWidth {
    /// Five minutes.
    FiveMinutes,
    /// One hour.
    Hour,
}

impl BucketWidth {
    /// Every stored width, finest first.
    pub const ALL: [BucketWidth; 2] = [BucketWidth::FiveMinutes, BucketWidth::Hour];

    /// Its length in milliseconds.
    pub const fn ms(self) -> i64 {
        match self {
            BucketWidth::FiveMinutes => 300_000,
            BucketWidth::Hour => 3_600_000,
        }
    }

    /// The start of the bucket holding `at_ms`.
    pub const fn start_of(self, at_ms: i64) -> i64 {
        at_ms.div_euclid(self.ms()) * self.ms()
    }

    /// The byte that stands for it in keys.
    pub(crate) const fn code(self) -> u8 {
        match self {
            BucketWidth::FiveMinutes => 1,
            BucketWidth::Hour => 2,
        }
    }

    /// The width a key byte stands for.
    pub(crate) fn from_code(code: u8) -> Option<BucketWidth> {
        BucketWidth::ALL.into_iter().find(|w| w.code() == code)
    }
}

/// The growth factor of [`DwellSketch`]'s bins.
const SKETCH_GAMMA: f64 = 1.05;

/// A mergeable summary of visit lengths from which quantiles are read with a bounded relative error
/// ([`DwellSketch::RELATIVE_ERROR`], the DDSketch construction): bin `k` counts lengths in
/// `(γ^(k-1), γ^k]` ms, bin 0 lengths of at most 1 ms. Adding and merging are O(bins), and a day of
/// visits from a second to an hour fills at most ~170 bins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DwellSketch {
    bins: BTreeMap<u16, u64>,
}

impl DwellSketch {
    /// The most a quantile read from the sketch differs from the true one, relative to it.
    pub const RELATIVE_ERROR: f64 = (SKETCH_GAMMA - 1.0) / (SKETCH_GAMMA + 1.0);

    fn bin(ms: i64) -> u16 {
        if ms <= 1 {
            return 0;
        }
        ((ms as f64).ln() / SKETCH_GAMMA.ln())
            .ceil()
            .min(f64::from(u16::MAX)) as u16
    }

    /// The value a bin stands for: within [`Self::RELATIVE_ERROR`] of every length in it.
    fn value(bin: u16) -> i64 {
        if bin == 0 {
            return 1;
        }
        (2.0 * SKETCH_GAMMA.powi(i32::from(bin)) / (SKETCH_GAMMA + 1.0)).round() as i64
    }

    /// Counts one visit of `ms`.
    pub fn add(&mut self, ms: i64) {
        *self.bins.entry(Self::bin(ms)).or_default() += 1;
    }

    /// Adds another sketch's visits.
    pub fn merge(&mut self, other: &DwellSketch) {
        for (bin, n) in &other.bins {
            *self.bins.entry(*bin).or_default() += n;
        }
    }

    /// Visits counted.
    pub fn count(&self) -> u64 {
        self.bins.values().sum()
    }

    /// The `q` quantile (0..=1) by nearest rank: the length at rank `max(1, ceil(q * n))` of the
    /// sorted visits, within [`Self::RELATIVE_ERROR`]; `None` without visits.
    pub fn quantile(&self, q: f64) -> Option<i64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bin, count) in &self.bins {
            seen += count;
            if seen >= rank {
                return Some(Self::value(*bin));
            }
        }
        self.bins.keys().next_back().map(|b| Self::value(*b))
    }
}

/// People through one tripwire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineCounts {
    /// Crossings in its "in" direction.
    #[serde(default, rename = "in")]
    pub people_in: u64,
    /// Crossings in its "out" direction.
    #[serde(default, rename = "out")]
    pub people_out: u64,
}

/// What one zone saw in a bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneCounts {
    /// Entries (visits begun).
    #[serde(default)]
    pub visits: u64,
    /// Visits that reached the zone's `min_dwell_ms`.
    #[serde(default)]
    pub dwelt: u64,
    /// Visits ended.
    #[serde(default)]
    pub exits: u64,
    /// The ended visits' total length, ms.
    #[serde(default)]
    pub dwell_total_ms: u64,
    /// The ended visits' lengths.
    #[serde(default)]
    pub dwell: DwellSketch,
    /// Person-milliseconds spent in the zone within the bucket.
    #[serde(default)]
    pub people_ms: u64,
    /// The most people in the zone at once.
    #[serde(default)]
    pub peak_people: u32,
}

impl ZoneCounts {
    fn merge(&mut self, o: &ZoneCounts) {
        self.visits += o.visits;
        self.dwelt += o.dwelt;
        self.exits += o.exits;
        self.dwell_total_ms += o.dwell_total_ms;
        self.dwell.merge(&o.dwell);
        self.people_ms += o.people_ms;
        self.peak_people = self.peak_people.max(o.peak_people);
    }
}

/// What one camera measured in one bucket (or, merged, in a longer span).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricBucket {
    /// People first seen (tracks started).
    #[serde(default)]
    pub people: u64,
    /// Person-milliseconds of people in view.
    #[serde(default)]
    pub people_ms: u64,
    /// The most people in view at once.
    #[serde(default)]
    pub peak_people: u32,
    /// Per tripwire.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lines: BTreeMap<String, LineCounts>,
    /// Per zone.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub zones: BTreeMap<String, ZoneCounts>,
    /// Visits per catalog product: zone dwells in zones mapped to it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub products: BTreeMap<String, u64>,
}

impl MetricBucket {
    /// Adds another bucket's measurements (sums, and the larger peak).
    pub fn merge(&mut self, o: &MetricBucket) {
        self.people += o.people;
        self.people_ms += o.people_ms;
        self.peak_people = self.peak_people.max(o.peak_people);
        for (id, l) in &o.lines {
            let mine = self.lines.entry(id.clone()).or_default();
            mine.people_in += l.people_in;
            mine.people_out += l.people_out;
        }
        for (id, z) in &o.zones {
            self.zones.entry(id.clone()).or_default().merge(z);
        }
        for (id, n) in &o.products {
            *self.products.entry(id.clone()).or_default() += n;
        }
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        *self == MetricBucket::default()
    }

    fn count(&mut self, e: &TrackEvent) {
        let place = || e.place.clone().unwrap_or_default();
        match e.kind {
            TrackEventKind::TrackStarted => self.people += 1,
            TrackEventKind::TrackEnded => {}
            TrackEventKind::LineIn => self.lines.entry(place()).or_default().people_in += 1,
            TrackEventKind::LineOut => self.lines.entry(place()).or_default().people_out += 1,
            TrackEventKind::ZoneEnter => self.zones.entry(place()).or_default().visits += 1,
            TrackEventKind::ZoneDwell => {
                self.zones.entry(place()).or_default().dwelt += 1;
                for p in &e.product_ids {
                    *self.products.entry(p.clone()).or_default() += 1;
                }
            }
            TrackEventKind::ZoneExit => {
                let z = self.zones.entry(place()).or_default();
                z.exits += 1;
                if let Some(ms) = e.dwell_ms {
                    z.dwell_total_ms += ms.max(0) as u64;
                    z.dwell.add(ms);
                }
            }
        }
    }
}

/// The levels a camera was left at by its latest stored record: people in view and in each zone, since
/// `at_ms`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OccupancyCarry {
    /// When the levels last changed, ms since the epoch.
    #[serde(default)]
    pub at_ms: i64,
    /// People in view.
    #[serde(default)]
    pub people: u32,
    /// People in each zone (zones at 0 are left out).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub zones: BTreeMap<String, u32>,
}

/// One change of a level, in time order.
enum Change<'a> {
    People(u32),
    ZoneEnter(&'a str),
    ZoneExit(&'a str),
}

/// The buckets of one camera a record adds to: `(width, bucket start)` -> what to add.
pub type BucketDeltas = BTreeMap<(BucketWidth, i64), MetricBucket>;

/// What a `cctv` record measured, read from its `data`: its camera, track events and occupancy
/// samples.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasuredFacts {
    /// Owning organization.
    pub organization_id: String,
    /// The camera.
    pub camera_id: String,
    /// Its track events.
    pub events: Vec<TrackEvent>,
    /// Its occupancy samples.
    pub occupancy: Vec<OccupancySample>,
}

impl MeasuredFacts {
    /// The facts of a `cctv` record; `None` for other sources or a record without a camera. Events or
    /// samples that do not decode count as none (the record's JSON is crow's own).
    pub fn of(i: &Interaction) -> Option<MeasuredFacts> {
        if i.source_type != SourceType::Cctv {
            return None;
        }
        let camera_id = i.data.get("camera_id")?.as_str()?.to_owned();
        fn field<T: serde::de::DeserializeOwned>(i: &Interaction, name: &str) -> Vec<T> {
            i.data
                .get(name)
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default()
        }
        Some(MeasuredFacts {
            organization_id: i.organization_id.clone(),
            camera_id,
            events: field(i, "events"),
            occupancy: field(i, "occupancy"),
        })
    }

    /// What it adds to its camera's buckets, from the levels the camera was left at (updated).
    pub fn deltas(&self, carry: &mut OccupancyCarry) -> BucketDeltas {
        record_deltas(&self.events, &self.occupancy, carry)
    }
}

/// What one record adds to its camera's buckets, given the levels the camera was left at (updated to
/// the levels the record leaves).
pub fn record_deltas(
    events: &[TrackEvent],
    occupancy: &[OccupancySample],
    carry: &mut OccupancyCarry,
) -> BucketDeltas {
    let fine = BucketWidth::FiveMinutes;
    let mut deltas: BTreeMap<i64, MetricBucket> = BTreeMap::new();
    for e in events {
        deltas.entry(fine.start_of(e.at_ms)).or_default().count(e);
    }

    let mut changes: Vec<(i64, Change<'_>)> = occupancy
        .iter()
        .map(|o| (o.at_ms, Change::People(o.people)))
        .collect();
    for e in events {
        let Some(zone) = e.place.as_deref() else {
            continue;
        };
        match e.kind {
            TrackEventKind::ZoneEnter => changes.push((e.at_ms, Change::ZoneEnter(zone))),
            TrackEventKind::ZoneExit => changes.push((e.at_ms, Change::ZoneExit(zone))),
            _ => {}
        }
    }
    // Stable: at one instant, changes apply in the order they were measured.
    changes.sort_by_key(|(at, _)| *at);
    for (at_ms, change) in changes {
        if at_ms >= carry.at_ms {
            hold(carry, at_ms, &mut deltas);
            carry.at_ms = at_ms;
        }
        // A change older than the carried levels (a record stored out of order) still moves them,
        // but spans no time.
        let bucket = deltas.entry(fine.start_of(at_ms)).or_default();
        match change {
            Change::People(n) => {
                carry.people = n;
                bucket.peak_people = bucket.peak_people.max(n);
            }
            Change::ZoneEnter(zone) => {
                let level = carry.zones.entry(zone.to_owned()).or_default();
                *level += 1;
                let z = bucket.zones.entry(zone.to_owned()).or_default();
                z.peak_people = z.peak_people.max(*level);
            }
            Change::ZoneExit(zone) => {
                if let Some(level) = carry.zones.get_mut(zone) {
                    *level = level.saturating_sub(1);
                    if *level == 0 {
                        carry.zones.remove(zone);
                    }
                }
            }
        }
    }

    let mut out = BucketDeltas::new();
    for (start, bucket) in deltas {
        out.entry((BucketWidth::Hour, BucketWidth::Hour.start_of(start)))
            .or_default()
            .merge(&bucket);
        out.insert((fine, start), bucket);
    }
    out
}

/// Adds the carried levels, held from `carry.at_ms` to `until_ms`, to the five-minute buckets the span
/// covers (person-milliseconds, and the level as a peak). A span longer than [`CARRY_LIMIT_MS`] is
/// not held: the stream stopped without closing.
fn hold(carry: &OccupancyCarry, until_ms: i64, deltas: &mut BTreeMap<i64, MetricBucket>) {
    let (from, to) = (carry.at_ms, until_ms);
    if to <= from || to - from > CARRY_LIMIT_MS {
        return;
    }
    if carry.people == 0 && carry.zones.is_empty() {
        return;
    }
    let fine = BucketWidth::FiveMinutes;
    let mut start = fine.start_of(from);
    while start < to {
        let end = start + fine.ms();
        let span = (to.min(end) - from.max(start)) as u64;
        let bucket = deltas.entry(start).or_default();
        if carry.people > 0 {
            bucket.people_ms += span * u64::from(carry.people);
            bucket.peak_people = bucket.peak_people.max(carry.people);
        }
        for (zone, level) in &carry.zones {
            let z = bucket.zones.entry(zone.clone()).or_default();
            z.people_ms += span * u64::from(*level);
            z.peak_people = z.peak_people.max(*level);
        }
        start = end;
    }
}

/// One stored bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBucket {
    /// The camera.
    pub camera_id: String,
    /// Its width.
    pub width: BucketWidth,
    /// Its start, ms since the epoch (UTC-aligned to its width).
    pub start_ms: i64,
    /// What it holds.
    pub bucket: MetricBucket,
}

/// Adds one new record's facts to its camera's buckets and carried levels, inside the transaction that
/// stores the record.
pub(crate) fn add_metrics(
    buckets: &TransactionalTree,
    carry: &TransactionalTree,
    facts: &MeasuredFacts,
) -> TxResult<()> {
    let org = &facts.organization_id;
    let camera = &facts.camera_id;
    let carry_key = keys::pair(org, camera);
    let mut levels: OccupancyCarry = tx_get(carry, &carry_key)?.unwrap_or_default();
    for ((width, start), delta) in facts.deltas(&mut levels) {
        let key = keys::metric_bucket(org, camera, width.code(), start);
        let mut bucket: MetricBucket = tx_get(buckets, &key)?.unwrap_or_default();
        bucket.merge(&delta);
        tx_put(buckets, &key, &bucket)?;
    }
    tx_put(carry, &carry_key, &levels)?;
    Ok(())
}

impl Store {
    /// The organization's stored buckets of `width` starting in `from_ms..to_ms`, of one camera or of
    /// every camera, in key order (camera, then time).
    pub fn metric_buckets(
        &self,
        organization_id: &str,
        camera_id: Option<&str>,
        width: BucketWidth,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<StoredBucket>> {
        let tree = &self.inner.metric_buckets;
        let org_prefix = keys::prefix(organization_id);
        let mut out = Vec::new();
        let scan_camera = |camera: &str, out: &mut Vec<StoredBucket>| -> Result<()> {
            let start = keys::metric_bucket(organization_id, camera, width.code(), from_ms);
            let end = keys::metric_bucket(organization_id, camera, width.code(), to_ms);
            for item in tree.range(start..end) {
                let (key, value) = item?;
                let Some((_, _, start_ms)) = keys::parse_metric_bucket(&key, org_prefix.len())
                else {
                    return Err(crate::StorageError::corrupt(
                        &key,
                        "not a metric bucket key",
                    ));
                };
                out.push(StoredBucket {
                    camera_id: camera.to_owned(),
                    width,
                    start_ms,
                    bucket: decode(&key, &value)?,
                });
            }
            Ok(())
        };
        if let Some(camera) = camera_id {
            scan_camera(camera, &mut out)?;
            return Ok(out);
        }
        // Skip from camera to camera: each one's range is read, never the others' buckets.
        let org_end = keys::prefix_end(&org_prefix);
        let mut cursor = org_prefix.clone();
        while let Some((key, _)) = tree
            .range(cursor.clone()..org_end.clone())
            .next()
            .transpose()?
        {
            let Some((camera, _, _)) = keys::parse_metric_bucket(&key, org_prefix.len()) else {
                return Err(crate::StorageError::corrupt(
                    &key,
                    "not a metric bucket key",
                ));
            };
            let camera = camera.to_owned();
            scan_camera(&camera, &mut out)?;
            let mut camera_prefix = keys::pair(organization_id, &camera);
            camera_prefix.push(0);
            cursor = keys::prefix_end(&camera_prefix);
        }
        Ok(out)
    }

    /// Measures every stored `cctv` record again, oldest first, and returns the buckets and carried
    /// levels it yields, keyed as stored: what the metric trees must hold.
    pub(crate) fn measured_metrics(&self) -> Result<MeasuredTrees> {
        let mut buckets: BTreeMap<Vec<u8>, MetricBucket> = BTreeMap::new();
        let mut carries: BTreeMap<Vec<u8>, OccupancyCarry> = BTreeMap::new();
        // Within an organization the tree is newest first: read it backwards, organization by
        // organization (oldest first within each; organizations are independent).
        for item in self.inner.interactions.iter().rev() {
            let (key, value) = item?;
            // A record that does not decode measures nothing (`verify` names it).
            let Ok(record) = decode::<Interaction>(&key, &value) else {
                continue;
            };
            if let Some(facts) = MeasuredFacts::of(&record) {
                let carry_key = keys::pair(&facts.organization_id, &facts.camera_id);
                let levels = carries.entry(carry_key).or_default();
                for ((width, start), delta) in facts.deltas(levels) {
                    let key = keys::metric_bucket(
                        &facts.organization_id,
                        &facts.camera_id,
                        width.code(),
                        start,
                    );
                    buckets.entry(key).or_default().merge(&delta);
                }
            }
        }
        Ok((buckets, carries))
    }

    /// Replaces the metric trees with what the stored records measure ([`Store::measured_metrics`]):
    /// `crow verify --repair`, and a database written before metrics were kept. Returns how many
    /// buckets it wrote. The store must not be taking records meanwhile (`crow verify` opens it alone).
    pub fn rebuild_metrics(&self) -> Result<usize> {
        let (buckets, carries) = self.measured_metrics()?;
        let i = &self.inner;
        i.metric_buckets.clear()?;
        i.metric_carry.clear()?;
        let mut batch = sled::Batch::default();
        let n = buckets.len();
        for (key, bucket) in &buckets {
            batch.insert(key.as_slice(), encode(bucket));
        }
        i.metric_buckets.apply_batch(batch)?;
        let mut batch = sled::Batch::default();
        for (key, levels) in &carries {
            batch.insert(key.as_slice(), encode(levels));
        }
        i.metric_carry.apply_batch(batch)?;
        i.meta.insert(METRICS_VERSION_KEY, METRICS_VERSION)?;
        Ok(n)
    }

    /// Rebuilds the metrics of a database written by a build that did not keep them (or kept an older
    /// layout); returns how many buckets it wrote, `None` when they were current.
    pub(crate) fn upgrade_metrics(&self) -> Result<Option<usize>> {
        if self.inner.meta.get(METRICS_VERSION_KEY)?.as_deref() == Some(METRICS_VERSION) {
            return Ok(None);
        }
        self.rebuild_metrics().map(Some)
    }
}

/// What the metric trees hold, by key: the buckets and the carried levels.
pub(crate) type MeasuredTrees = (
    BTreeMap<Vec<u8>, MetricBucket>,
    BTreeMap<Vec<u8>, OccupancyCarry>,
);

/// The `meta` entry naming the layout of the metric trees.
const METRICS_VERSION_KEY: &[u8] = b"metrics_version";
/// The current layout.
const METRICS_VERSION: &[u8] = b"1";

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: TrackEventKind, track: u64, at_ms: i64, place: Option<&str>) -> TrackEvent {
        TrackEvent {
            kind,
            track_id: track,
            frame_index: 0,
            at_ms,
            place: place.map(str::to_owned),
            dwell_ms: None,
            product_ids: Vec::new(),
            score: 0.9,
            evidence_frames: Vec::new(),
        }
    }

    #[test]
    fn the_sketch_reads_quantiles_within_its_relative_error() {
        let mut values: Vec<i64> = (0..2000).map(|i| 400 + (i * i * 37) % 900_000).collect();
        let mut sketch = DwellSketch::default();
        let (mut a, mut b) = (DwellSketch::default(), DwellSketch::default());
        for (i, v) in values.iter().enumerate() {
            sketch.add(*v);
            if i % 2 == 0 {
                a.add(*v)
            } else {
                b.add(*v)
            }
        }
        a.merge(&b);
        assert_eq!(
            a, sketch,
            "merging two halves gives the sketch of the whole"
        );
        values.sort_unstable();
        for q in [0.0, 0.1, 0.5, 0.9, 0.99, 1.0] {
            let rank = ((q * values.len() as f64).ceil() as usize).max(1);
            let exact = values[rank - 1] as f64;
            let read = sketch.quantile(q).unwrap() as f64;
            assert!(
                (read - exact).abs() <= exact * DwellSketch::RELATIVE_ERROR + 1.0,
                "q {q}: read {read}, exact {exact}"
            );
        }
        assert_eq!(DwellSketch::default().quantile(0.5), None);
    }

    #[test]
    fn events_count_in_the_bucket_of_their_own_time() {
        let mut dwell = event(TrackEventKind::ZoneDwell, 1, 299_999, Some("shelf"));
        dwell.product_ids = vec!["shoe".into(), "sock".into()];
        let mut exit = event(TrackEventKind::ZoneExit, 1, 300_000, Some("shelf"));
        exit.dwell_ms = Some(4_000);
        let events = vec![
            event(TrackEventKind::TrackStarted, 1, 1_000, None),
            event(TrackEventKind::LineIn, 1, 2_000, Some("door")),
            event(TrackEventKind::ZoneEnter, 1, 296_000, Some("shelf")),
            dwell,
            exit,
            event(TrackEventKind::LineOut, 1, 3_700_000, Some("door")),
        ];
        let mut carry = OccupancyCarry::default();
        let d = record_deltas(&events, &[], &mut carry);
        let first = &d[&(BucketWidth::FiveMinutes, 0)];
        assert_eq!(first.people, 1);
        assert_eq!(first.lines["door"].people_in, 1);
        assert_eq!(first.zones["shelf"].visits, 1);
        assert_eq!(first.zones["shelf"].dwelt, 1);
        assert_eq!(first.products["shoe"], 1);
        let second = &d[&(BucketWidth::FiveMinutes, 300_000)];
        assert_eq!(second.zones["shelf"].exits, 1);
        assert_eq!(second.zones["shelf"].dwell_total_ms, 4_000);
        // The zone held one person from 296 s to 300 s.
        assert_eq!(first.zones["shelf"].people_ms, 4_000);
        let hour = &d[&(BucketWidth::Hour, 0)];
        assert_eq!(hour.zones["shelf"].exits, 1);
        assert_eq!(hour.lines["door"].people_in, 1);
        assert_eq!(
            d[&(BucketWidth::Hour, 3_600_000)].lines["door"].people_out,
            1
        );
        assert!(carry.zones.is_empty());
    }

    #[test]
    fn people_in_view_carry_across_records_and_buckets() {
        let sample = |at_ms, people| OccupancySample {
            frame_index: 0,
            at_ms,
            people,
        };
        let mut carry = OccupancyCarry::default();
        // Two people from 100 s; the record ends there.
        let d1 = record_deltas(&[], &[sample(100_000, 2)], &mut carry);
        assert_eq!(d1[&(BucketWidth::FiveMinutes, 0)].peak_people, 2);
        assert_eq!(d1[&(BucketWidth::FiveMinutes, 0)].people_ms, 0);
        // The next record: one leaves at 700 s (two buckets later), the other at 760 s.
        let d2 = record_deltas(&[], &[sample(700_000, 1), sample(760_000, 0)], &mut carry);
        let b = |start| &d2[&(BucketWidth::FiveMinutes, start)];
        assert_eq!(b(0).people_ms, 2 * 200_000);
        assert_eq!(b(300_000).people_ms, 2 * 300_000);
        assert_eq!(
            b(300_000).peak_people,
            2,
            "a bucket without a change holds the level"
        );
        assert_eq!(b(600_000).people_ms, 2 * 100_000 + 60_000);
        assert_eq!(d2[&(BucketWidth::Hour, 0)].people_ms, 2 * 600_000 + 60_000);
        assert_eq!(carry.people, 0);
        // A silence longer than the carry limit is not held.
        let mut carry = OccupancyCarry {
            at_ms: 0,
            people: 3,
            zones: BTreeMap::new(),
        };
        let d3 = record_deltas(&[], &[sample(CARRY_LIMIT_MS + 1, 0)], &mut carry);
        assert!(d3.values().all(|b| b.people_ms == 0));
    }

    fn cctv(
        n: i64,
        camera: &str,
        events: &[TrackEvent],
        occupancy: &[OccupancySample],
    ) -> Interaction {
        Interaction {
            id: format!("cctv-{camera}-{n}"),
            organization_id: "org".into(),
            source_type: SourceType::Cctv,
            session_id: Some("s".into()),
            data: serde_json::json!({
                "camera_id": camera, "events": events, "occupancy": occupancy,
            }),
            summary: "measured".into(),
            confidence: 0.9,
            tags: vec![],
            product_ids: vec![],
            timestamp_ms: n * 1_000,
            created_at_ms: n * 1_000,
        }
    }

    #[test]
    fn records_stored_in_sled_add_to_their_buckets_once_and_verify_repairs_them() {
        let store = Store::temporary().unwrap();
        let sample = |at_ms, people| OccupancySample {
            frame_index: 0,
            at_ms,
            people,
        };
        let enter = event(TrackEventKind::LineIn, 1, 10_000, Some("door"));
        let out = event(TrackEventKind::LineOut, 2, 400_000, Some("door"));
        let first = cctv(1, "cam", &[enter], &[sample(10_000, 1)]);
        assert!(store.insert_interaction(&first).unwrap());
        assert!(!store.insert_interaction(&first).unwrap(), "stored once");
        store
            .insert_interactions(&[
                cctv(2, "cam", &[out], &[sample(400_000, 0)]),
                cctv(
                    3,
                    "other",
                    &[event(TrackEventKind::LineIn, 7, 20_000, Some("door"))],
                    &[],
                ),
            ])
            .unwrap();
        let hour = store
            .metric_buckets("org", Some("cam"), BucketWidth::Hour, 0, 3_600_000)
            .unwrap();
        assert_eq!(hour.len(), 1);
        let door = &hour[0].bucket.lines["door"];
        assert_eq!((door.people_in, door.people_out), (1, 1), "counted once");
        assert_eq!(hour[0].bucket.people_ms, 390_000);
        let five = store
            .metric_buckets("org", None, BucketWidth::FiveMinutes, 0, 3_600_000)
            .unwrap();
        let cameras: Vec<(&str, i64)> = five
            .iter()
            .map(|b| (b.camera_id.as_str(), b.start_ms))
            .collect();
        assert_eq!(cameras, [("cam", 0), ("cam", 300_000), ("other", 0)]);
        assert!(store.verify().unwrap().is_sound());

        // A bucket that no longer matches its records is found, and measured again.
        let (key, _) = store.inner.metric_buckets.first().unwrap().unwrap();
        store
            .inner
            .metric_buckets
            .insert(&key, encode(&MetricBucket::default()))
            .unwrap();
        let problems = store.verify().unwrap().problems.join("\n");
        assert!(problems.contains("crow verify --repair"), "{problems}");
        assert_eq!(
            store.rebuild_metrics().unwrap(),
            5,
            "2 + 1 five-minute, 1 + 1 hourly"
        );
        assert!(store.verify().unwrap().is_sound());
        let again = store
            .metric_buckets("org", Some("cam"), BucketWidth::Hour, 0, 3_600_000)
            .unwrap();
        assert_eq!(again, hour);
    }
}
