//! The near-duplicate gate: a frame that barely differs from the last accepted frame of its session is not
//! worth describing. The check runs on a tiny grey thumbnail, so it costs a fraction of the decode.

use opencv::core::Mat;
use opencv::prelude::*;

use crate::frame::grey_thumbnail;
use crate::InferenceError;

/// Thumbnail geometry: 64x48 keeps a walking person (~40x100 px at 768x576) at a few pixels.
pub const THUMB_WIDTH: i32 = 64;
/// See [`THUMB_WIDTH`].
pub const THUMB_HEIGHT: i32 = 48;
/// Grey-level change (0..=255) for a thumbnail pixel to count as changed; above JPEG noise.
const PIXEL_DELTA: u8 = 18;

/// A frame's grey thumbnail, [`THUMB_WIDTH`] x [`THUMB_HEIGHT`] bytes, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail(Vec<u8>);

impl Thumbnail {
    /// Computes the thumbnail of a decoded frame.
    pub fn of(image: &Mat) -> Result<Thumbnail, InferenceError> {
        let grey = grey_thumbnail(image, THUMB_WIDTH, THUMB_HEIGHT)?;
        let bytes = grey
            .data_bytes()
            .map_err(crate::cv("reading thumbnail"))?
            .to_vec();
        Ok(Thumbnail(bytes))
    }

    /// Restores a stored thumbnail; `None` if the bytes have the wrong size.
    pub fn from_bytes(bytes: Vec<u8>) -> Option<Thumbnail> {
        (bytes.len() == (THUMB_WIDTH * THUMB_HEIGHT) as usize).then_some(Thumbnail(bytes))
    }

    /// The raw bytes, for storage.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Fraction of pixels (0.0..=1.0) whose grey level differs by more than the noise threshold.
    pub fn changed_fraction(&self, other: &Thumbnail) -> f32 {
        let changed = self
            .0
            .iter()
            .zip(&other.0)
            .filter(|(a, b)| a.abs_diff(**b) > PIXEL_DELTA)
            .count();
        changed as f32 / self.0.len().max(1) as f32
    }
}

/// Gate decision for one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GateVerdict {
    /// Different enough (or the first frame): describe it. `difference` is `None` for a first frame.
    Keep {
        /// Changed fraction against the reference, if there was one.
        difference: Option<f32>,
    },
    /// A near-duplicate of the reference.
    Duplicate {
        /// Changed fraction against the reference.
        difference: f32,
    },
}

/// Compares each frame's thumbnail with the last kept one.
#[derive(Debug, Clone)]
pub struct DuplicateGate {
    /// Frames whose changed fraction is below this are duplicates. 0 disables the gate.
    threshold: f32,
}

impl DuplicateGate {
    /// A gate with the given changed-fraction threshold (0.0..=1.0).
    pub fn new(threshold: f32) -> DuplicateGate {
        DuplicateGate {
            threshold: threshold.clamp(0.0, 1.0),
        }
    }

    /// Judges `candidate` against the reference (the last kept frame), if any.
    pub fn judge(&self, reference: Option<&Thumbnail>, candidate: &Thumbnail) -> GateVerdict {
        match reference {
            None => GateVerdict::Keep { difference: None },
            Some(r) => {
                let difference = candidate.changed_fraction(r);
                if difference < self.threshold {
                    GateVerdict::Duplicate { difference }
                } else {
                    GateVerdict::Keep {
                        difference: Some(difference),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thumb(fill: u8, changed: usize) -> Thumbnail {
        let mut v = vec![fill; (THUMB_WIDTH * THUMB_HEIGHT) as usize];
        v.iter_mut()
            .take(changed)
            .for_each(|p| *p = fill.wrapping_add(100));
        Thumbnail(v)
    }

    #[test]
    fn identical_frames_are_duplicates_and_changed_ones_are_kept() {
        let gate = DuplicateGate::new(0.01);
        assert_eq!(
            gate.judge(None, &thumb(10, 0)),
            GateVerdict::Keep { difference: None }
        );
        assert!(matches!(
            gate.judge(Some(&thumb(10, 0)), &thumb(10, 0)),
            GateVerdict::Duplicate { .. }
        ));
        assert!(matches!(
            gate.judge(Some(&thumb(10, 0)), &thumb(10, 300)),
            GateVerdict::Keep { .. }
        ));
        // Noise below the per-pixel delta does not count as change.
        assert!(matches!(
            gate.judge(Some(&thumb(10, 0)), &thumb(15, 0)),
            GateVerdict::Duplicate { .. }
        ));
    }

    #[test]
    fn zero_threshold_disables_the_gate() {
        let gate = DuplicateGate::new(0.0);
        assert!(matches!(
            gate.judge(Some(&thumb(10, 0)), &thumb(10, 0)),
            GateVerdict::Keep { .. }
        ));
    }
}
