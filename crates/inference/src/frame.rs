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

    /// The format whose signature `bytes` start with; `None` when they start with neither.
    pub fn from_signature(bytes: &[u8]) -> Option<ImageFormat> {
        if bytes.starts_with(JPEG_SOI) {
            Some(ImageFormat::Jpeg)
        } else if bytes.starts_with(PNG_SIGNATURE) {
            Some(ImageFormat::Png)
        } else {
            None
        }
    }
}

/// Smallest and largest accepted side of a decoded frame, in pixels.
const MIN_SIDE: i32 = 16;
const MAX_SIDE: i32 = 8192;

/// Limits checked before a frame is decoded: nothing is allocated for its pixels unless both hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest encoded frame, bytes.
    pub max_bytes: usize,
    /// Largest width x height the frame's header may declare.
    pub max_pixels: u64,
}

impl FrameLimits {
    /// 8 MiB encoded and 8K UHD (7680 x 4320) decoded: the server's defaults.
    pub const DEFAULT: FrameLimits = FrameLimits {
        max_bytes: 8 * 1024 * 1024,
        max_pixels: 7680 * 4320,
    };
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits::DEFAULT
    }
}

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

/// Reads the width and height an encoded image declares in its header (JPEG SOF, PNG IHDR) without
/// decoding anything. Every read is bounds-checked: hostile bytes give an error, never a panic.
pub fn probe_dimensions(bytes: &[u8], format: ImageFormat) -> Result<(u32, u32), DecodeError> {
    let undecodable = DecodeError::Undecodable {
        format: format.as_str(),
    };
    match format {
        ImageFormat::Png => {
            // Signature, then the first chunk must be IHDR: length 13, type, width, height (big-endian).
            let ihdr = bytes.get(8..24).ok_or(undecodable.clone())?;
            if ihdr[0..4] != [0, 0, 0, 13] || &ihdr[4..8] != b"IHDR" {
                return Err(undecodable);
            }
            let width = u32::from_be_bytes([ihdr[8], ihdr[9], ihdr[10], ihdr[11]]);
            let height = u32::from_be_bytes([ihdr[12], ihdr[13], ihdr[14], ihdr[15]]);
            Ok((width, height))
        }
        ImageFormat::Jpeg => {
            // Walk the marker segments after SOI up to the first frame header (SOFn).
            let mut at = 2;
            loop {
                // Markers may be preceded by any number of 0xFF fill bytes.
                if *bytes.get(at).ok_or(undecodable.clone())? != 0xFF {
                    return Err(undecodable);
                }
                while bytes.get(at) == Some(&0xFF) {
                    at += 1;
                }
                let marker = *bytes.get(at).ok_or(undecodable.clone())?;
                at += 1;
                match marker {
                    // Standalone markers carry no length.
                    0x01 | 0xD0..=0xD7 => continue,
                    // End of image or start of scan before any frame header.
                    0xD9 | 0xDA => return Err(undecodable),
                    _ => {}
                }
                let segment = bytes.get(at..at + 2).ok_or(undecodable.clone())?;
                let length = usize::from(u16::from_be_bytes([segment[0], segment[1]]));
                if length < 2 {
                    return Err(undecodable);
                }
                // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
                if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
                    // length(2) precision(1) height(2) width(2)
                    let sof = bytes.get(at + 3..at + 7).ok_or(undecodable.clone())?;
                    let height = u32::from(u16::from_be_bytes([sof[0], sof[1]]));
                    let width = u32::from(u16::from_be_bytes([sof[2], sof[3]]));
                    return Ok((width, height));
                }
                at += length;
            }
        }
    }
}

/// Checks declared dimensions against the side range and `max_pixels`.
fn check_dimensions(width: u32, height: u32, max_pixels: u64) -> Result<(), DecodeError> {
    let side = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    let (w, h) = (side(width), side(height));
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(DecodeError::TooManyPixels {
            width,
            height,
            limit: max_pixels,
        });
    }
    if !(MIN_SIDE..=MAX_SIDE).contains(&w) || !(MIN_SIDE..=MAX_SIDE).contains(&h) {
        return Err(DecodeError::BadDimensions {
            width: w,
            height: h,
            min: MIN_SIDE,
            max: MAX_SIDE,
        });
    }
    Ok(())
}

/// Validates one encoded frame without decoding it: size, declared format, signature, end marker, and
/// the dimensions its header declares. What passes is safe to hand to the decoder.
pub fn validate_frame(
    bytes: &[u8],
    format: ImageFormat,
    limits: FrameLimits,
) -> Result<(u32, u32), DecodeError> {
    check_encoding(bytes, format, limits.max_bytes)?;
    let (width, height) = probe_dimensions(bytes, format)?;
    check_dimensions(width, height, limits.max_pixels)?;
    Ok((width, height))
}

/// Validates ([`validate_frame`]) and decodes one encoded frame into BGR pixels.
pub fn decode_frame(
    bytes: &[u8],
    format: ImageFormat,
    limits: FrameLimits,
) -> Result<DecodedFrame, InferenceError> {
    let declared = validate_frame(bytes, format, limits)?;
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
    // The decoder must agree with the header that was checked (up to an EXIF rotation), or the check
    // above proved nothing (e.g. a JPEG whose DNL marker redefines the height).
    let decoded = (image.cols() as u32, image.rows() as u32);
    if decoded != declared && decoded != (declared.1, declared.0) {
        return Err(DecodeError::Undecodable {
            format: format.as_str(),
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
        let decoded = decode_frame(&jpeg, ImageFormat::Jpeg, FrameLimits::DEFAULT).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (64, 48));
        let truncated = &jpeg[..jpeg.len() / 2];
        assert!(decode_frame(truncated, ImageFormat::Jpeg, FrameLimits::DEFAULT).is_err());
    }

    #[test]
    fn dimensions_are_read_from_the_header_and_limited_before_decoding() {
        let image =
            Mat::new_rows_cols_with_default(48, 64, opencv::core::CV_8UC3, 128.into()).unwrap();
        let mut jpeg = encode_jpeg(&image, 80).unwrap();
        assert_eq!(probe_dimensions(&jpeg, ImageFormat::Jpeg), Ok((64, 48)));
        // Patch the frame header to claim 60000 x 60000: refused without decoding.
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        jpeg[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
        assert_eq!(
            validate_frame(&jpeg, ImageFormat::Jpeg, FrameLimits::DEFAULT),
            Err(DecodeError::TooManyPixels {
                width: 60000,
                height: 60000,
                limit: FrameLimits::DEFAULT.max_pixels
            })
        );
        // Hostile prefixes never panic.
        for n in 0..jpeg.len().min(64) {
            let _ = probe_dimensions(&jpeg[..n], ImageFormat::Jpeg);
            let _ = probe_dimensions(&jpeg[..n], ImageFormat::Png);
        }
    }
}
