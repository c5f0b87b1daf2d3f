//! [`BertEncoder`]: a BERT-family encoder on regatta's CPU kernels
//! ([`crate::transformer`]). The sequences of a batch are packed one after
//! another with no padding, so a batch of mixed lengths costs the sum of its
//! lengths, not its count times the longest; each attends only within itself.

use std::ops::Range;

use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::transformer::layers::{values, Block, Dense, Norm, NormPlacement};
use crate::transformer::SharedScratch;
use crate::transformer::{Gelu, Precision};

/// What the encoder reads from `config.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "default_types")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
    #[serde(default)]
    pub model_type: Option<String>,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_types() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}

impl BertConfig {
    /// The GELU the config names, or why it cannot run here.
    pub fn gelu(&self) -> Result<Gelu, String> {
        match self.hidden_act.as_str() {
            "gelu" => Ok(Gelu::Erf),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Gelu::Tanh),
            other => Err(format!(
                "hidden_act {other:?} is not supported (gelu, gelu_new, gelu_pytorch_tanh)"
            )),
        }
    }

    /// Refuses what the encoder does not compute, before any weight is read.
    pub fn check(&self) -> Result<(), String> {
        self.gelu()?;
        match self.position_embedding_type.as_deref() {
            None | Some("absolute") => {}
            Some(other) => {
                return Err(format!(
                    "position_embedding_type {other:?} is not supported (absolute)"
                ))
            }
        }
        crate::transformer::check_heads("hidden_size", self.hidden_size, self.num_attention_heads)
    }
}

/// A BERT encoder's weights.
#[derive(Debug)]
pub struct BertEncoder {
    words: Vec<f32>,
    positions: Vec<f32>,
    /// Token type 0's row: every input is a single segment.
    segment: Vec<f32>,
    embed_norm: Norm,
    blocks: Vec<Block>,
    d: usize,
    vocab: usize,
    max_positions: usize,
    scratch: SharedScratch,
}

impl BertEncoder {
    /// Reads the encoder under `vb`: at its root, under `bert.`, or under the
    /// config's `model_type` (the prefixes checkpoints use).
    pub fn load(
        vb: &VarBuilder,
        config: &BertConfig,
        precision: Precision,
    ) -> candle_core::Result<Self> {
        config.check().map_err(candle_core::Error::msg)?;
        let prefixes = std::iter::once(None)
            .chain(std::iter::once(Some("bert".to_string())))
            .chain(config.model_type.clone().map(Some));
        let mut first_err = None;
        for prefix in prefixes {
            let vb = match &prefix {
                Some(p) => vb.pp(p),
                None => vb.clone(),
            };
            match Self::load_at(&vb, config, precision) {
                Ok(e) => return Ok(e),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.unwrap_or_else(|| candle_core::Error::msg("no encoder weights")))
    }

    /// Each block is quantised as soon as it is read (int8), so loading never
    /// holds every block in f32.
    fn load_at(vb: &VarBuilder, c: &BertConfig, precision: Precision) -> candle_core::Result<Self> {
        let d = c.hidden_size;
        let gelu = c.gelu().map_err(candle_core::Error::msg)?;
        let e = vb.pp("embeddings");
        let types = values(&e.get((c.type_vocab_size, d), "token_type_embeddings.weight")?)?;
        let blocks = (0..c.num_hidden_layers)
            .map(|i| {
                let l = vb.pp(format!("encoder.layer.{i}"));
                let a = l.pp("attention");
                let q = Dense::load(&a.pp("self.query"), d, d, true)?;
                let k = Dense::load(&a.pp("self.key"), d, d, true)?;
                let v = Dense::load(&a.pp("self.value"), d, d, true)?;
                let block = Block {
                    qkv: Dense::side_by_side(&[q, k, v])?,
                    attn_out: Dense::load(&a.pp("output.dense"), d, d, true)?,
                    attn_norm: Norm::load(&a.pp("output.LayerNorm"), d, c.layer_norm_eps)?,
                    ff_in: Dense::load(&l.pp("intermediate.dense"), d, c.intermediate_size, true)?,
                    ff_out: Dense::load(&l.pp("output.dense"), c.intermediate_size, d, true)?,
                    ff_norm: Norm::load(&l.pp("output.LayerNorm"), d, c.layer_norm_eps)?,
                    heads: c.num_attention_heads,
                    gelu,
                    placement: NormPlacement::Post,
                };
                Ok(block.at(precision))
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            words: values(&e.get((c.vocab_size, d), "word_embeddings.weight")?)?,
            positions: values(
                &e.get((c.max_position_embeddings, d), "position_embeddings.weight")?,
            )?,
            segment: types.get(..d).map(<[f32]>::to_vec).unwrap_or_default(),
            embed_norm: Norm::load(&e.pp("LayerNorm"), d, c.layer_norm_eps)?,
            blocks,
            d,
            vocab: c.vocab_size,
            max_positions: c.max_position_embeddings,
            scratch: SharedScratch::default(),
        })
    }

    /// The width of a token's state.
    pub fn width(&self) -> usize {
        self.d
    }

    /// Bytes of activations a token holds during a pass: its state, its
    /// normed copy, query/key/value, attention context, the block's next state
    /// and the feed-forward's hidden layer.
    pub fn bytes_per_token(&self) -> usize {
        let ff = self
            .blocks
            .first()
            .map_or(4 * self.d, |b| b.ff_in.outputs());
        (7 * self.d + ff) * std::mem::size_of::<f32>()
    }

    /// The last block's token states of each sequence, packed: sequence `i`'s
    /// tokens are the rows of the returned ranges' `i`th, `width()` values each.
    pub fn forward(&self, sequences: &[&[u32]]) -> Result<(Vec<f32>, Vec<Range<usize>>), String> {
        let d = self.d;
        let rows: usize = sequences.iter().map(|s| s.len()).sum();
        let mut x = Vec::with_capacity(rows * d);
        let mut ranges = Vec::with_capacity(sequences.len());
        for ids in sequences {
            if ids.len() > self.max_positions {
                return Err(format!(
                    "{} tokens, past the model's {} positions",
                    ids.len(),
                    self.max_positions
                ));
            }
            let start = x.len() / d;
            for (p, &id) in ids.iter().enumerate() {
                let id = id as usize;
                let word = self.words.get(id * d..(id + 1) * d).ok_or_else(|| {
                    format!("token id {id} is outside the vocabulary of {}", self.vocab)
                })?;
                let pos = &self.positions[p * d..(p + 1) * d];
                x.extend(
                    word.iter()
                        .zip(pos)
                        .zip(&self.segment)
                        .map(|((w, p), s)| w + p + s),
                );
            }
            ranges.push(start..start + ids.len());
        }
        self.embed_norm.apply(&mut x);
        let mut scratch = self.scratch.lock();
        for block in &self.blocks {
            block.forward(&mut x, &ranges, &mut scratch);
        }
        Ok((x, ranges))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: serde_json::Value) -> BertConfig {
        let mut c = serde_json::json!({
            "vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6,
            "num_attention_heads": 12, "intermediate_size": 1536,
            "max_position_embeddings": 512
        });
        if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(extra.clone());
        }
        serde_json::from_value(c).unwrap()
    }

    #[test]
    fn what_the_kernels_cannot_compute_is_refused_by_name() {
        assert!(config(serde_json::json!({})).check().is_ok());
        assert_eq!(
            config(serde_json::json!({"hidden_act": "gelu_new"})).gelu(),
            Ok(Gelu::Tanh)
        );
        let e = config(serde_json::json!({"hidden_act": "silu"}))
            .check()
            .unwrap_err();
        assert!(e.contains("hidden_act") && e.contains("silu"), "{e}");
        let e = config(serde_json::json!({"position_embedding_type": "relative_key"}))
            .check()
            .unwrap_err();
        assert!(e.contains("relative_key"), "{e}");
        let e = config(serde_json::json!({"num_attention_heads": 5}))
            .check()
            .unwrap_err();
        assert!(e.contains("5 attention heads"), "{e}");
    }
}
