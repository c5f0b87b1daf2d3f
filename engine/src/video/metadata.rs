//! [`probe`]: a video's container and stream facts, without decoding frames.

use std::path::Path;

use ffmpeg_next as ff;

use super::VideoError;

/// What `video_metadata` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoMetadata {
    /// Seconds (the container's duration, else the stream's).
    pub duration_seconds: f64,
    /// The average frame rate.
    pub fps: f64,
    pub width: u32,
    pub height: u32,
    /// FFmpeg's codec name (`h264`, `mpeg4`, ...).
    pub codec: String,
    /// Frames the container declares, else duration times frame rate, rounded.
    pub frame_count: u64,
}

/// Reads `path`'s container header and its best video stream's parameters.
pub fn probe(path: &Path) -> Result<VideoMetadata, VideoError> {
    super::init();
    let input = ff::format::input(path).map_err(|e| VideoError::Open(e.to_string()))?;
    let s = input
        .streams()
        .best(ff::media::Type::Video)
        .ok_or(VideoError::NoVideoStream)?;
    let fps = f64::from(s.avg_frame_rate());
    let duration_seconds = if input.duration() > 0 {
        input.duration() as f64 / f64::from(ff::ffi::AV_TIME_BASE)
    } else {
        (s.duration().max(0) as f64) * f64::from(s.time_base())
    };
    let params = s.parameters();
    let ctx = ff::codec::context::Context::from_parameters(params)
        .map_err(|e| VideoError::Open(e.to_string()))?;
    let codec = ctx.id().name().to_string();
    let video = ctx
        .decoder()
        .video()
        .map_err(|e| VideoError::Open(e.to_string()))?;
    let frame_count = if s.frames() > 0 {
        s.frames() as u64
    } else {
        (duration_seconds * fps).round().max(0.0) as u64
    };
    Ok(VideoMetadata {
        duration_seconds,
        fps,
        width: video.width(),
        height: video.height(),
        codec,
        frame_count,
    })
}
