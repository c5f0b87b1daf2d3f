//! all-MiniLM-L6-v2 in candle against reference embeddings.
//!
//! The reference is `$REGATTA_MINILM_REFERENCE`, else the sentence-transformers
//! fixture beside the repository (`../shared/fixtures/minilm/reference.json`). Where
//! neither exists, `scripts/test` writes one with an independent numpy BERT
//! (`scripts/minilm_reference.py`) and sets the variable.

// Test scaffolding: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use candle_core::Device;
use regatta_actors::minilm::{self, SentenceEmbedder};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn model_dir() -> PathBuf {
    std::env::var_os("REGATTA_MINILM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("models").join(minilm::NAME))
}

fn reference() -> serde_json::Value {
    let path = std::env::var_os("REGATTA_MINILM_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/fixtures/minilm/reference.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run scripts/test, which makes the reference)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

fn sentences() -> Vec<String> {
    let long = vec!["Streaming execution keeps memory bounded while GPUs stay busy."; 60].join(" ");
    vec![
        "A man is eating food.".into(),
        "A man is riding a horse on a sunny beach.".into(),
        "The quick brown fox jumps over the lazy dog.".into(),
        "Multimodal data pipelines stream images, audio and text through models.".into(),
        "Raft replicates a log across three servers so that a leader failure loses nothing.".into(),
        "naïve café résumé — unicode survives tokenization".into(),
        String::new(),
        long,
    ]
}

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * y).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y.powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn embeddings_match_the_reference_within_cosine_0_999() {
    let model = SentenceEmbedder::load(&model_dir(), Device::Cpu).unwrap();
    let reference = reference();
    let sentences = sentences();
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    // One padded batch, as the reference was made.
    let got = model.embed(&refs).unwrap();
    let expected = reference["embeddings"].as_array().unwrap();
    assert_eq!(expected.len(), sentences.len());
    for (i, want) in expected.iter().enumerate() {
        let want: Vec<f64> = want
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let row = &got[i * minilm::DIM..(i + 1) * minilm::DIM];
        let c = cosine(row, &want);
        assert!(c >= 0.999, "sentence {i}: cosine {c}");
        let max_diff = row
            .iter()
            .zip(&want)
            .map(|(a, b)| (*a as f64 - b).abs())
            .fold(0.0, f64::max);
        assert!(max_diff <= 1e-4, "sentence {i}: max abs diff {max_diff}");
        let norm: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "sentence {i}: norm {norm}");
    }
}

#[test]
fn token_ids_match_the_reference_including_truncation() {
    let model = SentenceEmbedder::load(&model_dir(), Device::Cpu).unwrap();
    let reference = reference();
    let counts: Vec<u64> = reference["token_counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    for (i, s) in sentences().iter().enumerate() {
        let ids = model.token_ids(s).unwrap();
        assert_eq!(ids.len() as u64, counts[i], "sentence {i}");
        assert_eq!(ids.first(), Some(&101), "sentence {i} starts with [CLS]");
        assert_eq!(ids.last(), Some(&102), "sentence {i} ends with [SEP]");
        if let Some(want) = reference.get("token_ids") {
            let want: Vec<u64> = want[i]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            let ids: Vec<u64> = ids.iter().map(|&x| x as u64).collect();
            assert_eq!(ids, want, "sentence {i}");
        }
    }
}

#[test]
fn one_sentence_alone_equals_the_same_sentence_in_a_padded_batch() {
    let model = SentenceEmbedder::load(&model_dir(), Device::Cpu).unwrap();
    let s = sentences();
    let alone = model.embed(&[s[0].as_str()]).unwrap();
    let batch = model.embed(&[s[0].as_str(), s[7].as_str()]).unwrap();
    let want: Vec<f64> = alone.iter().map(|x| *x as f64).collect();
    assert!(cosine(&batch[..minilm::DIM], &want) > 0.99999);
}

#[test]
fn a_missing_model_directory_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = SentenceEmbedder::load(dir.path(), Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("config.json") && e.contains("missing"), "{e}");
}
