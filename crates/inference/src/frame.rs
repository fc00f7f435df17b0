//! Validating and decoding encoded frames.

use opencv::core::{Mat, Vector};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc};

use crate::{cv, DecodeError, InferenceError};

/// Encodings crow accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// JPEG (baseline or progressive).
    Jpeg,
    /// PNG.
    Png,
}

impl ImageFormat {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "JPEG",
            ImageFormat::Png => "PNG",
        }
    }
}

/// Smallest and largest accepted side of a decoded frame, in pixels.
const MIN_SIDE: i32 = 16;
const MAX_SIDE: i32 = 8192;

/// A decoded frame: 8-bit BGR, as OpenCV decodes it.
#[derive(Debug)]
pub struct DecodedFrame {
    /// BGR pixels.
    pub image: Mat,
}

impl DecodedFrame {
    /// Width in pixels.
    pub fn width(&self) -> i32 {
        self.image.cols()
    }
    /// Height in pixels.
    pub fn height(&self) -> i32 {
        self.image.rows()
    }
}

const JPEG_SOI: &[u8] = &[0xFF, 0xD8, 0xFF];
const JPEG_EOI: &[u8] = &[0xFF, 0xD9];
const PNG_SIGNATURE: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
const PNG_IEND: &[u8] = b"IEND";

/// Checks the bytes against the declared format without decoding: signature and end marker. libjpeg
/// "decodes" a truncated JPEG into a half-grey picture with only a warning, so the end marker is checked
/// explicitly.
pub fn check_encoding(
    bytes: &[u8],
    format: ImageFormat,
    max_bytes: usize,
) -> Result<(), DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if bytes.len() > max_bytes {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            limit: max_bytes,
        });
    }
    let declared = format.as_str();
    match format {
        ImageFormat::Jpeg => {
            if !bytes.starts_with(JPEG_SOI) {
                return Err(DecodeError::SignatureMismatch { declared });
            }
            // Encoders may pad after EOI; look for it near the end.
            let tail = &bytes[bytes.len().saturating_sub(64)..];
            if !tail.windows(2).any(|w| w == JPEG_EOI) {
                return Err(DecodeError::Truncated {
                    format: declared,
                    detail: "no end-of-image marker",
                });
            }
        }
        ImageFormat::Png => {
            if !bytes.starts_with(PNG_SIGNATURE) {
                return Err(DecodeError::SignatureMismatch { declared });
            }
            let tail = &bytes[bytes.len().saturating_sub(16)..];
            if !tail.windows(4).any(|w| w == PNG_IEND) {
                return Err(DecodeError::Truncated {
                    format: declared,
                    detail: "no IEND chunk",
                });
            }
        }
    }
    Ok(())
}

/// Validates and decodes one encoded frame into BGR pixels.
pub fn decode_frame(
    bytes: &[u8],
    format: ImageFormat,
    max_bytes: usize,
) -> Result<DecodedFrame, InferenceError> {
    check_encoding(bytes, format, max_bytes)?;
    let buf = Mat::from_slice(bytes).map_err(cv("wrapping frame bytes"))?;
    // A corrupt body makes imdecode return an empty Mat (or, rarely, an error): both mean "undecodable".
    let image = match imgcodecs::imdecode(&buf, imgcodecs::IMREAD_COLOR) {
        Ok(m) if !m.empty() => m,
        _ => {
            return Err(DecodeError::Undecodable {
                format: format.as_str(),
            }
            .into())
        }
    };
    let (width, height) = (image.cols(), image.rows());
    if !(MIN_SIDE..=MAX_SIDE).contains(&width) || !(MIN_SIDE..=MAX_SIDE).contains(&height) {
        return Err(DecodeError::BadDimensions {
            width,
            height,
            min: MIN_SIDE,
            max: MAX_SIDE,
        }
        .into());
    }
    Ok(DecodedFrame { image })
}

/// Encodes a BGR image as JPEG with the given quality (1..=100).
pub fn encode_jpeg(image: &Mat, quality: i32) -> Result<Vec<u8>, InferenceError> {
    let mut out = Vector::<u8>::new();
    let params = Vector::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, quality.clamp(1, 100)]);
    imgcodecs::imencode(".jpg", image, &mut out, &params).map_err(cv("encoding JPEG"))?;
    Ok(out.to_vec())
}

/// Converts BGR (or grey) to single-channel grey, resized to `width` x `height` with area averaging.
///
/// When the source is more than 4x larger than the target in both directions it is first shrunk to 4x the
/// target by nearest-neighbour sampling: area-averaging the full frame reads every pixel and cost about a
/// tenth of a JPEG decode, while 16 samples per output pixel already average out JPEG noise.
pub(crate) fn grey_thumbnail(image: &Mat, width: i32, height: i32) -> Result<Mat, InferenceError> {
    const PRE_SHRINK: i32 = 4;
    let size = opencv::core::Size::new(width, height);
    let mut small = Mat::default();
    if image.cols() > width * PRE_SHRINK && image.rows() > height * PRE_SHRINK {
        let mut sampled = Mat::default();
        let mid = opencv::core::Size::new(width * PRE_SHRINK, height * PRE_SHRINK);
        imgproc::resize(image, &mut sampled, mid, 0.0, 0.0, imgproc::INTER_NEAREST)
            .map_err(cv("downscaling"))?;
        imgproc::resize(&sampled, &mut small, size, 0.0, 0.0, imgproc::INTER_AREA)
            .map_err(cv("downscaling"))?;
    } else {
        imgproc::resize(image, &mut small, size, 0.0, 0.0, imgproc::INTER_AREA)
            .map_err(cv("downscaling"))?;
    }
    if small.channels() == 1 {
        return Ok(small);
    }
    let mut grey = Mat::default();
    imgproc::cvt_color(&small, &mut grey, imgproc::COLOR_BGR2GRAY, 0)
        .map_err(cv("converting to grey"))?;
    Ok(grey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_and_truncation_are_checked_before_decoding() {
        let max = 1 << 20;
        assert_eq!(
            check_encoding(&[], ImageFormat::Jpeg, max),
            Err(DecodeError::Empty)
        );
        assert!(matches!(
            check_encoding(PNG_SIGNATURE, ImageFormat::Jpeg, max),
            Err(DecodeError::SignatureMismatch { .. })
        ));
        assert!(matches!(
            check_encoding(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0], ImageFormat::Jpeg, max),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            check_encoding(&[0xFF; 32], ImageFormat::Jpeg, 8),
            Err(DecodeError::TooLarge { size: 32, limit: 8 })
        ));
    }

    #[test]
    fn jpeg_round_trips_through_decode() {
        let image =
            Mat::new_rows_cols_with_default(48, 64, opencv::core::CV_8UC3, 128.into()).unwrap();
        let jpeg = encode_jpeg(&image, 80).unwrap();
        let decoded = decode_frame(&jpeg, ImageFormat::Jpeg, 1 << 20).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (64, 48));
        let truncated = &jpeg[..jpeg.len() / 2];
        assert!(decode_frame(truncated, ImageFormat::Jpeg, 1 << 20).is_err());
    }
}
