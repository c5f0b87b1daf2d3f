//! Sentence embeddings in Rust from any BERT-family
//! sentence-transformers model: all-MiniLM-L6-v2 built in, and BGE, E5, GTE
//! and the like from their directories. The pooling (mean or CLS), the
//! normalisation, the width and the input length come from the model's own
//! files; inputs longer than its `max_seq_length` are cut there. On the CPU
//! the encoder runs on regatta's own kernels ([`BertEncoder`]), on a GPU on
//! candle's BERT.
//!
//! The model is read from a local directory in the Hugging Face layout
//! (`config.json`, `model.safetensors`, `tokenizer.json`, and a
//! sentence-transformers model's `modules.json` and `1_Pooling/`);
//! `regatta models pull all-MiniLM-L6-v2` makes one. Nothing is downloaded at
//! run time.

mod embedder;
mod encoder;
mod factory;
mod layout;

use std::path::PathBuf;

pub use embedder::{SentenceEmbedder, PASS_BYTES};
pub use encoder::{BertConfig, BertEncoder};
pub use factory::EmbedderFactory;
pub use layout::{EmbedderLayout, Pooling, SUPPORTED_ARCHITECTURES};

/// The built-in model's canonical name, as `embed_text(col, 'all-MiniLM-L6-v2')` names it.
pub const NAME: &str = "all-MiniLM-L6-v2";

/// all-MiniLM-L6-v2's embedding width.
pub const DIM: usize = 384;

/// True for the names the built-in model answers to (case-insensitive; `minilm` for short).
pub fn is_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == NAME.to_ascii_lowercase() || n == "minilm" || n == "sentence-transformers/all-minilm-l6-v2"
}

/// Where the built-in model is read from: `$REGATTA_MINILM_DIR`, else
/// `models/all-MiniLM-L6-v2` under the current directory.
pub fn default_dir() -> PathBuf {
    std::env::var_os("REGATTA_MINILM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("models").join(NAME))
}
