//! Footage for measuring a describe gate, built from a real video: idle stretches (the scene without
//! its people: the per-pixel median of frames far apart), busy stretches (the video's own frames), a
//! blinking sign in one corner throughout, and an exposure step (30 % more light) part-way. A good gate
//! describes no idle frame and every busy stretch; a gate on pixels is fooled by the sign and the step.

use std::ops::Range;
use std::path::Path;

use opencv::core::{Mat, Rect, Scalar};
use opencv::imgproc;
use opencv::prelude::*;

use crate::{cv, InferenceError, MediaReader};

/// Synthetic footage at 1 frame per second and where its busy stretches are.
pub struct GateFootage {
    /// The frames, one per second of footage.
    pub frames: Vec<Mat>,
    /// Frame index ranges in which people are present.
    pub busy: Vec<Range<usize>>,
}

impl GateFootage {
    /// Whether frame `i` lies in a busy stretch.
    pub fn is_busy(&self, i: usize) -> bool {
        self.busy.iter().any(|r| r.contains(&i))
    }
}

/// Idle seconds between busy stretches.
const IDLE: usize = 20;
/// Seconds per busy stretch.
const BUSY: usize = 8;

/// Builds the footage from `video` (sampled at 1 frame/s): `stretches` busy stretches of 8 s taken from
/// successive parts of the video, each between 20 s idle stretches; the exposure step comes 5 s into
/// the second idle stretch. Needs a video with people of at least `stretches * 8 + 30` seconds.
pub fn gate_footage(video: &Path, stretches: usize) -> Result<GateFootage, InferenceError> {
    let source: Vec<Mat> = MediaReader::open(video, Some(1.0))?
        .map(|f| f.map(|f| f.image))
        .collect::<Result<_, _>>()?;
    if source.len() < 2 * BUSY || source.len() < stretches * BUSY {
        return Err(InferenceError::Media {
            path: video.display().to_string(),
            reason: format!(
                "{} s of footage is too short for {stretches} busy stretches",
                source.len()
            ),
        });
    }
    let sample: Vec<&Mat> = source.iter().step_by(3).collect();
    let background = median(&sample)?;
    let mut frames = Vec::new();
    let mut busy = Vec::new();
    let step_at = IDLE + BUSY + 5;
    let push = |frames: &mut Vec<Mat>, m: &Mat| -> Result<(), InferenceError> {
        let i = frames.len();
        frames.push(disturb(m, i, i >= step_at)?);
        Ok(())
    };
    for _ in 0..IDLE {
        push(&mut frames, &background)?;
    }
    let spacing = (source.len() - BUSY) / stretches.max(1);
    for s in 0..stretches {
        let start = frames.len();
        for m in &source[s * spacing..s * spacing + BUSY] {
            push(&mut frames, m)?;
        }
        busy.push(start..frames.len());
        for _ in 0..IDLE {
            push(&mut frames, &background)?;
        }
    }
    Ok(GateFootage { frames, busy })
}

/// The per-pixel median of same-sized frames.
pub(crate) fn median(frames: &[&Mat]) -> Result<Mat, InferenceError> {
    let mut out = frames[0].try_clone().map_err(cv("copying frame"))?;
    let planes: Vec<&[u8]> = frames
        .iter()
        .map(|f| f.data_bytes())
        .collect::<Result<_, _>>()
        .map_err(cv("reading frame"))?;
    let bytes = out.data_bytes_mut().map_err(cv("writing frame"))?;
    let mut column = vec![0u8; planes.len()];
    for (i, b) in bytes.iter_mut().enumerate() {
        for (c, p) in column.iter_mut().zip(&planes) {
            *c = p.get(i).copied().unwrap_or(0);
        }
        column.sort_unstable();
        *b = column[column.len() / 2];
    }
    Ok(out)
}

/// The frame with a sign in the top-left corner lit on odd frames, and 30 % more light once `stepped`.
fn disturb(frame: &Mat, index: usize, stepped: bool) -> Result<Mat, InferenceError> {
    let mut out = Mat::default();
    let gain = if stepped { 1.3 } else { 1.0 };
    frame
        .convert_to(&mut out, -1, gain, 0.0)
        .map_err(cv("changing exposure"))?;
    let lit = if index % 2 == 1 { 250.0 } else { 20.0 };
    imgproc::rectangle(
        &mut out,
        Rect::new(10, 10, 120, 60),
        Scalar::new(lit, lit, lit, 0.0),
        -1,
        imgproc::LINE_8,
        0,
    )
    .map_err(cv("drawing the sign"))?;
    Ok(out)
}
