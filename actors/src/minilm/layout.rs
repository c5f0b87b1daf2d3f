//! [`EmbedderLayout`]: what a sentence-transformers model directory says about
//! turning the encoder's token states into one vector, read before any weight
//! is loaded (planning needs the width).

use std::path::Path;

use arrow::datatypes::DataType;
use regatta_engine::types::embedding_type;
use serde::Deserialize;

use crate::model_files::files_error;
use crate::Result;

/// How token states become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The mean over the real (unpadded) tokens.
    Mean,
    /// The first token's (`[CLS]`) state: BGE's choice.
    Cls,
}

/// The pooling, normalisation, width and input length of one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedderLayout {
    pub pooling: Pooling,
    /// Whether vectors are scaled to unit length (a `Normalize` module).
    pub normalize: bool,
    /// The embedding width: the encoder's `hidden_size`.
    pub dim: usize,
    /// Tokens per input, `[CLS]` and `[SEP]` included; longer inputs are cut.
    pub max_tokens: usize,
}

#[derive(Deserialize)]
struct EncoderConfig {
    #[serde(default)]
    model_type: String,
    hidden_size: usize,
    #[serde(default = "default_positions")]
    max_position_embeddings: usize,
}

fn default_positions() -> usize {
    512
}

#[derive(Deserialize)]
struct Module {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize, Default)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pooling_mode_weightedmean_tokens: bool,
    #[serde(default)]
    pooling_mode_lasttoken: bool,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(files_error(path, e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| files_error(path, e))
}

/// The architectures the embedder runs (candle's BERT: BERT itself and the
/// models shaped like it, BGE, E5, GTE and MiniLM among them).
pub const SUPPORTED_ARCHITECTURES: [&str; 1] = ["bert"];

impl EmbedderLayout {
    /// Reads the layout of the model in `dir`. Without `modules.json` (a plain
    /// encoder) it is mean pooling to unit length, sentence-transformers'
    /// default pooling with regatta's default normalisation.
    pub fn read(dir: &Path) -> Result<Self> {
        let config_path = dir.join("config.json");
        let config: EncoderConfig = read_json(&config_path)?.ok_or_else(|| {
            files_error(
                &config_path,
                "missing: a BERT-family model directory needs config.json, tokenizer.json and model.safetensors",
            )
        })?;
        if !SUPPORTED_ARCHITECTURES.contains(&config.model_type.as_str()) {
            return Err(files_error(
                &config_path,
                format!(
                    "model_type {:?} is not a supported encoder; embed_text runs {}",
                    config.model_type,
                    SUPPORTED_ARCHITECTURES.join(", ")
                ),
            ));
        }
        let modules: Option<Vec<Module>> = read_json(&dir.join("modules.json"))?;
        let (pooling, normalize) = match &modules {
            None => (Pooling::Mean, true),
            Some(modules) => {
                let normalize = modules.iter().any(|m| m.kind.ends_with(".Normalize"));
                let pooling = match modules.iter().find(|m| m.kind.ends_with(".Pooling")) {
                    None => Pooling::Mean,
                    Some(m) => {
                        let path = dir.join(&m.path).join("config.json");
                        let p: PoolingConfig = read_json(&path)?.unwrap_or_default();
                        let unsupported = p.pooling_mode_max_tokens
                            || p.pooling_mode_mean_sqrt_len_tokens
                            || p.pooling_mode_weightedmean_tokens
                            || p.pooling_mode_lasttoken;
                        match (p.pooling_mode_cls_token, p.pooling_mode_mean_tokens) {
                            _ if unsupported => {
                                return Err(files_error(
                                    &path,
                                    "only CLS or mean pooling is supported",
                                ))
                            }
                            (true, true) => return Err(files_error(
                                &path,
                                "CLS and mean pooling together (a concatenation) is not supported",
                            )),
                            (true, false) => Pooling::Cls,
                            _ => Pooling::Mean,
                        }
                    }
                };
                if let Some(unknown) = modules.iter().find(|m| {
                    !m.kind.ends_with(".Transformer")
                        && !m.kind.ends_with(".Pooling")
                        && !m.kind.ends_with(".Normalize")
                }) {
                    return Err(files_error(
                        &dir.join("modules.json"),
                        format!(
                            "module {} ({}) is not supported: regatta runs Transformer, Pooling and Normalize",
                            unknown.path, unknown.kind
                        ),
                    ));
                }
                (pooling, normalize)
            }
        };
        let st: Option<SentenceBertConfig> = read_json(&dir.join("sentence_bert_config.json"))?;
        let max_tokens = st
            .and_then(|s| s.max_seq_length)
            .unwrap_or(config.max_position_embeddings)
            .min(config.max_position_embeddings)
            .max(2);
        Ok(Self {
            pooling,
            normalize,
            dim: config.hidden_size,
            max_tokens,
        })
    }

    /// The Arrow type of the embedding column: `FixedSizeList<Float32, dim>`.
    pub fn output_type(&self) -> DataType {
        embedding_type(self.dim as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = d.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        d
    }

    const BERT: &str =
        r#"{"model_type": "bert", "hidden_size": 768, "max_position_embeddings": 512}"#;

    #[test]
    fn a_bge_shaped_model_pools_its_cls_token_and_normalises() {
        let d = model(&[
            ("config.json", BERT),
            (
                "modules.json",
                r#"[{"path": "", "type": "sentence_transformers.models.Transformer"},
                    {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                    {"path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]"#,
            ),
            (
                "1_Pooling/config.json",
                r#"{"pooling_mode_cls_token": true}"#,
            ),
            ("sentence_bert_config.json", r#"{"max_seq_length": 1000}"#),
        ]);
        let l = EmbedderLayout::read(d.path()).unwrap();
        assert_eq!(
            l,
            EmbedderLayout {
                pooling: Pooling::Cls,
                normalize: true,
                dim: 768,
                max_tokens: 512
            }
        );
    }

    #[test]
    fn a_model_without_normalize_keeps_its_lengths_and_max_pooling_is_refused() {
        let d = model(&[
            ("config.json", BERT),
            (
                "modules.json",
                r#"[{"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]"#,
            ),
            (
                "1_Pooling/config.json",
                r#"{"pooling_mode_mean_tokens": true}"#,
            ),
        ]);
        let l = EmbedderLayout::read(d.path()).unwrap();
        assert_eq!((l.pooling, l.normalize), (Pooling::Mean, false));
        std::fs::write(
            d.path().join("1_Pooling/config.json"),
            r#"{"pooling_mode_max_tokens": true}"#,
        )
        .unwrap();
        let err = EmbedderLayout::read(d.path()).unwrap_err().to_string();
        assert!(
            err.contains("1_Pooling") && err.contains("pooling"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_or_foreign_config_is_refused_naming_the_file() {
        let d = model(&[]);
        let err = EmbedderLayout::read(d.path()).unwrap_err().to_string();
        assert!(
            err.contains("config.json") && err.contains("missing"),
            "{err}"
        );
        std::fs::write(
            d.path().join("config.json"),
            r#"{"model_type": "t5", "hidden_size": 512}"#,
        )
        .unwrap();
        let err = EmbedderLayout::read(d.path()).unwrap_err().to_string();
        assert!(
            err.contains("t5") && err.contains("not a supported"),
            "{err}"
        );
    }
}
