//! [`VideoOptions`]: which frames to decode and at what size.

use std::time::Duration;

use super::VideoError;
use crate::functions::OnError;

/// Which of a video's frames become rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FrameSelection {
    /// Every frame (`every = 1`) or every n-th, counted in presentation order.
    EveryNth(u64),
    /// About `fps` frames per second: the first frame at or after each tick.
    PerSecond(f64),
    /// Key frames only: the other packets are never decoded.
    KeyFrames,
}

/// Options of `video_frames` / `Session::read_video_frames`.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoOptions {
    /// Output width; with no height, the height keeps the aspect ratio.
    pub width: Option<u32>,
    /// Output height; with no width, the width keeps the aspect ratio.
    pub height: Option<u32>,
    pub selection: FrameSelection,
    /// Frames per video at most; decoding stops there.
    pub max_frames: Option<u64>,
    /// A video that cannot be opened, or breaks off: fail the query (`Raise`), or
    /// keep the frames decoded before the fault and go on (`Null`).
    pub on_error: OnError,
    /// The most time reading and decoding one video may take (`timeout_ms`),
    /// time waiting on a slow consumer not counted; past it the video ends
    /// with an error under `on_error`. None: no limit (videos can be hours long).
    pub timeout: Option<Duration>,
}

impl Default for VideoOptions {
    fn default() -> Self {
        Self {
            width: None,
            height: None,
            selection: FrameSelection::EveryNth(1),
            max_frames: None,
            on_error: OnError::Raise,
            timeout: None,
        }
    }
}

/// The option names, for errors.
const KEYS: &str = "width, height, size (WxH), every, fps, keyframes, limit, on_error, timeout_ms";

impl VideoOptions {
    /// Parses `key=value` pairs separated by commas, e.g.
    /// `"size=640x640, every=5, limit=100, on_error=null"`.
    pub fn parse(text: &str) -> Result<Self, VideoError> {
        let mut o = Self::default();
        let bad = |m: String| VideoError::Options(m);
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim()))
                .ok_or_else(|| bad(format!("{part:?} is not key=value; keys: {KEYS}")))?;
            let number = |v: &str| -> Result<u64, VideoError> {
                v.parse::<u64>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| bad(format!("{key}={v:?}: expected a whole number above 0")))
            };
            match key.as_str() {
                "width" => o.width = Some(number(value)? as u32),
                "height" => o.height = Some(number(value)? as u32),
                "size" => {
                    let (w, h) = value
                        .split_once(['x', 'X'])
                        .ok_or_else(|| bad(format!("size={value:?}: expected WIDTHxHEIGHT")))?;
                    o.width = Some(number(w)? as u32);
                    o.height = Some(number(h)? as u32);
                }
                "every" => o.selection = FrameSelection::EveryNth(number(value)?),
                "fps" => {
                    let fps = value
                        .parse::<f64>()
                        .ok()
                        .filter(|f| f.is_finite() && *f > 0.0)
                        .ok_or_else(|| bad(format!("fps={value:?}: expected a number above 0")))?;
                    o.selection = FrameSelection::PerSecond(fps);
                }
                "keyframes" => match value.to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" => o.selection = FrameSelection::KeyFrames,
                    "false" | "0" | "no" => {}
                    _ => return Err(bad(format!("keyframes={value:?}: expected true or false"))),
                },
                "limit" => o.max_frames = Some(number(value)?),
                "timeout_ms" => o.timeout = Some(Duration::from_millis(number(value)?)),
                "on_error" => {
                    o.on_error = OnError::parse(value).map_err(|e| bad(e.to_string()))?;
                }
                _ => return Err(bad(format!("unknown option {key:?}; keys: {KEYS}"))),
            }
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_bad_ones_are_named() {
        let o =
            VideoOptions::parse("size=64x48, every=3, limit=10, on_error=null, timeout_ms=1500")
                .unwrap();
        assert_eq!(o.timeout, Some(Duration::from_millis(1500)));
        assert_eq!((o.width, o.height), (Some(64), Some(48)));
        assert_eq!(o.selection, FrameSelection::EveryNth(3));
        assert_eq!(o.max_frames, Some(10));
        assert_eq!(o.on_error, OnError::Null);
        assert_eq!(VideoOptions::parse("").unwrap(), VideoOptions::default());
        assert_eq!(
            VideoOptions::parse("keyframes=true").unwrap().selection,
            FrameSelection::KeyFrames
        );
        for (bad, needle) in [
            ("every=0", "every"),
            ("timeout_ms=soon", "timeout_ms"),
            ("fps=-1", "fps"),
            ("speed=2", "unknown option \"speed\""),
            ("size=64", "WIDTHxHEIGHT"),
            ("limit", "key=value"),
        ] {
            let e = VideoOptions::parse(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
