//! [`decode`]: encoded audio bytes to interleaved f32 samples.

use std::io::ErrorKind;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::DecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// Decoded audio: interleaved samples in [-1, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
    pub channels: usize,
}

impl Audio {
    /// Frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.samples.len() / self.channels.max(1)
    }

    /// Seconds of audio.
    pub fn duration(&self) -> f64 {
        self.frames() as f64 / f64::from(self.sample_rate.max(1))
    }

    /// One channel per vector.
    pub fn planar(&self) -> Vec<Vec<f32>> {
        let c = self.channels.max(1);
        (0..c)
            .map(|ch| self.samples.iter().skip(ch).step_by(c).copied().collect())
            .collect()
    }

    /// From one vector per channel.
    pub fn from_planar(planar: &[Vec<f32>], sample_rate: u32) -> Self {
        let channels = planar.len().max(1);
        let frames = planar.first().map_or(0, Vec::len);
        let mut samples = Vec::with_capacity(frames * channels);
        for i in 0..frames {
            for ch in planar {
                samples.push(ch.get(i).copied().unwrap_or(0.0));
            }
        }
        Self {
            samples,
            sample_rate,
            channels,
        }
    }

    /// The channels averaged into one.
    pub fn to_mono(&self) -> Self {
        if self.channels <= 1 {
            return self.clone();
        }
        let c = self.channels as f32;
        let samples = self
            .samples
            .chunks_exact(self.channels)
            .map(|f| f.iter().sum::<f32>() / c)
            .collect();
        Self {
            samples,
            sample_rate: self.sample_rate,
            channels: 1,
        }
    }
}

/// Frames a stream may fall short of its declared length by (encoder delay and
/// padding, a few MP3 frames) before it counts as truncated.
const SLACK_FRAMES: u64 = 4608;

/// Decodes `bytes` (the format is sniffed). Errors say what is wrong: not
/// audio, a codec this build cannot read, corrupt or truncated data.
/// A decoder that panics on hostile bytes gives an error, not a failed task.
pub fn decode(bytes: Vec<u8>) -> Result<Audio, String> {
    crate::decoder_guard::guarded("audio", move || decode_unguarded(bytes))
}

fn decode_unguarded(bytes: Vec<u8>) -> Result<Audio, String> {
    if bytes.is_empty() {
        return Err("empty audio (0 bytes)".into());
    }
    let stream = MediaSourceStream::new(Box::new(std::io::Cursor::new(bytes)), Default::default());
    let probed = symphonia::default::get_probe()
        .format(
            &Hint::new(),
            stream,
            &FormatOptions {
                enable_gapless: true,
                ..FormatOptions::default()
            },
            &MetadataOptions::default(),
        )
        .map_err(|e| format!("not audio that can be read (WAV, FLAC, MP3, Ogg Vorbis): {e}"))?;
    let mut format = probed.format;
    let track = format
        .default_track()
        .ok_or_else(|| "the file holds no audio track".to_string())?;
    let track_id = track.id;
    let params = track.codec_params.clone();
    let mut decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .map_err(|e| format!("unsupported audio codec: {e}"))?;
    let mut samples: Vec<f32> = Vec::new();
    let mut rate = params.sample_rate;
    let mut channels = params.channels.map(|c| c.count());
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            // The end of the stream (or of what is there: checked below).
            Err(SymphoniaError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(SymphoniaError::ResetRequired) => break,
            Err(e) => return Err(format!("corrupt audio container: {e}")),
        };
        if packet.track_id() != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(buf) => {
                let spec = *buf.spec();
                rate = Some(spec.rate);
                channels = Some(spec.channels.count());
                let mut out = SampleBuffer::<f32>::new(buf.capacity() as u64, spec);
                out.copy_interleaved_ref(buf);
                samples.extend_from_slice(out.samples());
            }
            Err(SymphoniaError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(format!("corrupt audio data: {e}")),
        }
    }
    let channels = channels
        .filter(|c| *c > 0)
        .ok_or_else(|| "the audio declares no channels".to_string())?;
    let sample_rate = rate
        .filter(|r| *r > 0)
        .ok_or_else(|| "the audio declares no sample rate".to_string())?;
    let frames = (samples.len() / channels) as u64;
    if let Some(declared) = params.n_frames {
        if frames + SLACK_FRAMES < declared {
            return Err(format!(
                "truncated audio: {frames} of the {declared} frames it declares"
            ));
        }
    }
    if frames == 0 {
        return Err("no audio frames".into());
    }
    Ok(Audio {
        samples,
        sample_rate,
        channels,
    })
}
