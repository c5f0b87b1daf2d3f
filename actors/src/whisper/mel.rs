//! Whisper's log-mel features: the mel filter bank (computed here, as librosa's
//! `filters.mel(sr=16000, n_fft=400, n_mels=80)` with Slaney's scale and area
//! normalisation), and 30-second windows of 16 kHz audio turned into 80 x 3000
//! log-mel frames. The short-time Fourier transform is realfft's, frames in
//! parallel, computing what candle's `pcm_to_mel` does (its framing, padding,
//! clamping and scaling; a test checks the two agree) without its recursive
//! 400-point FFT, which took a sixth of a transcription's time.

use std::sync::Arc;

use candle_transformers::models::whisper::{
    Config, HOP_LENGTH, N_FFT, N_FRAMES, N_SAMPLES, SAMPLE_RATE,
};
use rayon::prelude::*;
use realfft::{RealFftPlanner, RealToComplex};

/// Hertz to mels on Slaney's scale: linear below 1 kHz, logarithmic above.
fn hz_to_mel(f: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let log_step = 6.4f64.ln() / 27.0;
    if f >= min_log_hz {
        min_log_mel + (f / min_log_hz).ln() / log_step
    } else {
        f / f_sp
    }
}

fn mel_to_hz(m: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let log_step = 6.4f64.ln() / 27.0;
    if m >= min_log_mel {
        min_log_hz * (log_step * (m - min_log_mel)).exp()
    } else {
        f_sp * m
    }
}

/// The `n_mels` x (N_FFT / 2 + 1) filter bank, row-major.
pub fn mel_filters(n_mels: usize) -> Vec<f32> {
    let bins = N_FFT / 2 + 1;
    let sr = SAMPLE_RATE as f64;
    let fft_freqs: Vec<f64> = (0..bins).map(|i| i as f64 * sr / N_FFT as f64).collect();
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(sr / 2.0));
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut out = vec![0f32; n_mels * bins];
    for m in 0..n_mels {
        let (left, centre, right) = (mel_f[m], mel_f[m + 1], mel_f[m + 2]);
        let norm = 2.0 / (right - left);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let rising = (f - left) / (centre - left);
            let falling = (right - f) / (right - centre);
            out[m * bins + k] = (rising.min(falling).max(0.0) * norm) as f32;
        }
    }
    out
}

/// The `n_mels x frames` log-mel spectrogram of `samples`, as candle's
/// `pcm_to_mel` lays it out: frames every HOP_LENGTH samples from the first
/// (no centring), the audio padded with zeros to a whole number of 30-second
/// chunks plus one, powers of the mirrored bins doubled, `log10` clamped at
/// 1e-10, then at 8 below the loudest value, and scaled by `x / 4 + 1`.
pub fn log_mel(samples: &[f32], filters: &[f32], n_mels: usize) -> Vec<f32> {
    // A frame of zeros: every bin's power is clamped to 1e-10.
    let silent: f32 = 1e-10f32.log10();
    let bins = N_FFT / 2 + 1;
    let two_pi = std::f32::consts::PI + std::f32::consts::PI;
    let hann: Vec<f32> = (0..N_FFT)
        .map(|i| 0.5 * (1.0 - ((two_pi * i as f32) / N_FFT as f32).cos()))
        .collect();
    let pad = N_FRAMES / 2;
    let n_len = (samples.len() / HOP_LENGTH).div_ceil(pad) * pad + pad;
    let fft: Arc<dyn RealToComplex<f32>> = RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
    // Time-major while computing: one row of mel bins per frame.
    let mut frames = vec![0f32; n_len * n_mels];
    frames.par_chunks_mut(n_mels).enumerate().for_each_init(
        || {
            (
                fft.make_input_vec(),
                fft.make_output_vec(),
                fft.make_scratch_vec(),
                vec![0f32; bins],
            )
        },
        |(input, spectrum, scratch, power), (i, row)| {
            let offset = i * HOP_LENGTH;
            if offset >= samples.len() {
                // All padding: zero power in every bin, the floor's log. Most
                // of a short clip's window is this.
                row.fill(silent);
                return;
            }
            for (j, x) in input.iter_mut().enumerate() {
                *x = samples.get(offset + j).map_or(0.0, |s| hann[j] * s);
            }
            if fft.process_with_scratch(input, spectrum, scratch).is_err() {
                // Only wrong buffer lengths fail, and these are the plan's own.
                row.fill(silent);
                return;
            }
            for (k, (p, c)) in power.iter_mut().zip(spectrum.iter()).enumerate() {
                let mirrored = if k > 0 && k < N_FFT / 2 { 2.0 } else { 1.0 };
                *p = (c.re * c.re + c.im * c.im) * mirrored;
            }
            for (m, out) in row.iter_mut().enumerate() {
                let sum: f32 = power
                    .iter()
                    .zip(&filters[m * bins..(m + 1) * bins])
                    .map(|(p, f)| p * f)
                    .sum();
                *out = sum.max(1e-10).log10();
            }
        },
    );
    let max = frames.iter().copied().fold(f32::NEG_INFINITY, f32::max) - 8.0;
    let mut mel = vec![0f32; n_len * n_mels];
    for (i, row) in frames.chunks_exact(n_mels).enumerate() {
        for (m, v) in row.iter().enumerate() {
            mel[m * n_len + i] = v.max(max) / 4.0 + 1.0;
        }
    }
    mel
}

/// Splits 16 kHz mono samples into 30-second windows (at least one, so silence
/// still gets a window) and gives each window's 80 x 3000 log-mel frames.
pub fn windows(config: &Config, samples: &[f32], filters: &[f32]) -> Vec<Vec<f32>> {
    let n_mels = config.num_mel_bins;
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let end = (start + N_SAMPLES).min(samples.len());
        let mel = log_mel(&samples[start..end], filters, n_mels);
        // pcm_to_mel pads to at least N_FRAMES frames; keep the first N_FRAMES.
        let frames = mel.len() / n_mels;
        let mut window = Vec::with_capacity(n_mels * N_FRAMES);
        for m in 0..n_mels {
            window.extend_from_slice(&mel[m * frames..m * frames + N_FRAMES.min(frames)]);
            window.extend(std::iter::repeat_n(0f32, N_FRAMES.saturating_sub(frames)));
        }
        out.push(window);
        start = end;
        if start >= samples.len() {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_filter_is_a_triangle_peaking_at_its_centre_with_unit_area_in_mels() {
        let filters = mel_filters(80);
        let bins = N_FFT / 2 + 1;
        assert_eq!(filters.len(), 80 * bins);
        for m in 0..80 {
            let row = &filters[m * bins..(m + 1) * bins];
            assert!(row.iter().all(|&w| w >= 0.0));
            let peak = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(k, _)| k)
                .unwrap();
            // Non-zero weights form one contiguous run around the peak.
            let nz: Vec<usize> = (0..bins).filter(|&k| row[k] > 0.0).collect();
            assert!(!nz.is_empty(), "filter {m} is empty");
            assert_eq!(nz.last().unwrap() - nz.first().unwrap() + 1, nz.len());
            assert!(nz.contains(&peak));
        }
        // Higher filters are wider in hertz, so lower in height (Slaney's norm).
        let max = |m: usize| {
            filters[m * bins..(m + 1) * bins]
                .iter()
                .cloned()
                .fold(0f32, f32::max)
        };
        assert!(max(70) < max(10));
        // The first filter's second bin (40 Hz), worked by hand from Slaney's formula.
        assert!((filters[1] - 0.024_862_3).abs() < 1e-4, "{}", filters[1]);
    }

    #[test]
    fn slaney_scale_round_trips() {
        for f in [0.0, 440.0, 999.0, 1000.0, 4321.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(f)) - f).abs() < 1e-6);
        }
    }

    #[test]
    fn log_mel_agrees_with_candles_pcm_to_mel() {
        let filters = mel_filters(80);
        for len in [0usize, 1, 4_000, 16_000 * 7 + 123, N_SAMPLES] {
            let samples: Vec<f32> = (0..len)
                .map(|i| {
                    let t = i as f32 / 16_000.0;
                    0.4 * (2.0 * std::f32::consts::PI * (180.0 + 90.0 * t) * t).sin()
                        + 0.05
                            * (((i as u32).wrapping_mul(2_654_435_761) >> 16) as f32 / 65_536.0
                                - 0.5)
                })
                .collect();
            let ours = log_mel(&samples, &filters, 80);
            let config: Config = serde_json::from_value(serde_json::json!({
                "num_mel_bins": 80, "max_source_positions": 1500, "d_model": 384,
                "encoder_attention_heads": 6, "encoder_layers": 4, "vocab_size": 51864,
                "max_target_positions": 448, "decoder_attention_heads": 6,
                "decoder_layers": 4, "suppress_tokens": []
            }))
            .unwrap();
            let theirs = candle_transformers::models::whisper::audio::pcm_to_mel(
                &config, &samples, &filters,
            );
            assert_eq!(ours.len(), theirs.len(), "{len} samples");
            let diffs: Vec<f32> = ours
                .iter()
                .zip(&theirs)
                .map(|(a, b)| (a - b).abs())
                .collect();
            let worst = diffs.iter().copied().fold(0f32, f32::max);
            let mean = diffs.iter().sum::<f32>() / diffs.len().max(1) as f32;
            // Two FFTs' rounding: candle's recursive one in f32 strays most in
            // the quietest bins, a few ten-thousandths of a log10 unit.
            assert!(
                worst < 1e-3 && mean < 1e-5,
                "{len} samples: largest difference {worst}, mean {mean}"
            );
        }
    }
}
