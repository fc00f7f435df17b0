//! Frame describers: what a frame shows, as text plus structured measurements.
//!
//! A [`FrameDescriber`] is owned by one inference slot and called from a blocking worker thread, never from
//! an async task. Implementations: [`OpenCvSceneDescriber`] (embedded default, no model); the llama.cpp
//! vision describer plugs in behind the same trait.

use opencv::core::{self, Mat, Point, Rect, Size, Vec2f, Vector};
use opencv::prelude::*;
use opencv::{imgproc, video};
use serde_json::json;

use crate::detector::{DetectionFilter, PersonDetector};
use crate::frame::grey_thumbnail;
use crate::tracker::Detection;
use crate::{cv, InferenceError};

/// The default instruction given with every frame.
pub const DEFAULT_VISION_PROMPT: &str = "You see one frame from a retail store's security camera. Describe customer movements, behaviours and interactions with products. Be concise and factual.";

/// What a describer gets for one frame.
#[derive(Debug, Clone, Copy)]
pub struct DescribeInput<'a> {
    /// The decoded frame (BGR).
    pub image: &'a Mat,
    /// The previous accepted frame of the same session, if known (for motion and movement direction).
    pub previous: Option<&'a Mat>,
    /// Index within the session's stream.
    pub frame_index: u64,
    /// Capture time, ms since the Unix epoch.
    pub captured_at_ms: i64,
    /// The people the session's detector found in this frame, if it ran; a describer that detects
    /// people itself uses these instead, so that descriptions and tracks agree.
    pub people: Option<&'a [Detection]>,
}

/// A describer's output for one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Description {
    /// One-line, factual, human-readable description.
    pub text: String,
    /// How much the describer trusts it, 0.0..=1.0.
    pub confidence: f32,
    /// Short lowercase labels (e.g. "people", "motion", "moving-right").
    pub tags: Vec<String>,
    /// Describer-specific measurements (a JSON object).
    pub details: serde_json::Value,
}

/// Turns frames into descriptions. One instance per inference slot; `describe` blocks, so it runs on a
/// worker thread.
pub trait FrameDescriber: Send {
    /// Stable name, stored with every description (e.g. "opencv-scene").
    fn name(&self) -> &str;
    /// Describes one frame.
    fn describe(&mut self, input: DescribeInput<'_>) -> Result<Description, InferenceError>;
}

/// Width at which motion regions are measured.
const MOTION_WIDTH: i32 = 320;
/// Width at which optical flow is measured.
const FLOW_WIDTH: i32 = 160;
/// A motion region must cover at least this fraction of the frame.
const MIN_REGION_FRACTION: f64 = 0.001;
/// Flow vectors shorter than this (px at FLOW_WIDTH) are noise.
const MIN_FLOW: f32 = 0.4;

/// The embedded, model-free describer: OpenCV's HOG people detector, frame differencing for motion
/// regions, and Farneback optical flow for the dominant movement direction. It reports only what it
/// measured; it does not guess at behaviour or products.
pub struct OpenCvSceneDescriber {
    hog: PersonDetector,
}

impl OpenCvSceneDescriber {
    /// Loads OpenCV's built-in people detector.
    pub fn new() -> Result<OpenCvSceneDescriber, InferenceError> {
        Ok(OpenCvSceneDescriber {
            hog: PersonDetector::hog()?,
        })
    }

    /// The people in the frame: the session's detections when given, else HOG's (every score).
    fn people(&mut self, input: &DescribeInput<'_>) -> Result<Vec<Detection>, InferenceError> {
        match input.people {
            Some(people) => Ok(people.to_vec()),
            None => self
                .hog
                .detect(input.image, &DetectionFilter::with_min_score(0.0)),
        }
    }

    fn motion_regions(
        &self,
        image: &Mat,
        previous: &Mat,
    ) -> Result<(f64, Vec<Rect>, Size), InferenceError> {
        let height = (f64::from(image.rows()) * f64::from(MOTION_WIDTH) / f64::from(image.cols()))
            .round()
            .max(1.0) as i32;
        let blur = |m: &Mat| -> Result<Mat, InferenceError> {
            let grey = grey_thumbnail(m, MOTION_WIDTH, height)?;
            let mut out = Mat::default();
            imgproc::gaussian_blur(
                &grey,
                &mut out,
                Size::new(5, 5),
                0.0,
                0.0,
                core::BORDER_DEFAULT,
            )
            .map_err(cv("blurring"))?;
            Ok(out)
        };
        let (a, b) = (blur(image)?, blur(previous)?);
        let mut diff = Mat::default();
        core::absdiff(&a, &b, &mut diff).map_err(cv("differencing frames"))?;
        let mut mask = Mat::default();
        imgproc::threshold(&diff, &mut mask, 25.0, 255.0, imgproc::THRESH_BINARY)
            .map_err(cv("thresholding motion"))?;
        let mut dilated = Mat::default();
        let kernel = imgproc::get_structuring_element(
            imgproc::MORPH_ELLIPSE,
            Size::new(5, 5),
            Point::new(-1, -1),
        )
        .map_err(cv("building kernel"))?;
        imgproc::dilate(
            &mask,
            &mut dilated,
            &kernel,
            Point::new(-1, -1),
            2,
            core::BORDER_CONSTANT,
            imgproc::morphology_default_border_value().map_err(cv("border value"))?,
        )
        .map_err(cv("dilating motion"))?;
        let moving = core::count_non_zero(&mask).map_err(cv("counting motion"))?;
        let area = f64::from(MOTION_WIDTH * height);
        let mut contours = Vector::<Vector<Point>>::new();
        imgproc::find_contours(
            &dilated,
            &mut contours,
            imgproc::RETR_EXTERNAL,
            imgproc::CHAIN_APPROX_SIMPLE,
            Point::new(0, 0),
        )
        .map_err(cv("finding motion regions"))?;
        let mut regions = Vec::new();
        for contour in contours.iter() {
            let r = imgproc::bounding_rect(&contour).map_err(cv("bounding motion region"))?;
            if f64::from(r.area()) >= MIN_REGION_FRACTION * area {
                regions.push(r);
            }
        }
        regions.sort_by_key(|r| std::cmp::Reverse(r.area()));
        Ok((
            f64::from(moving) / area,
            regions,
            Size::new(MOTION_WIDTH, height),
        ))
    }

    /// Mean optical flow over moving pixels, in pixels per frame at the frame's own width.
    fn dominant_flow(
        &self,
        image: &Mat,
        previous: &Mat,
    ) -> Result<Option<(f32, f32)>, InferenceError> {
        let height = (f64::from(image.rows()) * f64::from(FLOW_WIDTH) / f64::from(image.cols()))
            .round()
            .max(1.0) as i32;
        let (a, b) = (
            grey_thumbnail(previous, FLOW_WIDTH, height)?,
            grey_thumbnail(image, FLOW_WIDTH, height)?,
        );
        let mut flow = Mat::default();
        video::calc_optical_flow_farneback(&a, &b, &mut flow, 0.5, 3, 15, 3, 5, 1.2, 0)
            .map_err(cv("computing optical flow"))?;
        let vectors = flow
            .data_typed::<Vec2f>()
            .map_err(cv("reading optical flow"))?;
        let (mut sx, mut sy, mut n) = (0f32, 0f32, 0u32);
        for v in vectors {
            if v[0].hypot(v[1]) > MIN_FLOW {
                sx += v[0];
                sy += v[1];
                n += 1;
            }
        }
        // Ignore flow on fewer than 0.2 % of pixels: that is noise, not movement.
        if n == 0 || (n as usize) * 500 < vectors.len() {
            return Ok(None);
        }
        let scale = image.cols() as f32 / FLOW_WIDTH as f32;
        Ok(Some((sx / n as f32 * scale, sy / n as f32 * scale)))
    }
}

/// Names the cell of a 3x3 grid that a point (relative 0..1 coordinates) falls in.
fn grid_cell(x: f64, y: f64) -> &'static str {
    const CELLS: [[&str; 3]; 3] = [
        ["top-left", "top-centre", "top-right"],
        ["middle-left", "centre", "middle-right"],
        ["bottom-left", "bottom-centre", "bottom-right"],
    ];
    let idx = |v: f64| ((v * 3.0).floor() as usize).min(2);
    CELLS[idx(y)][idx(x)]
}

fn direction(dx: f32, dy: f32) -> &'static str {
    if dx.abs() >= dy.abs() {
        if dx > 0.0 {
            "right"
        } else {
            "left"
        }
    } else if dy > 0.0 {
        // Image y grows downwards: towards the bottom of the frame, usually towards the camera.
        "down"
    } else {
        "up"
    }
}

fn relative(r: Rect, size: Size) -> serde_json::Value {
    let (w, h) = (f64::from(size.width), f64::from(size.height));
    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    json!({
        "x": round(f64::from(r.x) / w),
        "y": round(f64::from(r.y) / h),
        "w": round(f64::from(r.width) / w),
        "h": round(f64::from(r.height) / h),
        "where": grid_cell((f64::from(r.x) + f64::from(r.width) / 2.0) / w, (f64::from(r.y) + f64::from(r.height) / 2.0) / h),
    })
}

/// The name the embedded OpenCV describer stores with its descriptions (measurements, not words a
/// model chose).
pub const OPENCV_DESCRIBER: &str = "opencv-scene";

impl FrameDescriber for OpenCvSceneDescriber {
    fn name(&self) -> &str {
        OPENCV_DESCRIBER
    }

    fn describe(&mut self, input: DescribeInput<'_>) -> Result<Description, InferenceError> {
        let image = input.image;
        let size = Size::new(image.cols(), image.rows());
        let people = self.people(&input)?;
        let mut tags = Vec::new();
        let mut parts = Vec::new();

        match people.len() {
            0 => parts.push("no people detected".to_owned()),
            n => {
                tags.push("people".to_owned());
                if n >= 3 {
                    tags.push("group".to_owned());
                }
                let mut cells: Vec<&str> = people
                    .iter()
                    .map(|d| {
                        let b = d.bbox;
                        grid_cell(f64::from(b.x + b.w / 2.0), f64::from(b.y + b.h / 2.0))
                    })
                    .collect();
                cells.sort_unstable();
                cells.dedup();
                parts.push(format!(
                    "{n} {} detected ({})",
                    if n == 1 { "person" } else { "people" },
                    cells.join(", ")
                ));
            }
        }

        let mut motion_json = serde_json::Value::Null;
        let mut flow_json = serde_json::Value::Null;
        if let Some(previous) = input
            .previous
            .filter(|p| p.cols() == size.width && p.rows() == size.height)
        {
            let (fraction, regions, motion_size) = self.motion_regions(image, previous)?;
            if regions.is_empty() {
                tags.push("idle".to_owned());
                parts.push("no motion since the previous described frame".to_owned());
            } else {
                tags.push("motion".to_owned());
                let largest = relative(regions[0], motion_size);
                parts.push(format!(
                    "motion in {} region{} covering {:.1}% of the frame, largest at {}",
                    regions.len(),
                    if regions.len() == 1 { "" } else { "s" },
                    fraction * 100.0,
                    largest["where"].as_str().unwrap_or("?"),
                ));
            }
            motion_json = json!({
                "fraction": (fraction * 10000.0).round() / 10000.0,
                "regions": regions.iter().take(8).map(|r| relative(*r, motion_size)).collect::<Vec<_>>(),
            });
            if !regions.is_empty() {
                if let Some((dx, dy)) = self.dominant_flow(image, previous)? {
                    let dir = direction(dx, dy);
                    tags.push(format!("moving-{dir}"));
                    parts.push(format!(
                        "dominant movement {dir} at {:.1} px/frame",
                        dx.hypot(dy)
                    ));
                    flow_json = json!({ "dx": dx, "dy": dy, "direction": dir });
                }
            }
        } else {
            parts.push("motion not measured (no previous frame)".to_owned());
        }

        // The detector's mean score; with no detection there is no evidence either way.
        let confidence = if people.is_empty() {
            0.5
        } else {
            people.iter().map(|d| f64::from(d.score)).sum::<f64>() / people.len() as f64
        };
        let details = json!({
            "image": { "width": size.width, "height": size.height },
            "people": people.iter().map(|d| {
                let b = d.bbox;
                let round = |v: f32| (f64::from(v) * 1000.0).round() / 1000.0;
                json!({
                    "x": round(b.x), "y": round(b.y), "w": round(b.w), "h": round(b.h),
                    "where": grid_cell(f64::from(b.x + b.w / 2.0), f64::from(b.y + b.h / 2.0)),
                    "score": round(d.score),
                })
            }).collect::<Vec<_>>(),
            "motion": motion_json,
            "flow": flow_json,
        });
        let mut text = parts.join("; ");
        if let Some(first) = text.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        text.push('.');
        Ok(Description {
            text,
            confidence: confidence as f32,
            tags,
            details,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_cells_cover_the_frame() {
        assert_eq!(grid_cell(0.0, 0.0), "top-left");
        assert_eq!(grid_cell(0.5, 0.5), "centre");
        assert_eq!(grid_cell(1.0, 1.0), "bottom-right");
        assert_eq!(direction(3.0, 1.0), "right");
        assert_eq!(direction(0.1, -2.0), "up");
    }

    #[test]
    fn a_moving_square_is_seen_as_motion_to_the_right() {
        let frame = |x: i32| {
            let mut m =
                Mat::new_rows_cols_with_default(240, 320, core::CV_8UC3, 40.into()).unwrap();
            imgproc::rectangle(
                &mut m,
                Rect::new(x, 100, 40, 40),
                (220, 220, 220).into(),
                -1,
                imgproc::LINE_8,
                0,
            )
            .unwrap();
            m
        };
        let (a, b) = (frame(100), frame(110));
        let mut d = OpenCvSceneDescriber::new().unwrap();
        let out = d
            .describe(DescribeInput {
                image: &b,
                previous: Some(&a),
                frame_index: 1,
                captured_at_ms: 0,
                people: None,
            })
            .unwrap();
        assert!(out.tags.contains(&"motion".to_owned()), "{out:?}");
        assert!(out.tags.contains(&"moving-right".to_owned()), "{out:?}");
        let first = d
            .describe(DescribeInput {
                image: &a,
                previous: None,
                frame_index: 0,
                captured_at_ms: 0,
                people: None,
            })
            .unwrap();
        assert!(first.text.contains("not measured"), "{first:?}");
    }
}
