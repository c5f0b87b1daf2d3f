//! The transcriber's tests: the routes agree, and int8 keeps the text.

use super::*;

/// The checkout's Whisper tiny.en (`REGATTA_WHISPER_DIR`; scripts/test sets it).
fn model_dir() -> std::path::PathBuf {
    std::env::var_os("REGATTA_WHISPER_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| regatta_common::manifest_dir!().join("../models/whisper-tiny.en"))
}

/// Both cached decoders (the kernels' on the CPU, candle's on GPUs) give
/// the tokens of candle's uncached decoder over the same encoder output.
#[test]
fn the_cached_decoders_give_the_tokens_of_candles_uncached_one() {
    let dir = model_dir();
    assert!(
        dir.join("model.safetensors").is_file(),
        "{}: run scripts/fetch_whisper.sh",
        dir.display()
    );
    let mut t = Transcriber::load_with(
        &dir,
        Device::Cpu,
        NetworkRoute::Kernels(Precision::F32),
        true,
    )
    .unwrap();
    // Three windows: a chirp, a chord with noise, silence.
    let n = 16_000 * 6;
    let chirp: Vec<f32> = (0..n)
        .map(|i| {
            let s = i as f32 / 16_000.0;
            0.3 * (2.0 * std::f32::consts::PI * (200.0 + 150.0 * s) * s).sin()
        })
        .collect();
    let chord: Vec<f32> = (0..n)
        .map(|i| {
            let s = i as f32 / 16_000.0;
            let noise = ((i as u32).wrapping_mul(2_654_435_761) >> 16) as f32 / 65_536.0 - 0.5;
            0.2 * (2.0 * std::f32::consts::PI * 330.0 * s).sin()
                + 0.2 * (2.0 * std::f32::consts::PI * 440.0 * s).sin()
                + 0.05 * noise
        })
        .collect();
    let silence = vec![0f32; n];
    let mut flat = Vec::new();
    for clip in [&chirp, &chord, &silence] {
        for w in mel::windows(&t.config, clip, &t.filters) {
            flat.extend(w);
        }
    }
    let n_mels = t.config.num_mel_bins;
    let mel = Tensor::from_vec(flat, (3, n_mels, N_FRAMES), &Device::Cpu).unwrap();
    let cached = t.decode(&mel).unwrap();
    let uncached = t.decode_uncached(&mel).unwrap();
    assert!(
        t.kernels.is_some(),
        "a CPU transcriber decodes on the kernels"
    );
    assert_eq!(cached, uncached);
    let mut c = Transcriber::load_route(&dir, Device::Cpu, NetworkRoute::Candle).unwrap();
    assert!(c.kernels.is_none());
    assert_eq!(c.decode(&mel).unwrap(), c.decode_uncached(&mel).unwrap());
    assert!(
        cached.iter().any(|r| !r.is_empty()),
        "nothing decoded: {cached:?}"
    );
}

/// A clip of `text` spoken by flite (scripts/setup.sh installs it), 16 kHz mono.
fn spoken(text: &str) -> Vec<f32> {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("clip.wav");
    let status = std::process::Command::new("flite")
        .args(["-t", text, "-o"])
        .arg(&wav)
        .status()
        .expect("flite (scripts/setup.sh installs it)");
    assert!(status.success(), "flite failed on {text:?}");
    let audio = regatta_engine::audio::decode(std::fs::read(&wav).unwrap()).unwrap();
    resample(&audio.to_mono(), SAMPLE_RATE as u32)
        .unwrap()
        .samples
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-30)
}

#[test]
fn the_kernel_encoder_agrees_with_candles_and_the_transcripts_are_the_same() {
    let dir = model_dir();
    let mut kernels =
        Transcriber::load_route(&dir, Device::Cpu, NetworkRoute::Kernels(Precision::F32)).unwrap();
    let mut candle = Transcriber::load_route(&dir, Device::Cpu, NetworkRoute::Candle).unwrap();
    assert!(kernels.kernels.is_some() && candle.kernels.is_none());
    let clips: Vec<Vec<f32>> = [
        "The birch canoe slid on the smooth planks.",
        "Glue the sheet to the dark blue background.",
        "It's easy to tell the depth of a well.",
        "These days a chicken leg is a rare dish.",
    ]
    .iter()
    .map(|t| spoken(t))
    .collect();
    // The encoder's states, position by position: candle's GELU is the
    // tanh approximation, Whisper's (and the kernels') the exact one, so
    // they agree closely, not bit for bit.
    let n_mels = kernels.config.num_mel_bins;
    let window: Vec<f32> = mel::windows(&kernels.config, &clips[0], &kernels.filters)
        .into_iter()
        .flatten()
        .collect();
    let mel = Tensor::from_vec(window, (1, n_mels, N_FRAMES), &Device::Cpu).unwrap();
    let a: Vec<f32> = kernels
        .encode(&mel)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let b: Vec<f32> = candle
        .encode(&mel)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(a.len(), b.len());
    let d = kernels.kernels.as_ref().unwrap().0.width();
    let worst = a
        .chunks(d)
        .zip(b.chunks(d))
        .map(|(x, y)| cosine(x, y))
        .fold(1.0, f64::min);
    assert!(worst > 0.999, "lowest per-position cosine {worst}");
    let refs: Vec<&[f32]> = clips.iter().map(Vec::as_slice).collect();
    let got = kernels.transcribe(&refs).unwrap();
    assert_eq!(got, candle.transcribe(&refs).unwrap());
    assert!(got[0].to_lowercase().contains("planks"), "{got:?}");
}

#[test]
fn int8_kernels_transcribe_the_clips_as_f32_does() {
    let dir = model_dir();
    let mut f32s =
        Transcriber::load_route(&dir, Device::Cpu, NetworkRoute::Kernels(Precision::F32)).unwrap();
    let mut int8 =
        Transcriber::load_route(&dir, Device::Cpu, NetworkRoute::Kernels(Precision::Int8)).unwrap();
    let clips: Vec<Vec<f32>> = [
        "The birch canoe slid on the smooth planks.",
        "Rice is often served in round bowls.",
        "The juice of lemons makes fine punch.",
        "The box was thrown beside the parked truck.",
    ]
    .iter()
    .map(|t| spoken(t))
    .collect();
    let refs: Vec<&[f32]> = clips.iter().map(Vec::as_slice).collect();
    let want = f32s.transcribe(&refs).unwrap();
    let got = int8.transcribe(&refs).unwrap();
    assert_eq!(got, want);
    assert!(got[1].to_lowercase().contains("bowls"), "{got:?}");
}
