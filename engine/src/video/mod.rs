//! Video through FFmpeg's libraries (Debian's libav*, via `ffmpeg-next`): frames
//! decoded one at a time into RGB images, and container metadata. Free of Arrow;
//! the `video_frames` table function and `video_metadata` call these.

mod budget;
mod frames;
mod metadata;
mod options;

use std::sync::Once;

pub use frames::{FrameReader, VideoFrame};
pub use metadata::{probe, VideoMetadata};
pub use options::{FrameSelection, VideoOptions};

/// Why a video could not be read. File context is added by the caller.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("cannot open: {0}")]
    Open(String),
    #[error("no video stream")]
    NoVideoStream,
    #[error("cannot decode after frame {frames}: {message}")]
    Decode { frames: u64, message: String },
    #[error("truncated or corrupt: {decoded} frames decoded, the container declares {declared}")]
    Truncated { decoded: u64, declared: u64 },
    #[error("bad video options: {0}")]
    Options(String),
    #[error("timed out: reading and decoding took over {limit_ms} ms ({frames} frames decoded)")]
    TimedOut { limit_ms: u128, frames: u64 },
}

static INIT: Once = Once::new();

/// Initialises FFmpeg once per process, its own logging silenced: errors are
/// reported by regatta, naming the file.
pub(crate) fn init() {
    INIT.call_once(|| {
        // Registration is a no-op on FFmpeg 4+; the result says nothing useful.
        let _ = ffmpeg_next::init();
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Quiet);
    });
}
