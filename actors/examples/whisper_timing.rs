//! Times Whisper's greedy decoding, regatta's cached decoder against candle's
//! uncached one, on the same audio and encoder, and checks they agree:
//! `cargo run -p regatta-actors --example whisper_timing -- CLIP.wav [CLIP.wav ...]`
//! (the numeric crates are optimised even in debug builds). Reads the model
//! from `$REGATTA_WHISPER_DIR`.

use std::time::Instant;

use candle_core::Device;
use regatta_actors::whisper::{DecoderRoute, Transcriber};

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        return Err("give one or more WAV/FLAC clips".into());
    }
    let mut clips = Vec::new();
    for p in &paths {
        let audio = regatta_engine::audio::decode(std::fs::read(p)?)?;
        let mono = regatta_engine::audio::resample(&audio.to_mono(), 16_000)?;
        clips.push(mono.samples);
    }
    let refs: Vec<&[f32]> = clips.iter().map(Vec::as_slice).collect();
    let mut t = Transcriber::load(&regatta_actors::whisper::default_dir(), Device::Cpu)?;
    t.transcribe(&refs)?; // warm up
    let mut texts = Vec::new();
    for route in [DecoderRoute::Uncached, DecoderRoute::Cached] {
        let started = Instant::now();
        let out = t.transcribe_via(&refs, route)?;
        println!(
            "{route:?}: {:.3} s for {} clips",
            started.elapsed().as_secs_f64(),
            refs.len()
        );
        texts.push(out);
    }
    println!("same text: {}", texts[0] == texts[1]);
    Ok(())
}
