//! all-MiniLM-L6-v2 sentence embeddings in Rust (candle): BERT, mean pooling over the
//! attention mask, L2 normalisation, 384 dimensions, inputs truncated at 256 tokens.
//!
//! The model is read from a local directory holding `config.json`,
//! `model.safetensors` and `tokenizer.json` (`scripts/fetch_model.sh` makes one);
//! nothing is downloaded at run time.

mod embedder;
mod factory;

use std::path::PathBuf;

pub use embedder::MiniLm;
pub use factory::MiniLmFactory;

/// The model's canonical name, as `embed_text(col, 'all-MiniLM-L6-v2')` names it.
pub const NAME: &str = "all-MiniLM-L6-v2";

/// Embedding dimensions.
pub const DIM: usize = 384;

/// Tokens per input, `[CLS]` and `[SEP]` included (sentence-transformers' setting).
pub const MAX_TOKENS: usize = 256;

/// True for the names this model answers to (case-insensitive; `minilm` for short).
pub fn is_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == NAME.to_ascii_lowercase() || n == "minilm" || n == "sentence-transformers/all-minilm-l6-v2"
}

/// Where the model is read from: `$REGATTA_MINILM_DIR`, else
/// `models/all-MiniLM-L6-v2` under the current directory.
pub fn default_dir() -> PathBuf {
    std::env::var_os("REGATTA_MINILM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("models").join(NAME))
}
