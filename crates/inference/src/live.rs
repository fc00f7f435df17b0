//! Live camera streams through OpenCV's FFmpeg backend: RTSP (H.264, H.265) and HTTP MJPEG
//! (`multipart/x-mixed-replace`), opened with open and read timeouts so that a camera that does not
//! answer or stalls is noticed rather than waited on.

use opencv::core::{Mat, Vector};
use opencv::prelude::*;
use opencv::videoio;

use crate::InferenceError;

/// What a live stream says about itself once opened.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    /// The codec's FourCC (e.g. `h264`, `hevc`, `MJPG`), when the backend says.
    pub codec: Option<String>,
    /// Frame width and height in pixels.
    pub width: u32,
    /// See `width`.
    pub height: u32,
    /// Frames per second the stream announces (0 when it does not).
    pub fps: f64,
}

/// An open live stream. Reading blocks: use it on a thread of its own.
pub struct LiveCapture {
    capture: videoio::VideoCapture,
    info: StreamInfo,
    /// The URL with any password replaced, for errors.
    shown: String,
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

impl LiveCapture {
    /// Opens `url` (`rtsp://…`, `http://…` MJPEG) with FFmpeg, giving up after `open_timeout_ms`; a read
    /// that gets no frame for `read_timeout_ms` fails.
    pub fn open(
        url: &str,
        open_timeout_ms: u32,
        read_timeout_ms: u32,
    ) -> Result<LiveCapture, InferenceError> {
        let shown = redact_url(url);
        let media_err = |reason: String| InferenceError::Media {
            path: shown.clone(),
            reason,
        };
        let params = Vector::from_slice(&[
            videoio::CAP_PROP_OPEN_TIMEOUT_MSEC,
            i32::try_from(open_timeout_ms).unwrap_or(i32::MAX),
            videoio::CAP_PROP_READ_TIMEOUT_MSEC,
            i32::try_from(read_timeout_ms).unwrap_or(i32::MAX),
        ]);
        let capture =
            videoio::VideoCapture::from_file_with_params(url, videoio::CAP_FFMPEG, &params)
                // OpenCV's message may repeat the URL: never show it.
                .map_err(|_| media_err("the stream cannot be opened".into()))?;
        if !capture.is_opened().unwrap_or(false) {
            return Err(media_err(
                "no answer, or not a stream FFmpeg can read (check the address, the credentials and the transport)"
                    .into(),
            ));
        }
        let get = |prop| capture.get(prop).unwrap_or(0.0);
        let fourcc = get(videoio::CAP_PROP_FOURCC) as u32;
        let codec = (fourcc != 0).then(|| {
            fourcc
                .to_le_bytes()
                .iter()
                .filter(|b| b.is_ascii_graphic())
                .map(|b| *b as char)
                .collect::<String>()
        });
        let info = StreamInfo {
            codec,
            width: get(videoio::CAP_PROP_FRAME_WIDTH) as u32,
            height: get(videoio::CAP_PROP_FRAME_HEIGHT) as u32,
            fps: get(videoio::CAP_PROP_FPS),
        };
        Ok(LiveCapture {
            capture,
            info,
            shown,
        })
    }

    /// What the stream said about itself.
    pub fn info(&self) -> &StreamInfo {
        &self.info
    }

    /// The next decoded frame (BGR). Fails when the stream ended, stalled past the read timeout, or
    /// broke: reopen it.
    pub fn read(&mut self) -> Result<Mat, InferenceError> {
        let mut image = Mat::default();
        let ok = self.capture.read(&mut image).unwrap_or(false);
        if !ok || image.empty() {
            return Err(InferenceError::Media {
                path: self.shown.clone(),
                reason: "no frame: the stream ended or stalled".into(),
            });
        }
        Ok(image)
    }
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
