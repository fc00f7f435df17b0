//! Footage with exact truth, for measuring crow's counts: real people cut out of a real video (each a
//! region of one frame that differs from the scene's per-pixel median background) walk scripted paths
//! over that background. Walkers cross the plaza, visitors stop at a display, groups walk side by side
//! and hide each other, two people cross in the middle, one person stands at the display for a minute.
//! Every frame knows each person's exact box, how much of them is visible, and where their feet are;
//! from the paths come the exact door crossings, zone visits, dwell times and occupancy.
//!
//! The scene's geometry is fixed ([`DOOR`], [`DISPLAY`]), people's size follows the floor's depth
//! (smaller further up the frame) at a chosen [`PersonScale`], and a seed makes it repeatable.

use std::ops::Range;
use std::path::Path;

use opencv::core::{self, Mat, Point as CvPoint, Rect, Size};
use opencv::imgproc;
use opencv::prelude::*;

use crate::gate_footage::median;
use crate::tracker::BBox;
use crate::zones::{crossing, polygon_contains, Crossing, Point};
use crate::{cv, InferenceError, MediaReader};

/// The door: a line top to bottom through the middle of the frame. Walking left crosses it "in".
pub const DOOR: (Point, Point) = ((0.5, 0.0), (0.5, 1.0));

/// The display: a zone right of the middle, on the floor.
pub const DISPLAY: [Point; 4] = [(0.62, 0.55), (0.86, 0.55), (0.86, 0.85), (0.62, 0.85)];

/// How tall people appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonScale {
    /// 130-280 px tall in a 576 px frame: a camera close to the floor.
    Large,
    /// 70-130 px, as in the source video: a wide store camera.
    Vtest,
    /// 50-90 px: a ceiling camera over a large floor.
    Small,
}

impl PersonScale {
    /// Person height as a fraction of the frame height with the feet at the top of the floor (y =
    /// 0.3) and at its bottom (y = 1.0).
    fn heights(self) -> (f32, f32) {
        match self {
            PersonScale::Large => (130.0 / 576.0, 280.0 / 576.0),
            PersonScale::Vtest => (70.0 / 576.0, 130.0 / 576.0),
            PersonScale::Small => (50.0 / 576.0, 90.0 / 576.0),
        }
    }

    /// Height (fraction of the frame height) of a person whose feet are at `y`.
    fn height_at(self, y: f32) -> f32 {
        let (top, bottom) = self.heights();
        top + (bottom - top) * ((y - 0.3) / 0.7).clamp(0.0, 1.2)
    }
}

/// What to script.
#[derive(Debug, Clone)]
pub struct TruthSpec {
    /// Length of the footage, seconds.
    pub seconds: u32,
    /// Frames per second rendered.
    pub fps: f64,
    /// People in view at once, at most.
    pub max_in_view: usize,
    /// How tall people appear.
    pub scale: PersonScale,
    /// Busy stretches `(busy, idle)` seconds alternating, starting busy; `None`: busy throughout.
    pub bursts: Option<(u32, u32)>,
    /// Makes the script and the sensor noise repeatable.
    pub seed: u64,
}

/// What a scripted person does (for the summary of a script).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// Crosses the frame.
    Walk,
    /// Walks to the display, stands there, leaves.
    Visit,
    /// Walks beside others.
    Group,
    /// Crosses another person in the middle.
    Crossing,
    /// Stands at the display for a minute.
    Stand,
}

/// One scripted person: a sprite along a path of (seconds, x, y) feet positions.
#[derive(Debug, Clone)]
struct Person {
    sprite: usize,
    act: Act,
    path: Vec<(f64, f32, f32)>,
}

impl Person {
    fn span(&self) -> Range<f64> {
        self.path[0].0..self.path[self.path.len() - 1].0
    }

    /// Feet at `t` seconds, if the person is on the way then.
    fn feet(&self, t: f64) -> Option<Point> {
        if !self.span().contains(&t) {
            return None;
        }
        let i = self.path.partition_point(|p| p.0 <= t).max(1);
        let (t0, x0, y0) = self.path[i - 1];
        let (t1, x1, y1) = self.path[i.min(self.path.len() - 1)];
        let f = if t1 > t0 {
            ((t - t0) / (t1 - t0)) as f32
        } else {
            0.0
        };
        Some((x0 + (x1 - x0) * f, y0 + (y1 - y0) * f))
    }
}

/// One person in one frame, as the footage shows them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PersonTruth {
    /// The scripted person (stable across frames).
    pub id: u32,
    /// The box of the person's visible pixels' extent within the frame, normalised.
    pub bbox: BBox,
    /// Height in pixels of the whole person.
    pub height_px: f32,
    /// Fraction of the person's pixels that the frame shows (inside the frame, not behind others).
    pub visible: f32,
    /// Where the feet touch the floor, normalised (may lie outside the frame at its edges).
    pub feet: Point,
}

/// One visit of a person to the display: from the first to the last frame with the feet inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TruthVisit {
    /// The person.
    pub person: u32,
    /// First frame with the feet inside.
    pub first_frame: u64,
    /// Last frame with the feet inside.
    pub last_frame: u64,
}

/// The counts the footage holds, sampled at its frames (as a camera at that rate would see them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TruthCounts {
    /// Crossings of [`DOOR`] walking left.
    pub door_in: u32,
    /// Crossings of [`DOOR`] walking right.
    pub door_out: u32,
    /// Each crossing of [`DOOR`]: the person, the frame after it, the way.
    pub crossings: Vec<(u32, u64, Crossing)>,
    /// Visits to [`DISPLAY`].
    pub visits: Vec<TruthVisit>,
    /// People with their feet in the frame, per frame.
    pub occupancy: Vec<u32>,
}

/// A person cut out of the source video: the pixels and which of them belong to the person.
struct Sprite {
    image: Mat,
    /// 255 where the person is, same size as `image`.
    mask: Mat,
}

/// Scripted footage over a real background; frames are rendered on demand.
pub struct TruthFootage {
    spec: TruthSpec,
    background: Mat,
    sprites: Vec<Sprite>,
    people: Vec<Person>,
}

/// A small, repeatable random source (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi`.
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Builds the footage: cuts the people out of `video` (sampled at 1 frame/s) and scripts `spec`.
pub fn truth_footage(video: &Path, spec: TruthSpec) -> Result<TruthFootage, InferenceError> {
    let source: Vec<Mat> = MediaReader::open(video, Some(1.0))?
        .map(|f| f.map(|f| f.image))
        .collect::<Result<_, _>>()?;
    let media_error = |reason: String| InferenceError::Media {
        path: video.display().to_string(),
        reason,
    };
    if source.len() < 10 {
        return Err(media_error(format!(
            "{} s of footage is too short to tell people from the background",
            source.len()
        )));
    }
    let sample: Vec<&Mat> = source.iter().step_by(3).collect();
    let background = median(&sample)?;
    let mut sprites = Vec::new();
    for frame in &source {
        sprites.extend(cut_people(frame, &background)?);
    }
    if sprites.len() < 4 {
        return Err(media_error(format!(
            "only {} people stand apart from the background; a video of people walking is needed",
            sprites.len()
        )));
    }
    let aspect = background.cols() as f32 / background.rows().max(1) as f32;
    let people = script(&spec, sprites.len(), aspect);
    Ok(TruthFootage {
        spec,
        background,
        sprites,
        people,
    })
}

/// The people of `frame`: regions that differ from `background`, person-shaped, not at the border.
fn cut_people(frame: &Mat, background: &Mat) -> Result<Vec<Sprite>, InferenceError> {
    let (w, h) = (frame.cols(), frame.rows());
    let (a, b) = (
        frame.data_bytes().map_err(cv("reading frame"))?,
        background.data_bytes().map_err(cv("reading background"))?,
    );
    // Foreground: any channel 30 levels away from the background.
    let mut fg = Mat::new_rows_cols_with_default(h, w, core::CV_8UC1, 0.into())
        .map_err(cv("allocating mask"))?;
    {
        let m = fg.data_bytes_mut().map_err(cv("writing mask"))?;
        for (i, v) in m.iter_mut().enumerate() {
            let d = (0..3)
                .map(|c| a[3 * i + c].abs_diff(b[3 * i + c]))
                .max()
                .unwrap_or(0);
            *v = if d > 30 { 255 } else { 0 };
        }
    }
    let kernel = |n| {
        imgproc::get_structuring_element(
            imgproc::MORPH_ELLIPSE,
            Size::new(n, n),
            CvPoint::new(-1, -1),
        )
        .map_err(cv("building kernel"))
    };
    let morph = |src: &Mat, op, k: &Mat| -> Result<Mat, InferenceError> {
        let mut out = Mat::default();
        imgproc::morphology_ex(
            src,
            &mut out,
            op,
            k,
            CvPoint::new(-1, -1),
            1,
            core::BORDER_CONSTANT,
            imgproc::morphology_default_border_value().map_err(cv("border value"))?,
        )
        .map_err(cv("cleaning mask"))?;
        Ok(out)
    };
    let closed = morph(&fg, imgproc::MORPH_CLOSE, &kernel(7)?)?;
    let cleaned = morph(&closed, imgproc::MORPH_OPEN, &kernel(3)?)?;
    let (mut labels, mut stats, mut centroids) = (Mat::default(), Mat::default(), Mat::default());
    let n = imgproc::connected_components_with_stats(
        &cleaned,
        &mut labels,
        &mut stats,
        &mut centroids,
        8,
        core::CV_32S,
    )
    .map_err(cv("finding people"))?;
    let labels_data = labels.data_typed::<i32>().map_err(cv("reading labels"))?;
    let mut out = Vec::new();
    for id in 1..n {
        let stat = |k| stats.at_2d::<i32>(id, k).copied().unwrap_or(0);
        let (x, y, bw, bh, area) = (
            stat(imgproc::CC_STAT_LEFT),
            stat(imgproc::CC_STAT_TOP),
            stat(imgproc::CC_STAT_WIDTH),
            stat(imgproc::CC_STAT_HEIGHT),
            stat(imgproc::CC_STAT_AREA),
        );
        let ratio = bh as f32 / bw.max(1) as f32;
        let fill = area as f32 / (bw * bh).max(1) as f32;
        let inside = x > 2 && y > 2 && x + bw < w - 2 && y + bh < h - 2;
        if !(70..=170).contains(&bh) || !(1.8..=4.2).contains(&ratio) || fill < 0.45 || !inside {
            continue;
        }
        let rect = Rect::new(x, y, bw, bh);
        let image = Mat::roi(frame, rect)
            .and_then(|r| r.try_clone())
            .map_err(cv("cutting person"))?;
        let mut mask = Mat::new_rows_cols_with_default(bh, bw, core::CV_8UC1, 0.into())
            .map_err(cv("allocating mask"))?;
        {
            let m = mask.data_bytes_mut().map_err(cv("writing mask"))?;
            for r in 0..bh {
                for c in 0..bw {
                    if labels_data[((y + r) * w + x + c) as usize] == id {
                        m[(r * bw + c) as usize] = 255;
                    }
                }
            }
        }
        out.push(Sprite { image, mask });
    }
    Ok(out)
}

/// Metres to normalised frame units at feet height `y`: (x per metre, y per metre), for people 1.7 m tall.
fn per_metre(scale: PersonScale, y: f32, aspect: f32) -> (f32, f32) {
    let h = scale.height_at(y) / 1.7;
    (h / aspect, h)
}

/// A path under construction: feet positions at times, walked at `speed` m/s.
struct PathBuilder {
    path: Vec<(f64, f32, f32)>,
    speed: f32,
    scale: PersonScale,
    aspect: f32,
}

impl PathBuilder {
    fn start(x: f32, y: f32, speed: f32, scale: PersonScale, aspect: f32) -> PathBuilder {
        PathBuilder {
            path: vec![(0.0, x, y)],
            speed,
            scale,
            aspect,
        }
    }

    fn at(&self) -> (f64, f32, f32) {
        self.path[self.path.len() - 1]
    }

    fn walk_to(mut self, x: f32, y: f32) -> PathBuilder {
        let (t, x0, y0) = self.at();
        let (mx, my) = per_metre(self.scale, (y0 + y) / 2.0, self.aspect);
        let metres = (((x - x0) / mx).powi(2) + ((y - y0) / my).powi(2)).sqrt();
        self.path.push((t + f64::from(metres / self.speed), x, y));
        self
    }

    /// Stands for `seconds`, shifting weight a little every 2 s.
    fn stand(mut self, seconds: f32, rng: &mut Rng) -> PathBuilder {
        let (t0, x, y) = self.at();
        let (mx, my) = per_metre(self.scale, y, self.aspect);
        let mut t = 0.0;
        while t + 2.0 < seconds {
            t += 2.0;
            let sway = (rng.range(-0.05, 0.05) * mx, rng.range(-0.03, 0.03) * my);
            self.path.push((t0 + f64::from(t), x + sway.0, y + sway.1));
        }
        self.path.push((t0 + f64::from(seconds), x, y));
        self
    }

    /// The path shifted to start at `t0`.
    fn at_time(self, t0: f64) -> Vec<(f64, f32, f32)> {
        self.path
            .into_iter()
            .map(|(t, x, y)| (t + t0, x, y))
            .collect()
    }
}

/// Just outside the left or right edge.
fn edge(left: bool) -> f32 {
    if left {
        -0.06
    } else {
        1.06
    }
}

/// A point on the display's floor, away from its edges.
fn in_display(rng: &mut Rng) -> Point {
    (rng.range(0.66, 0.82), rng.range(0.6, 0.8))
}

/// The people of one act, paths starting at time 0.
fn act(kind: Act, rng: &mut Rng, scale: PersonScale, aspect: f32) -> Vec<Vec<(f64, f32, f32)>> {
    let walker = |rng: &mut Rng, speed: f32| {
        let left = rng.below(2) == 0;
        let (y0, y1) = (rng.range(0.42, 0.95), rng.range(0.42, 0.95));
        (left, y0, y1, speed)
    };
    match kind {
        Act::Walk => {
            let speed = rng.range(1.0, 1.5);
            let (left, y0, y1, speed) = walker(rng, speed);
            let p =
                PathBuilder::start(edge(left), y0, speed, scale, aspect).walk_to(edge(!left), y1);
            vec![p.at_time(0.0)]
        }
        Act::Visit | Act::Stand => {
            let left = rng.below(2) == 0;
            let speed = rng.range(0.8, 1.2);
            let (x, y) = in_display(rng);
            let seconds = if kind == Act::Stand {
                60.0
            } else {
                rng.range(4.0, 30.0)
            };
            let p = PathBuilder::start(edge(left), rng.range(0.45, 0.95), speed, scale, aspect)
                .walk_to(x, y)
                .stand(seconds, rng)
                .walk_to(edge(rng.below(2) == 0), rng.range(0.45, 0.95));
            vec![p.at_time(0.0)]
        }
        Act::Group => {
            let n = 2 + rng.below(2);
            let speed = rng.range(0.9, 1.3);
            let (left, y0, y1, speed) = walker(rng, speed);
            let (y0, y1) = (y0.clamp(0.45, 0.8), y1.clamp(0.45, 0.8));
            (0..n)
                .map(|k| {
                    // Side by side: half a metre apart in depth, a little staggered.
                    let (mx, my) = per_metre(scale, y0, aspect);
                    let dy = k as f32 * 0.5 * my;
                    let dx = k as f32 * rng.range(-0.3, 0.3) * mx;
                    PathBuilder::start(edge(left) + dx, y0 + dy, speed, scale, aspect)
                        .walk_to(edge(!left) + dx, y1 + dy)
                        .at_time(0.0)
                })
                .collect()
        }
        Act::Crossing => {
            let y = rng.range(0.45, 0.9);
            let speeds = [rng.range(1.0, 1.4), rng.range(1.0, 1.4)];
            let paths: Vec<Vec<(f64, f32, f32)>> = [true, false]
                .iter()
                .zip(speeds)
                .map(|(left, speed)| {
                    let dy = if *left { 0.0 } else { rng.range(-0.04, 0.04) };
                    PathBuilder::start(edge(*left), y + dy, speed, scale, aspect)
                        .walk_to(edge(!*left), y + dy)
                        .at_time(0.0)
                })
                .collect();
            // Both reach the middle at the same moment.
            let half = |p: &[(f64, f32, f32)]| (p[0].0 + p[1].0) / 2.0;
            let (a, b) = (half(&paths[0]), half(&paths[1]));
            let lead = (a - b).abs();
            paths
                .into_iter()
                .enumerate()
                .map(|(i, p)| {
                    let shift = if (i == 0) == (a < b) { lead } else { 0.0 };
                    p.into_iter().map(|(t, x, y)| (t + shift, x, y)).collect()
                })
                .collect()
        }
    }
}

/// Samples per second of the script's crowd count.
const STEPS: f64 = 10.0;

/// Whether the feet are in the frame.
fn in_frame(p: Point) -> bool {
    (0.0..1.0).contains(&p.0) && (0.0..1.0).contains(&p.1)
}

/// The script: acts in a fixed rotation at random gaps, never more than `max_in_view` people with their
/// feet in the frame, every act inside a busy stretch; a minute-long stand near the start when the
/// footage is long enough.
fn script(spec: &TruthSpec, sprites: usize, aspect: f32) -> Vec<Person> {
    let mut rng = Rng(spec.seed);
    let seconds = f64::from(spec.seconds);
    // People with their feet in the frame, per tenth of a second.
    let slots = (seconds * STEPS).ceil() as usize + 1;
    let mut in_view = vec![0usize; slots];
    let windows: Vec<Range<f64>> = match spec.bursts {
        None => vec![0.0..seconds],
        Some((busy, idle)) => (0..)
            .map(|k| f64::from(k * (busy + idle)))
            .take_while(|s| *s < seconds)
            .map(|s| s..(s + f64::from(busy)).min(seconds))
            .collect(),
    };
    let rotation = [
        Act::Walk,
        Act::Visit,
        Act::Group,
        Act::Crossing,
        Act::Walk,
        Act::Visit,
        Act::Walk,
        Act::Group,
    ];
    let mut people: Vec<Person> = Vec::new();
    let gap_max = 2.0 + 24.0 / spec.max_in_view.max(1) as f32;
    let mut next = 0usize;
    let mut stand_due = spec.seconds >= 100;
    for window in &windows {
        let mut cursor = window.start + 1.0;
        let mut failures = 0;
        while cursor < window.end && failures < 20 {
            let kind = if stand_due {
                Act::Stand
            } else {
                rotation[next % rotation.len()]
            };
            let paths = act(kind, &mut rng, spec.scale, aspect);
            let length = paths.iter().map(|p| p[p.len() - 1].0).fold(0.0, f64::max);
            let counts = |t: f64| {
                paths
                    .iter()
                    .filter(|p| {
                        let probe = Person {
                            sprite: 0,
                            act: kind,
                            path: (*p).clone(),
                        };
                        probe.feet(t).is_some_and(in_frame)
                    })
                    .count()
            };
            let own: Vec<usize> = (0..((length * STEPS).ceil() as usize + 1))
                .map(|k| counts(k as f64 / STEPS))
                .collect();
            let fits = |start: f64| {
                start + length < window.end
                    && own.iter().enumerate().all(|(k, n)| {
                        let slot = (start * STEPS).round() as usize + k;
                        slot < slots && in_view[slot] + n <= spec.max_in_view
                    })
            };
            let start = (0..60)
                .map(|k| cursor + f64::from(k) * 0.5)
                .find(|s| fits(*s));
            let Some(start) = start else {
                failures += 1;
                stand_due = false;
                // An act too long for what is left of the window: try the next kind.
                next += 1;
                continue;
            };
            for (k, n) in own.iter().enumerate() {
                in_view[(start * STEPS).round() as usize + k] += n;
            }
            for p in paths {
                people.push(Person {
                    sprite: rng.below(sprites),
                    act: kind,
                    path: p.into_iter().map(|(t, x, y)| (t + start, x, y)).collect(),
                });
            }
            if kind == Act::Stand {
                stand_due = false;
            } else {
                next += 1;
            }
            // On the grid of `in_view`.
            cursor = ((start + f64::from(rng.range(1.0, gap_max))) * STEPS).round() / STEPS;
        }
    }
    people
}

impl TruthFootage {
    /// What was scripted.
    pub fn spec(&self) -> &TruthSpec {
        &self.spec
    }

    /// Frames in the footage.
    pub fn frame_count(&self) -> usize {
        (f64::from(self.spec.seconds) * self.spec.fps).floor() as usize
    }

    /// Seconds into the footage of frame `i`.
    pub fn time_of(&self, i: usize) -> f64 {
        i as f64 / self.spec.fps
    }

    /// Scripted people, and how many of them do each act.
    pub fn acts(&self) -> Vec<(Act, usize)> {
        let mut out: Vec<(Act, usize)> = Vec::new();
        for p in &self.people {
            match out.iter_mut().find(|(a, _)| *a == p.act) {
                Some((_, n)) => *n += 1,
                None => out.push((p.act, 1)),
            }
        }
        out
    }

    /// Frame `i` (BGR, the background's size) and the people it shows.
    pub fn frame(&self, i: usize) -> Result<(Mat, Vec<PersonTruth>), InferenceError> {
        let t = self.time_of(i);
        let (w, h) = (self.background.cols(), self.background.rows());
        let mut image = self.background.try_clone().map_err(cv("copying frame"))?;
        // Sensor noise: +-2 levels, repeatable per frame.
        {
            let mut rng = Rng(self.spec.seed ^ (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
            let bytes = image.data_bytes_mut().map_err(cv("writing frame"))?;
            let mut bits = 0u64;
            for (k, b) in bytes.iter_mut().enumerate() {
                if k % 16 == 0 {
                    bits = rng.next();
                }
                let n = ((bits >> ((k % 16) * 4)) & 0xF) as i16;
                // 0..15 -> -2..=2, mostly 0.
                let d = match n {
                    0 => -2,
                    1..=3 => -1,
                    12..=14 => 1,
                    15 => 2,
                    _ => 0,
                };
                *b = (i16::from(*b) + d).clamp(0, 255) as u8;
            }
        }
        let mut shown: Vec<(u32, Point, f32)> = self
            .people
            .iter()
            .enumerate()
            .filter_map(|(id, p)| {
                p.feet(t)
                    .map(|f| (id as u32, f, self.spec.scale.height_at(f.1)))
            })
            .collect();
        // Far people first: nearer ones cover them.
        shown.sort_by(|a, b| a.1 .1.total_cmp(&b.1 .1));
        let mut owner = vec![u32::MAX; (w * h) as usize];
        let mut placed = Vec::new();
        for (id, feet, height) in &shown {
            let sprite = &self.sprites[self.people[*id as usize].sprite];
            let ph = (height * h as f32).round().max(4.0) as i32;
            let pw = ((sprite.image.cols() as f32 * ph as f32 / sprite.image.rows() as f32).round()
                as i32)
                .max(2);
            let mut img = Mat::default();
            let mut mask = Mat::default();
            imgproc::resize(
                &sprite.image,
                &mut img,
                Size::new(pw, ph),
                0.0,
                0.0,
                imgproc::INTER_AREA,
            )
            .map_err(cv("scaling person"))?;
            imgproc::resize(
                &sprite.mask,
                &mut mask,
                Size::new(pw, ph),
                0.0,
                0.0,
                imgproc::INTER_NEAREST,
            )
            .map_err(cv("scaling mask"))?;
            let x0 = (feet.0 * w as f32 - pw as f32 / 2.0).round() as i32;
            let y0 = (feet.1 * h as f32).round() as i32 - ph;
            let (src, m) = (
                img.data_bytes().map_err(cv("reading person"))?,
                mask.data_bytes().map_err(cv("reading mask"))?,
            );
            let dst = image.data_bytes_mut().map_err(cv("writing frame"))?;
            let mut total = 0u32;
            for r in 0..ph {
                for c in 0..pw {
                    let k = (r * pw + c) as usize;
                    if m[k] < 128 {
                        continue;
                    }
                    total += 1;
                    let (fx, fy) = (x0 + c, y0 + r);
                    if fx < 0 || fy < 0 || fx >= w || fy >= h {
                        continue;
                    }
                    let o = (fy * w + fx) as usize;
                    dst[3 * o..3 * o + 3].copy_from_slice(&src[3 * k..3 * k + 3]);
                    owner[o] = *id;
                }
            }
            placed.push((*id, *feet, ph, total));
        }
        // Each person's visible pixels and their extent.
        let mut extent: Vec<(u32, i32, i32, i32, i32)> = placed
            .iter()
            .map(|_| (0, i32::MAX, i32::MAX, -1, -1))
            .collect();
        for (o, owner) in owner.iter().enumerate() {
            if *owner == u32::MAX {
                continue;
            }
            let Some(k) = placed.iter().position(|p| p.0 == *owner) else {
                continue;
            };
            let (x, y) = (o as i32 % w, o as i32 / w);
            let e = &mut extent[k];
            e.0 += 1;
            e.1 = e.1.min(x);
            e.2 = e.2.min(y);
            e.3 = e.3.max(x);
            e.4 = e.4.max(y);
        }
        let mut people = Vec::new();
        for ((id, feet, ph, total), (n, x0, y0, x1, y1)) in placed.iter().zip(extent) {
            if n == 0 {
                continue;
            }
            people.push(PersonTruth {
                id: *id,
                bbox: BBox {
                    x: x0 as f32 / w as f32,
                    y: y0 as f32 / h as f32,
                    w: (x1 - x0 + 1) as f32 / w as f32,
                    h: (y1 - y0 + 1) as f32 / h as f32,
                },
                height_px: *ph as f32,
                visible: n as f32 / (*total).max(1) as f32,
                feet: *feet,
            });
        }
        people.sort_by_key(|p| p.id);
        Ok((image, people))
    }

    /// The door crossings, display visits and occupancy the frames hold.
    pub fn counts(&self) -> TruthCounts {
        let frames = self.frame_count();
        let mut counts = TruthCounts {
            occupancy: vec![0; frames],
            ..TruthCounts::default()
        };
        for (id, p) in self.people.iter().enumerate() {
            let mut previous: Option<Point> = None;
            let mut visit: Option<(u64, u64)> = None;
            let close = |visit: &mut Option<(u64, u64)>, counts: &mut TruthCounts| {
                if let Some((first, last)) = visit.take() {
                    counts.visits.push(TruthVisit {
                        person: id as u32,
                        first_frame: first,
                        last_frame: last,
                    });
                }
            };
            for i in 0..frames {
                let feet = p.feet(self.time_of(i)).filter(|f| in_frame(*f));
                let Some(feet) = feet else {
                    previous = None;
                    close(&mut visit, &mut counts);
                    continue;
                };
                counts.occupancy[i] += 1;
                if let Some(from) = previous {
                    match crossing(DOOR.0, DOOR.1, from, feet) {
                        Some(Crossing::In) => counts.door_in += 1,
                        Some(Crossing::Out) => counts.door_out += 1,
                        None => {}
                    }
                    if let Some(way) = crossing(DOOR.0, DOOR.1, from, feet) {
                        counts.crossings.push((id as u32, i as u64, way));
                    }
                }
                previous = Some(feet);
                if polygon_contains(&DISPLAY, feet) {
                    let v = visit.get_or_insert((i as u64, i as u64));
                    v.1 = i as u64;
                } else {
                    close(&mut visit, &mut counts);
                }
            }
            close(&mut visit, &mut counts);
        }
        counts.visits.sort_by_key(|v| (v.first_frame, v.person));
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(max_in_view: usize) -> TruthSpec {
        TruthSpec {
            seconds: 300,
            fps: 1.0,
            max_in_view,
            scale: PersonScale::Vtest,
            bursts: None,
            seed: 7,
        }
    }

    #[test]
    fn scripts_respect_the_crowd_limit_and_hold_every_act() {
        for max in [3, 8] {
            let s = spec(max);
            let people = script(&s, 10, 4.0 / 3.0);
            let mut most = 0;
            for k in 0..3000 {
                let n = people
                    .iter()
                    .filter(|p| p.feet(f64::from(k) / 10.0).is_some_and(in_frame))
                    .count();
                most = most.max(n);
            }
            assert!(most <= max, "{most} in view with a limit of {max}");
            for act in [Act::Walk, Act::Visit, Act::Group, Act::Crossing, Act::Stand] {
                assert!(people.iter().any(|p| p.act == act), "{act:?} missing");
            }
            let same = script(&s, 10, 4.0 / 3.0);
            assert_eq!(same.len(), people.len(), "a seed repeats its script");
        }
    }

    #[test]
    fn bursts_leave_the_idle_stretches_empty() {
        let mut s = spec(4);
        s.bursts = Some((60, 120));
        let people = script(&s, 10, 4.0 / 3.0);
        assert!(!people.is_empty());
        for p in &people {
            let span = p.span();
            let window = (span.start / 180.0).floor() * 180.0;
            assert!(
                span.end <= window + 60.0,
                "{span:?} outside its busy minute"
            );
        }
    }

    #[test]
    fn a_crossing_pair_meets_in_the_middle() {
        let mut rng = Rng(3);
        let paths = act(Act::Crossing, &mut rng, PersonScale::Vtest, 4.0 / 3.0);
        let people: Vec<Person> = paths
            .into_iter()
            .map(|path| Person {
                sprite: 0,
                act: Act::Crossing,
                path,
            })
            .collect();
        let crossing_time = |p: &Person| {
            (0..2000)
                .map(|k| f64::from(k) / 100.0)
                .find(|t| p.feet(*t).is_some_and(|f| (f.0 - 0.5).abs() < 0.01))
                .unwrap()
        };
        let (a, b) = (crossing_time(&people[0]), crossing_time(&people[1]));
        assert!((a - b).abs() < 0.3, "they pass the middle at {a} and {b}");
    }
}
