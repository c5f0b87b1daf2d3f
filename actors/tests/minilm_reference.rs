//! all-MiniLM-L6-v2 on regatta's kernels (and candle's BERT) against reference embeddings.
//!
//! The reference is `$REGATTA_MINILM_REFERENCE`, else the sentence-transformers
//! fixture beside the repository (`../shared/fixtures/minilm/reference.json`). Where
//! neither exists, `scripts/test` writes one with an independent numpy BERT
//! (`scripts/minilm_reference.py`) and sets the variable.

// Test scaffolding: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use candle_core::Device;
use regatta_actors::minilm::{self, SentenceEmbedder};
use regatta_actors::{NetworkRoute, Precision};

fn repo() -> PathBuf {
    regatta_common::manifest_dir!().join("..")
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
fn the_kernels_give_candles_embeddings_across_passes_and_lengths() {
    let dir = model_dir();
    let kernels =
        SentenceEmbedder::load_route(&dir, Device::Cpu, NetworkRoute::Kernels(Precision::F32))
            .unwrap();
    let candle = SentenceEmbedder::load_route(&dir, Device::Cpu, NetworkRoute::Candle).unwrap();
    // Lengths from 2 to 256 tokens, enough long texts for several passes of
    // minilm::PASS_BYTES, in an order that is not sorted by length.
    let words = "Streaming engines keep memory bounded while every core stays busy";
    let texts: Vec<String> = (0..96)
        .map(|i| {
            let n = (i * 37) % 230 + 1;
            words
                .split(' ')
                .cycle()
                .take(n)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .chain(sentences())
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let tokens: usize = refs.iter().map(|t| model_token_count(&kernels, t)).sum();
    let per_pass = minilm::PASS_BYTES / ((7 * minilm::DIM + 4 * minilm::DIM) * 4);
    assert!(
        tokens > 2 * per_pass,
        "{tokens} tokens fit in two passes of {per_pass}"
    );
    let a = kernels.embed(&refs).unwrap();
    let b = candle.embed(&refs).unwrap();
    for (i, (x, y)) in a.chunks(minilm::DIM).zip(b.chunks(minilm::DIM)).enumerate() {
        let y: Vec<f64> = y.iter().map(|v| *v as f64).collect();
        let c = cosine(x, &y);
        assert!(c > 0.99999, "text {i}: cosine {c}");
    }
}

#[test]
fn int8_embeddings_stay_within_a_hundredth_of_cosine_of_f32() {
    let dir = model_dir();
    let f32s =
        SentenceEmbedder::load_route(&dir, Device::Cpu, NetworkRoute::Kernels(Precision::F32))
            .unwrap();
    let int8 =
        SentenceEmbedder::load_route(&dir, Device::Cpu, NetworkRoute::Kernels(Precision::Int8))
            .unwrap();
    let words =
        "Dynamic quantisation keeps each row's own scale so short and long texts both survive";
    let texts: Vec<String> = (1..40)
        .map(|i| {
            words
                .split(' ')
                .cycle()
                .take(i * 5)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .chain(sentences())
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let a = int8.embed(&refs).unwrap();
    let b = f32s.embed(&refs).unwrap();
    let mut sum = 0.0;
    for (i, (x, y)) in a.chunks(minilm::DIM).zip(b.chunks(minilm::DIM)).enumerate() {
        let y: Vec<f64> = y.iter().map(|v| *v as f64).collect();
        let c = cosine(x, &y);
        assert!(c >= 0.99, "text {i}: int8 against f32 cosine {c}");
        sum += c;
    }
    // Not a copy of the f32 path: quantisation moves every embedding a little.
    let mean = sum / refs.len() as f64;
    assert!(mean < 0.999_999, "mean cosine {mean}: int8 looks like f32");
}

fn model_token_count(model: &SentenceEmbedder, text: &str) -> usize {
    model.token_ids(text).unwrap().len()
}

#[test]
fn a_text_of_100_000_words_is_cut_at_the_models_input_like_its_first_words() {
    let model = SentenceEmbedder::load(&model_dir(), Device::Cpu).unwrap();
    let words: Vec<String> = (0..100_000).map(|i| format!("word{}", i % 97)).collect();
    let huge = words.join(" ");
    // Far more words than the model's 256 tokens: both are cut to the same ids.
    let prefix = words[..400].join(" ");
    assert_eq!(
        model.token_ids(&huge).unwrap(),
        model.token_ids(&prefix).unwrap()
    );
    let got = model.embed(&[huge.as_str(), prefix.as_str()]).unwrap();
    let (a, b) = got.split_at(minilm::DIM);
    let b: Vec<f64> = b.iter().map(|v| *v as f64).collect();
    assert!(cosine(a, &b) > 0.999_999, "cosine {}", cosine(a, &b));
}

#[test]
fn a_missing_model_directory_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = SentenceEmbedder::load(dir.path(), Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("config.json") && e.contains("missing"), "{e}");
}
