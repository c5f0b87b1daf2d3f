//! Test videos made with Debian's `ffmpeg` from a still photograph (a slow zoom, so
//! frames differ), and `ffprobe`'s view of them to check the decoder against.

use std::path::Path;
use std::process::Command;

use crate::run_tool;

/// A container and codec to make a test video with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoKind {
    /// H.264 (baseline profile) in MP4, the index at the front (`+faststart`) so a
    /// truncated copy still opens.
    H264Mp4,
    /// MPEG-4 Part 2 in AVI, as Hollywood2's files are.
    Mpeg4Avi,
}

impl VideoKind {
    pub fn extension(self) -> &'static str {
        match self {
            Self::H264Mp4 => "mp4",
            Self::Mpeg4Avi => "avi",
        }
    }
}

/// Makes `frames` frames at 24 fps of a zoom into `photo`, `w` x `h`, with a key
/// frame every 12 frames.
pub fn zoom_video(
    photo: &Path,
    out: &Path,
    kind: VideoKind,
    frames: u32,
    (w, h): (u32, u32),
) -> Result<(), String> {
    let filter = format!("scale=640:-2,zoompan=z='min(zoom+0.01,1.5)':d={frames}:s={w}x{h}:fps=24");
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y", "-i"]).arg(photo).args([
        "-vf",
        &filter,
        "-frames:v",
        &frames.to_string(),
        "-g",
        "12",
    ]);
    match kind {
        VideoKind::H264Mp4 => cmd.args([
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
        ]),
        VideoKind::Mpeg4Avi => cmd.args(["-c:v", "mpeg4", "-q:v", "5"]),
    };
    run_tool(cmd.arg(out), "ffmpeg (apt install ffmpeg)")
}

/// One frame as `ffprobe` reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbedFrame {
    pub pts_seconds: f64,
    pub key: bool,
}

/// Every decodable frame of `path`'s first video stream, in presentation order.
pub fn ffprobe_frames(path: &Path) -> Result<Vec<ProbedFrame>, String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=key_frame,best_effort_timestamp_time",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .map_err(|e| format!("ffprobe: {e} (apt install ffmpeg)"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut parts = l.split(',');
            let key = parts.next().map(str::trim) == Some("1");
            let ts = parts
                .next()
                .and_then(|t| t.trim().parse::<f64>().ok())
                .ok_or_else(|| format!("ffprobe line {l:?}"))?;
            Ok(ProbedFrame {
                pts_seconds: ts,
                key,
            })
        })
        .collect()
}
