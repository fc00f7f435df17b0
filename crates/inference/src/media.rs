//! Reading media as a sequence of timestamped frames: a video file, one image, or a folder of images.

use std::path::{Path, PathBuf};

use opencv::core::Mat;
use opencv::prelude::*;
use opencv::{imgcodecs, videoio};

use crate::InferenceError;

/// One frame read from media.
#[derive(Debug)]
pub struct MediaFrame {
    /// Position among the frames this reader returned, from 0.
    pub index: u64,
    /// Offset from the start of the media, in ms (video: source frame number / fps).
    pub position_ms: i64,
    /// BGR pixels.
    pub image: Mat,
}

enum Source {
    Video {
        capture: videoio::VideoCapture,
        fps: f64,
        next_source_frame: u64,
    },
    Images {
        paths: Vec<PathBuf>,
        next: usize,
    },
}

/// Iterates over the frames of a video, an image, or a folder of images (sorted by name), optionally
/// sampled down to a frame rate of the media's own clock.
pub struct MediaReader {
    source: Source,
    /// Emit a frame every this many ms of media time; `None` emits every frame.
    sample_every_ms: Option<f64>,
    next_due_ms: f64,
    emitted: u64,
    unreadable: u64,
    total_hint: Option<u64>,
}

/// Extensions read as still images.
const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff"];
/// A video read that fails this many times in a row ends the video (corrupt tail).
const MAX_CONSECUTIVE_FAILURES: u32 = 50;
/// Media time between images of a folder when no sampling rate is given.
const DEFAULT_IMAGE_INTERVAL_MS: f64 = 1000.0;

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

impl MediaReader {
    /// Opens `path`. `sample_fps` (frames per second of media time) thins a video out; `None` keeps every
    /// frame. For images it sets the media time between consecutive images (default 1 s).
    pub fn open(
        path: impl AsRef<Path>,
        sample_fps: Option<f64>,
    ) -> Result<MediaReader, InferenceError> {
        let path = path.as_ref();
        let media_err = |reason: String| InferenceError::Media {
            path: path.display().to_string(),
            reason,
        };
        let sample_every_ms = sample_fps.filter(|f| *f > 0.0).map(|f| 1000.0 / f);
        let (source, total_hint) = if path.is_dir() {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| media_err(e.to_string()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_image(p))
                .collect();
            paths.sort();
            if paths.is_empty() {
                return Err(media_err("folder holds no images".into()));
            }
            let n = paths.len() as u64;
            (Source::Images { paths, next: 0 }, Some(n))
        } else if !path.exists() {
            return Err(media_err("no such file".into()));
        } else if is_image(path) {
            (
                Source::Images {
                    paths: vec![path.to_owned()],
                    next: 0,
                },
                Some(1),
            )
        } else {
            let name = path
                .to_str()
                .ok_or_else(|| media_err("path is not UTF-8".into()))?;
            let capture = videoio::VideoCapture::from_file(name, videoio::CAP_ANY)
                .map_err(|e| media_err(e.message))?;
            if !capture.is_opened().unwrap_or(false) {
                return Err(media_err("OpenCV cannot open it as a video".into()));
            }
            let fps = capture.get(videoio::CAP_PROP_FPS).unwrap_or(0.0);
            let fps = if fps.is_finite() && fps > 0.0 {
                fps
            } else {
                25.0
            };
            let frames = capture.get(videoio::CAP_PROP_FRAME_COUNT).unwrap_or(0.0);
            let total = (frames > 0.0).then(|| match sample_every_ms {
                Some(every) => ((frames / fps * 1000.0) / every).ceil() as u64,
                None => frames as u64,
            });
            (
                Source::Video {
                    capture,
                    fps,
                    next_source_frame: 0,
                },
                total,
            )
        };
        Ok(MediaReader {
            source,
            sample_every_ms,
            next_due_ms: 0.0,
            emitted: 0,
            unreadable: 0,
            total_hint,
        })
    }

    /// Roughly how many frames the reader will return, if the container says.
    pub fn total_hint(&self) -> Option<u64> {
        self.total_hint
    }

    /// Frames (or images) that could not be decoded and were passed over.
    pub fn unreadable(&self) -> u64 {
        self.unreadable
    }

    /// The video's frame rate, if the source is a video.
    pub fn source_fps(&self) -> Option<f64> {
        match &self.source {
            Source::Video { fps, .. } => Some(*fps),
            Source::Images { .. } => None,
        }
    }

    fn next_video_frame(&mut self) -> Option<Result<MediaFrame, InferenceError>> {
        let Source::Video {
            capture,
            fps,
            next_source_frame,
        } = &mut self.source
        else {
            return None;
        };
        let mut failures = 0;
        loop {
            let mut image = Mat::default();
            let ok = capture.read(&mut image).unwrap_or(false);
            let source_frame = *next_source_frame;
            *next_source_frame += 1;
            if !ok || image.empty() {
                // A corrupt packet yields a failed read; give up only after a run of them (end of file).
                self.unreadable += 1;
                failures += 1;
                if failures >= MAX_CONSECUTIVE_FAILURES {
                    self.unreadable -= u64::from(failures);
                    return None;
                }
                continue;
            }
            // Failures just before a good frame were real unreadable frames; failures at the very end were EOF.
            let position_ms = source_frame as f64 * 1000.0 / *fps;
            if let Some(every) = self.sample_every_ms {
                if position_ms + 0.5 < self.next_due_ms {
                    continue;
                }
                self.next_due_ms += every;
                while self.next_due_ms <= position_ms {
                    self.next_due_ms += every;
                }
            }
            let index = self.emitted;
            self.emitted += 1;
            return Some(Ok(MediaFrame {
                index,
                position_ms: position_ms.round() as i64,
                image,
            }));
        }
    }

    fn next_image(&mut self) -> Option<Result<MediaFrame, InferenceError>> {
        let interval = self.sample_every_ms.unwrap_or(DEFAULT_IMAGE_INTERVAL_MS);
        let Source::Images { paths, next } = &mut self.source else {
            return None;
        };
        while let Some(path) = paths.get(*next) {
            *next += 1;
            let image = path
                .to_str()
                .and_then(|p| imgcodecs::imread(p, imgcodecs::IMREAD_COLOR).ok())
                .filter(|m| !m.empty());
            let Some(image) = image else {
                self.unreadable += 1;
                continue;
            };
            let index = self.emitted;
            self.emitted += 1;
            return Some(Ok(MediaFrame {
                index,
                position_ms: (index as f64 * interval).round() as i64,
                image,
            }));
        }
        None
    }
}

impl Iterator for MediaReader {
    type Item = Result<MediaFrame, InferenceError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.source {
            Source::Video { .. } => self.next_video_frame(),
            Source::Images { .. } => self.next_image(),
        }
    }
}
