//! [`FrameReader`]: a video's frames one at a time, so a long video never sits
//! decoded in memory whole.

use std::path::Path;

use ff::codec::discard::Discard;
use ff::software::scaling;
use ffmpeg_next as ff;

use super::budget::DecodeBudget;
use super::{FrameSelection, VideoError, VideoOptions};
use crate::image::{DecodedImage, ImageMode};

/// One decoded frame.
#[derive(Debug, Clone)]
pub struct VideoFrame {
    /// Position in presentation order from 0 (with key frames only: estimated
    /// from the timestamp and the stream's frame rate).
    pub index: u64,
    /// Presentation time in seconds, as `ffprobe` reports it (`best_effort_timestamp_time`).
    pub pts_seconds: f64,
    /// The frame as RGB.
    pub image: DecodedImage,
}

/// Decodes one video file's frames on demand, applying [`VideoOptions`] inside the
/// decoding loop: key-frame-only reading never decodes other packets, a frame
/// limit stops reading, and frames not selected are never scaled or copied.
pub struct FrameReader {
    input: ff::format::context::Input,
    decoder: ff::decoder::Video,
    stream: usize,
    time_base: f64,
    start: f64,
    fps: f64,
    declared_frames: u64,
    options: VideoOptions,
    scaler: Option<(scaling::Context, (u32, u32, ff::format::Pixel))>,
    /// Frames out of the decoder so far.
    decoded: u64,
    /// Frames returned so far.
    emitted: u64,
    /// The next time a frame is due under `FrameSelection::PerSecond`.
    next_due: f64,
    sent_eof: bool,
    done: bool,
    /// The `timeout_ms` option's clock, when one is set.
    budget: Option<DecodeBudget>,
}

fn ff_err(e: ff::Error) -> String {
    e.to_string()
}

fn timed_out(budget: &DecodeBudget, frames: u64) -> VideoError {
    VideoError::TimedOut {
        limit_ms: budget.limit().as_millis(),
        frames,
    }
}

/// An error met once the budget ran out (FFmpeg's interrupted read, say) is the
/// timeout; any other stands as it is.
fn timed_out_or(
    budget: &DecodeBudget,
    frames: u64,
    other: impl FnOnce() -> VideoError,
) -> VideoError {
    if budget.expired() {
        timed_out(budget, frames)
    } else {
        other()
    }
}

impl FrameReader {
    /// Opens `path`'s best video stream.
    pub fn open(path: &Path, options: VideoOptions) -> Result<Self, VideoError> {
        super::init();
        let mut budget = options.timeout.map(DecodeBudget::new);
        let input = match budget.as_mut() {
            Some(b) => {
                b.arm();
                let opened = ff::format::input_with_interrupt(path, b.interrupt());
                b.disarm();
                opened.map_err(|e| timed_out_or(b, 0, || VideoError::Open(ff_err(e))))?
            }
            None => ff::format::input(path).map_err(|e| VideoError::Open(ff_err(e)))?,
        };
        let (stream, time_base, start, fps, declared, params) = {
            let s = input
                .streams()
                .best(ff::media::Type::Video)
                .ok_or(VideoError::NoVideoStream)?;
            let tb = f64::from(s.time_base());
            let start = if s.start_time() == ff::ffi::AV_NOPTS_VALUE {
                0
            } else {
                s.start_time()
            };
            (
                s.index(),
                tb,
                start as f64 * tb,
                f64::from(s.avg_frame_rate()),
                s.frames().max(0) as u64,
                s.parameters(),
            )
        };
        let ctx = ff::codec::context::Context::from_parameters(params)
            .map_err(|e| VideoError::Open(ff_err(e)))?;
        let mut decoder = ctx.decoder();
        if options.selection == FrameSelection::KeyFrames {
            decoder.skip_frame(Discard::NonKey);
        }
        let decoder = decoder.video().map_err(|e| VideoError::Open(ff_err(e)))?;
        Ok(Self {
            input,
            decoder,
            stream,
            time_base,
            start,
            fps,
            declared_frames: declared,
            options,
            scaler: None,
            decoded: 0,
            emitted: 0,
            next_due: f64::NEG_INFINITY,
            sent_eof: false,
            done: false,
            budget,
        })
    }

    /// The next selected frame; `None` at the end (or at the frame limit). An
    /// error ends the video: frames returned before it stand. With a
    /// `timeout_ms`, only the time spent in here counts against it.
    pub fn next_frame(&mut self) -> Result<Option<VideoFrame>, VideoError> {
        let Some(mut budget) = self.budget.take() else {
            return self.next_frame_unbudgeted(None);
        };
        budget.arm();
        let got = self.next_frame_unbudgeted(Some(&budget));
        budget.disarm();
        let decoded = self.decoded;
        let got = got.map_err(|e| timed_out_or(&budget, decoded, || e));
        if got.is_err() {
            self.done = true;
        }
        self.budget = Some(budget);
        got
    }

    fn next_frame_unbudgeted(
        &mut self,
        budget: Option<&DecodeBudget>,
    ) -> Result<Option<VideoFrame>, VideoError> {
        let mut frame = ff::frame::Video::empty();
        loop {
            if let Some(b) = budget.filter(|b| b.expired()) {
                return Err(timed_out(b, self.decoded));
            }
            if self.done || self.options.max_frames.is_some_and(|m| self.emitted >= m) {
                self.done = true;
                return Ok(None);
            }
            match self.decoder.receive_frame(&mut frame) {
                Ok(()) => {
                    let n = self.decoded;
                    self.decoded += 1;
                    if let Some(f) = self.select(&frame, n)? {
                        self.emitted += 1;
                        return Ok(Some(f));
                    }
                    continue;
                }
                Err(ff::Error::Eof) => {
                    self.done = true;
                    return self.check_complete().map(|()| None);
                }
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {}
                Err(e) => return Err(self.decode_error(e)),
            }
            self.feed()?;
        }
    }

    /// Sends the next packet of the video stream (or end of stream) to the decoder.
    fn feed(&mut self) -> Result<(), VideoError> {
        if self.sent_eof {
            // The decoder said "again" after end of stream: nothing more will come.
            self.done = true;
            return Ok(());
        }
        let mut packet = ff::Packet::empty();
        loop {
            match packet.read(&mut self.input) {
                Ok(()) => {
                    if packet.stream() != self.stream {
                        continue;
                    }
                    if self.options.selection == FrameSelection::KeyFrames && !packet.is_key() {
                        continue;
                    }
                    return match self.decoder.send_packet(&packet) {
                        // A damaged packet: the decoder resyncs at the next one.
                        Ok(()) | Err(ff::Error::InvalidData) => Ok(()),
                        Err(e) => Err(self.decode_error(e)),
                    };
                }
                Err(ff::Error::Eof) => {
                    self.sent_eof = true;
                    return self.decoder.send_eof().map_err(|e| self.decode_error(e));
                }
                // The demuxer skips a corrupt packet and resyncs.
                Err(ff::Error::InvalidData) => continue,
                Err(e) => return Err(self.decode_error(e)),
            }
        }
    }

    fn decode_error(&self, e: ff::Error) -> VideoError {
        VideoError::Decode {
            frames: self.decoded,
            message: ff_err(e),
        }
    }

    /// At the end: fewer frames than the container declares means the file broke
    /// off (or lost packets) before its end.
    fn check_complete(&self) -> Result<(), VideoError> {
        let counts_all = !matches!(self.options.selection, FrameSelection::KeyFrames);
        if counts_all && self.declared_frames > 0 && self.decoded < self.declared_frames {
            return Err(VideoError::Truncated {
                decoded: self.decoded,
                declared: self.declared_frames,
            });
        }
        Ok(())
    }

    fn select(
        &mut self,
        frame: &ff::frame::Video,
        n: u64,
    ) -> Result<Option<VideoFrame>, VideoError> {
        let ts = frame.timestamp().or(frame.pts());
        let pts_seconds = ts.map_or(n as f64 / self.fps.max(1e-9), |t| t as f64 * self.time_base);
        let (keep, index) = match self.options.selection {
            FrameSelection::EveryNth(k) => (n.is_multiple_of(k), n),
            FrameSelection::PerSecond(fps) => {
                let due = pts_seconds + 1e-9 >= self.next_due;
                if due {
                    let step = 1.0 / fps;
                    self.next_due = if self.next_due.is_finite() {
                        // Keep the ticks on a grid even when frames are sparse.
                        let mut next = self.next_due + step;
                        while next <= pts_seconds + 1e-9 {
                            next += step;
                        }
                        next
                    } else {
                        pts_seconds + step
                    };
                }
                (due, n)
            }
            FrameSelection::KeyFrames => {
                let est = ((pts_seconds - self.start) * self.fps).round().max(0.0) as u64;
                (true, est)
            }
        };
        if !keep {
            return Ok(None);
        }
        Ok(Some(VideoFrame {
            index,
            pts_seconds,
            image: self.convert_rgb(frame)?,
        }))
    }

    fn out_size(&self, w: u32, h: u32) -> (u32, u32) {
        match (self.options.width, self.options.height) {
            (Some(ow), Some(oh)) => (ow, oh),
            (Some(ow), None) => (
                ow,
                ((u64::from(h) * u64::from(ow)) / u64::from(w.max(1))).max(1) as u32,
            ),
            (None, Some(oh)) => (
                ((u64::from(w) * u64::from(oh)) / u64::from(h.max(1))).max(1) as u32,
                oh,
            ),
            (None, None) => (w, h),
        }
    }

    fn convert_rgb(&mut self, frame: &ff::frame::Video) -> Result<DecodedImage, VideoError> {
        let key = (frame.width(), frame.height(), frame.format());
        let (ow, oh) = self.out_size(frame.width(), frame.height());
        if self.scaler.as_ref().is_none_or(|(_, k)| *k != key) {
            let ctx = scaling::Context::get(
                frame.format(),
                frame.width(),
                frame.height(),
                ff::format::Pixel::RGB24,
                ow,
                oh,
                scaling::Flags::BILINEAR,
            )
            .map_err(|e| self.decode_error(e))?;
            self.scaler = Some((ctx, key));
        }
        let mut rgb = ff::frame::Video::empty();
        if let Some((scaler, _)) = self.scaler.as_mut() {
            scaler
                .run(frame, &mut rgb)
                .map_err(|e| VideoError::Decode {
                    frames: self.decoded,
                    message: ff_err(e),
                })?;
        }
        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
        let stride = rgb.stride(0);
        let data = rgb.data(0);
        let mut pixels = Vec::with_capacity(w * h * 3);
        for row in 0..h {
            pixels.extend_from_slice(&data[row * stride..row * stride + w * 3]);
        }
        Ok(DecodedImage {
            pixels,
            width: w as u32,
            height: h as u32,
            mode: ImageMode::Rgb,
        })
    }
}
