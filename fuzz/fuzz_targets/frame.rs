//! Frame validation and decoding: any bytes, declared as JPEG or PNG (the first input byte picks), must
//! give a decoded frame within the limits or a `DecodeError`, never a panic, a crash or an allocation
//! beyond what the limits allow.
#![no_main]

use crow_inference::{decode_frame, probe_dimensions, validate_frame, FrameLimits, ImageFormat};
use libfuzzer_sys::fuzz_target;

/// Small limits keep each decode cheap, so the fuzzer explores more inputs per second.
const LIMITS: FrameLimits = FrameLimits {
    max_bytes: 1 << 20,
    max_pixels: 1 << 20,
};

fuzz_target!(|input: &[u8]| {
    let Some((&selector, bytes)) = input.split_first() else {
        return;
    };
    let format = if selector & 1 == 0 {
        ImageFormat::Jpeg
    } else {
        ImageFormat::Png
    };
    let _ = probe_dimensions(bytes, format);
    if let Ok((width, height)) = validate_frame(bytes, format, LIMITS) {
        assert!(u64::from(width) * u64::from(height) <= LIMITS.max_pixels);
        if let Ok(frame) = decode_frame(bytes, format, LIMITS) {
            let decoded = (frame.width() as u32, frame.height() as u32);
            assert!(
                decoded == (width, height) || decoded == (height, width),
                "decoded {decoded:?}, header said {width}x{height}"
            );
        }
    }
});
