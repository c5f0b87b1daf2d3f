//! Whisper's log-mel features: the mel filter bank (computed here, as librosa's
//! `filters.mel(sr=16000, n_fft=400, n_mels=80)` with Slaney's scale and area
//! normalisation), and 30-second windows of 16 kHz audio turned into 80 x 3000
//! log-mel frames by candle's short-time Fourier transform.

use candle_transformers::models::whisper::{
    audio::pcm_to_mel, Config, N_FFT, N_FRAMES, N_SAMPLES, SAMPLE_RATE,
};

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

/// Splits 16 kHz mono samples into 30-second windows (at least one, so silence
/// still gets a window) and gives each window's 80 x 3000 log-mel frames.
pub fn windows(config: &Config, samples: &[f32], filters: &[f32]) -> Vec<Vec<f32>> {
    let n_mels = config.num_mel_bins;
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let end = (start + N_SAMPLES).min(samples.len());
        let mel = pcm_to_mel(config, &samples[start..end], filters);
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
}
