//! Times Whisper on the same clips three ways and checks they agree: regatta's
//! CPU encoder kernels with the cached decoder (the default), candle's encoder
//! with the cached decoder, and candle's encoder with candle's uncached decoder:
//! `cargo run -p regatta-actors --example whisper_timing -- [--kernels-only] [--int8] CLIP.wav [CLIP.wav ...]`
//! (the numeric crates are optimised even in debug builds). Reads the model
//! from `$REGATTA_WHISPER_DIR`. Prints one JSON line per way, then whether the
//! texts are the same.

use std::time::Instant;

use candle_core::Device;
use regatta_actors::whisper::{DecoderRoute, Transcriber};
use regatta_actors::{NetworkRoute, Precision};

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut paths: Vec<String> = std::env::args().skip(1).collect();
    // Only the default route, so the process's peak memory is that route's.
    let kernels_only = paths.first().is_some_and(|a| a == "--kernels-only");
    if kernels_only {
        paths.remove(0);
    }
    // `--int8`: the kernels' dense layers in int8.
    let precision = if paths.first().is_some_and(|a| a == "--int8") {
        paths.remove(0);
        Precision::Int8
    } else {
        Precision::F32
    };
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
    let dir = regatta_actors::whisper::default_dir();
    let mut texts = Vec::new();
    let routes = [
        (NetworkRoute::Kernels(precision), DecoderRoute::Cached),
        (NetworkRoute::Candle, DecoderRoute::Cached),
        (NetworkRoute::Candle, DecoderRoute::Uncached),
    ];
    for &(encoder, decoder) in &routes[..if kernels_only { 1 } else { 3 }] {
        let mut t = Transcriber::load_route(&dir, Device::Cpu, encoder)?;
        t.transcribe_via(&refs[..1], decoder)?; // warm up
        let started = Instant::now();
        let out = t.transcribe_via(&refs, decoder)?;
        let line = serde_json::json!({
            "encoder": format!("{encoder:?}"),
            "decoder": format!("{decoder:?}"),
            "clips": refs.len(),
            "seconds": (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
            "texts": out,
        });
        println!("{line}");
        texts.push(out);
    }
    println!(
        "{{\"same_text\": {}}}",
        texts.windows(2).all(|w| w[0] == w[1])
    );
    Ok(())
}
