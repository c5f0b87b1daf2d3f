//! Times all-MiniLM-L6-v2 (or any BERT-family model) on regatta's CPU kernels
//! against candle's BERT on the same texts, and checks they agree:
//! `cargo run -p regatta-actors --example embed_timing -- TEXTS.json [ROUNDS] [--compare EMB.json] [--routes candle,f32,int8]`
//! where TEXTS.json is a JSON list of strings (benches/minilm_kernels.sh writes
//! them and times sentence-transformers on the same file) and EMB.json the
//! peer's embeddings of them, which each route's are compared with. The numeric
//! crates are optimised even in debug builds. Reads the model from
//! `$REGATTA_MINILM_DIR`. Prints one JSON line per route: its speed and its
//! lowest cosine to the first route's embeddings and to the peer's.

use std::time::Instant;

use candle_core::Device;
use regatta_actors::minilm::{self, SentenceEmbedder};
use regatta_actors::{NetworkRoute, Precision};

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .ok_or("give a JSON file holding a list of texts")?;
    let rounds: usize = match args.get(1) {
        Some(r) if !r.starts_with("--") => r.parse()?,
        _ => 3,
    };
    let peer: Option<Vec<Vec<f32>>> = match args.iter().position(|a| a == "--compare") {
        Some(i) => {
            let file = args.get(i + 1).ok_or("--compare needs a file")?;
            Some(serde_json::from_str(&std::fs::read_to_string(file)?)?)
        }
        None => None,
    };
    let routes = match args.iter().position(|a| a == "--routes") {
        Some(i) => args.get(i + 1).ok_or("--routes needs a list")?.as_str(),
        None => "candle,f32,int8",
    }
    .split(',')
    .map(|r| match r {
        "candle" => Ok(NetworkRoute::Candle),
        other => other
            .parse::<Precision>()
            .map(NetworkRoute::Kernels)
            .map_err(|e| format!("--routes: {e} (or candle)")),
    })
    .collect::<Result<Vec<_>, _>>()?;
    let texts: Vec<String> = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let dir = minilm::default_dir();
    let mut outputs = Vec::new();
    for route in routes {
        let model = SentenceEmbedder::load_route(&dir, Device::Cpu, route)?;
        model.embed(&refs[..refs.len().min(8)])?; // warm up
        let mut best = f64::MAX;
        let mut out = Vec::new();
        for _ in 0..rounds.max(1) {
            let started = Instant::now();
            // Batches of 64, as the engine's model actors send them.
            out.clear();
            for batch in refs.chunks(64) {
                out.extend(model.embed(batch)?);
            }
            best = best.min(started.elapsed().as_secs_f64());
        }
        let tokens: usize = refs
            .iter()
            .map(|t| model.token_ids(t).map(|ids| ids.len()))
            .sum::<Result<usize, _>>()?;
        let dim = model.dim();
        let lowest = |other: &[f32]| {
            out.chunks(dim)
                .zip(other.chunks(dim))
                .map(|(a, b)| cosine(a, b))
                .fold(1.0, f64::min)
        };
        let vs_first = outputs.first().map(|first: &Vec<f32>| lowest(first));
        let vs_peer = peer.as_ref().map(|p| lowest(&p.concat()));
        let line = serde_json::json!({
            "engine": match route {
                NetworkRoute::Candle => "regatta-candle".to_string(),
                NetworkRoute::Kernels(p) => format!("regatta-kernels-{p}"),
            },
            "texts": refs.len(),
            "tokens": tokens,
            "best_s": (best * 1e4).round() / 1e4,
            "texts_per_s": (refs.len() as f64 / best * 10.0).round() / 10.0,
            "lowest_cosine_vs_first_route": vs_first,
            "lowest_cosine_vs_peer": vs_peer,
        });
        println!("{line}");
        outputs.push(out);
    }
    Ok(())
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-30)
}
