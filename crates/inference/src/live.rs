//! What live camera streams are and how they are read: the options ([`LiveOptions`]), the frames
//! ([`LiveFrame`]), what a stream says about itself ([`StreamInfo`]), and [`redact_url`], which keeps a
//! camera's password out of logs. The reader is [`crate::camera::LiveCapture`] (RTSP and HTTP MJPEG
//! through a GStreamer pipeline).

use opencv::core::Mat;

/// What a live stream says about itself once opened.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    /// The codec (`h264`, `h265`, or FFmpeg's FourCC such as `MJPG`), when known.
    pub codec: Option<String>,
    /// Frame width and height in pixels.
    pub width: u32,
    /// See `width`.
    pub height: u32,
    /// Frames per second the stream announces (0 when it does not).
    pub fps: f64,
}

/// A URL with the password of its user info replaced by `***`, fit for logs, errors and metrics.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// How an RTSP camera's packets travel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RtspTransport {
    /// Interleaved in the RTSP connection: one TCP connection, through NAT and firewalls.
    #[default]
    Tcp,
    /// RTP over UDP, where the camera offers it: less delay, but lost packets are lost frames.
    Udp,
}

/// Which frames of a stream are decoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DecodeMode {
    /// Every frame: needed when frames are wanted more often than the camera sends key frames.
    #[default]
    Full,
    /// Only key frames (the others are dropped before the decoder): about a third of the CPU of a
    /// full decode when one frame per key-frame interval is enough.
    KeyFrames,
}

/// How a live stream is opened and read.
#[derive(Debug, Clone, Copy)]
pub struct LiveOptions {
    /// A stream that does not open within this long is given up on.
    pub open_timeout_ms: u32,
    /// A stream that yields no frame for this long fails (reopen it).
    pub read_timeout_ms: u32,
    /// RTSP only.
    pub transport: RtspTransport,
    /// RTSP only (an MJPEG stream's frames are all key frames, passed through).
    pub decode: DecodeMode,
    /// Frames per second the reader takes: when every frame is decoded, those beyond twice this rate
    /// are dropped right after the decoder, before conversion (RTSP).
    pub take_fps: f64,
    /// RTSP: frames come out as JPEG, encoded by the pipeline from the decoder's YUV (no conversion to
    /// BGR and back) at this quality, scaled down to this width.
    pub jpeg: JpegOutput,
}

/// JPEG frames straight out of the decoding pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegOutput {
    /// JPEG quality, 1-100.
    pub quality: i32,
    /// Frames wider than this are scaled down, aspect kept; 0 keeps the camera's size.
    pub max_width: u32,
}

/// A frame's picture.
pub enum LiveImage {
    /// Decoded pixels (BGR).
    Bgr(Mat),
    /// A JPEG (see [`LiveOptions::jpeg`]): what live streams give.
    Jpeg(Vec<u8>),
}

/// One decoded frame of a live stream.
pub struct LiveFrame {
    /// The picture.
    pub image: LiveImage,
    /// The frame's time on the stream's clock, in ms from the stream's start.
    pub stream_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_leave_the_url() {
        assert_eq!(
            redact_url("rtsp://admin:s3cret@10.0.0.7:554/Streaming/101"),
            "rtsp://admin:***@10.0.0.7:554/Streaming/101"
        );
        assert_eq!(
            redact_url("http://cam.local/snap.jpg?x=a@b"),
            "http://cam.local/snap.jpg?x=a@b"
        );
        assert_eq!(redact_url("/srv/footage/door.mp4"), "/srv/footage/door.mp4");
        assert_eq!(redact_url("rtsp://user@h/x"), "rtsp://user@h/x");
    }
}
