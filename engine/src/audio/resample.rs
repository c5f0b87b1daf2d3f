//! [`resample`]: a band-limited (windowed-sinc) change of sample rate.

use rubato::{
    Resampler, SincFixedIn, SincInterpolationParameters, SincInterpolationType, WindowFunction,
};

use super::decode::Audio;

/// Input frames per resampler call.
const CHUNK: usize = 4096;

/// `audio` at `rate`: ceil(frames × rate / original rate) frames, aligned with
/// the input (rubato's fixed-input sinc resampler starts half a filter early,
/// so its output needs no delay removed; the tests check the alignment).
pub fn resample(audio: &Audio, rate: u32) -> Result<Audio, String> {
    if rate == 0 || rate == audio.sample_rate {
        return Ok(audio.clone());
    }
    let from = u64::from(audio.sample_rate);
    let planar = audio.planar();
    let n = planar.first().map_or(0, Vec::len);
    let expected = (n as u64 * u64::from(rate)).div_ceil(from) as usize;
    let params = SincInterpolationParameters {
        sinc_len: 256,
        f_cutoff: 0.95,
        interpolation: SincInterpolationType::Cubic,
        oversampling_factor: 128,
        window: WindowFunction::BlackmanHarris2,
    };
    let mut r = SincFixedIn::<f32>::new(
        f64::from(rate) / from as f64,
        1.0,
        params,
        CHUNK,
        planar.len(),
    )
    .map_err(|e| format!("resampling to {rate} Hz: {e}"))?;
    let mut out: Vec<Vec<f32>> = vec![Vec::with_capacity(expected + CHUNK); planar.len()];
    let mut pos = 0;
    // Zeros after the end flush the filter.
    while out.first().map_or(0, Vec::len) < expected {
        let block: Vec<Vec<f32>> = planar
            .iter()
            .map(|ch| {
                let mut b = vec![0.0f32; CHUNK];
                if pos < n {
                    let end = (pos + CHUNK).min(n);
                    b[..end - pos].copy_from_slice(&ch[pos..end]);
                }
                b
            })
            .collect();
        let done = r
            .process(&block, None)
            .map_err(|e| format!("resampling to {rate} Hz: {e}"))?;
        for (o, d) in out.iter_mut().zip(done) {
            o.extend(d);
        }
        pos += CHUNK;
    }
    for o in &mut out {
        o.truncate(expected);
    }
    Ok(Audio::from_planar(&out, rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, rate: u32, seconds: f32) -> Audio {
        let n = (rate as f32 * seconds) as usize;
        Audio {
            samples: (0..n)
                .map(|i| (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
                .collect(),
            sample_rate: rate,
            channels: 1,
        }
    }

    #[test]
    fn keeps_the_duration_and_the_tone_and_removes_what_the_new_rate_cannot_hold() {
        let a = resample(&sine(440.0, 44_100, 1.0), 16_000).unwrap();
        assert_eq!(a.sample_rate, 16_000);
        assert_eq!(a.frames(), 16_000);
        // Aligned: the resampled tone matches the tone computed at 16 kHz.
        let want = sine(440.0, 16_000, 1.0);
        let err: f32 = a.samples[1000..15_000]
            .iter()
            .zip(&want.samples[1000..15_000])
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        // Within a sample (a one-sample shift would show as 0.17 at 440 Hz).
        assert!(err < 0.12, "max error {err}");
        // 12 kHz is above the new Nyquist (8 kHz): band-limiting removes it.
        let high = resample(&sine(12_000.0, 44_100, 0.5), 16_000).unwrap();
        let rms = (high.samples[500..7500].iter().map(|x| x * x).sum::<f32>() / 7000.0).sqrt();
        assert!(rms < 0.01, "aliased energy {rms}");
        // A click stays where it was in time.
        let mut click = vec![0.0f32; 44_100];
        click[22_050] = 1.0;
        let c = resample(
            &Audio {
                samples: click,
                sample_rate: 44_100,
                channels: 1,
            },
            16_000,
        )
        .unwrap();
        let peak = (0..c.samples.len())
            .max_by(|a, b| c.samples[*a].total_cmp(&c.samples[*b]))
            .unwrap();
        assert!((7999..=8001).contains(&peak), "{peak}");
    }
}
