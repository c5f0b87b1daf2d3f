//! [`SentenceEmbedder`]: one loaded BERT-family sentence-transformers model and
//! its tokenizer, with the pooling, normalisation, width and input length its
//! own files give (`modules.json`, `1_Pooling/config.json`,
//! `sentence_bert_config.json`, `config.json`).

use std::path::Path;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DataType;
use candle_core::{DType, Device, Tensor};
use candle_transformers::models::bert::{BertModel, Config};
use regatta_engine::types::embedding_array;
use tokenizers::{Tokenizer, TruncationParams};

use super::encoder::{BertConfig, BertEncoder};
use super::layout::{EmbedderLayout, Pooling};
use crate::model::{Model, ModelError};
use crate::model_files::{files_error, required};
use crate::transformer::{NetworkRoute, Precision};
use crate::Result;

/// How to get the model files when they are missing.
const FIX: &str = "run `regatta models pull all-MiniLM-L6-v2`, or set REGATTA_MINILM_DIR";

/// Bytes of activations one pass of the CPU encoder may hold: a batch's
/// texts go through in passes of as many tokens as fit (a 64 x 256-token batch
/// of all-MiniLM-L6-v2 is about three passes), so memory is bounded by this,
/// not by the batch's size or its texts' lengths.
pub const PASS_BYTES: usize = 64 << 20;

enum Network {
    Kernels(BertEncoder),
    Candle(BertModel),
}

/// A BERT-family sentence embedding model on one device.
pub struct SentenceEmbedder {
    network: Network,
    tokenizer: Tokenizer,
    device: Device,
    layout: EmbedderLayout,
}

impl SentenceEmbedder {
    /// Loads the model from `dir` onto `device`: regatta's kernels on a CPU,
    /// candle on a GPU.
    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        let route = NetworkRoute::for_device(&device, Precision::F32);
        Self::load_route(dir, device, route)
    }

    /// Loads the model from `dir` onto `device`, run by `route` (the kernels
    /// run on the CPU only: on another device candle runs).
    pub fn load_route(dir: &Path, device: Device, route: NetworkRoute) -> Result<Self> {
        let layout = EmbedderLayout::read(dir)?;
        let config_path = required(dir, "config.json", FIX)?;
        let weights_path = required(dir, "model.safetensors", FIX)?;
        let tokenizer_path = required(dir, "tokenizer.json", FIX)?;
        let config_text =
            std::fs::read_to_string(&config_path).map_err(|e| files_error(&config_path, e))?;
        // What the encoder cannot compute is refused before the weights are read.
        let bert_config: BertConfig =
            serde_json::from_str(&config_text).map_err(|e| files_error(&config_path, e))?;
        bert_config
            .check()
            .map_err(|e| files_error(&config_path, e))?;
        let vb = crate::weights_file::var_builder(&weights_path, DType::F32, &device)
            .map_err(|e| files_error(&weights_path, e))?;
        let network = if matches!(route, NetworkRoute::Kernels(_)) && device.is_cpu() {
            Network::Kernels(
                BertEncoder::load(&vb, &bert_config, route.precision())
                    .map_err(|e| files_error(&weights_path, e))?,
            )
        } else {
            let config: Config =
                serde_json::from_str(&config_text).map_err(|e| files_error(&config_path, e))?;
            Network::Candle(
                BertModel::load(vb, &config).map_err(|e| files_error(&weights_path, e))?,
            )
        };
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| files_error(&tokenizer_path, e))?;
        // A shipped tokenizer.json may truncate and pad to a fixed length (all-
        // MiniLM-L6-v2's: 128); the model's own max_seq_length rules, and
        // batches are padded to their longest input here.
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: layout.max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(|e| files_error(&tokenizer_path, e))?;
        tokenizer.with_padding(None);
        Ok(Self {
            network,
            tokenizer,
            device,
            layout,
        })
    }

    /// Embedding width.
    pub fn dim(&self) -> usize {
        self.layout.dim
    }

    /// Token ids of `text`, `[CLS]` and `[SEP]` included, after truncation.
    pub fn token_ids(&self, text: &str) -> std::result::Result<Vec<u32>, ModelError> {
        Ok(self.tokenizer.encode(text, true)?.get_ids().to_vec())
    }

    /// The embeddings of `texts`, [`Self::dim`] floats each, in order.
    pub fn embed(&self, texts: &[&str]) -> std::result::Result<Vec<f32>, ModelError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self.tokenizer.encode_batch(texts.to_vec(), true)?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        match &self.network {
            Network::Kernels(encoder) => self.embed_packed(encoder, &ids),
            Network::Candle(bert) => self.embed_padded(bert, &ids),
        }
    }

    /// The CPU kernels' route: texts in passes of at most [`PASS_BYTES`] of
    /// activations, each pass's sequences packed without padding.
    fn embed_packed(
        &self,
        encoder: &BertEncoder,
        ids: &[&[u32]],
    ) -> std::result::Result<Vec<f32>, ModelError> {
        let dim = self.layout.dim;
        let mut out = vec![0f32; ids.len() * dim];
        let per_pass = (PASS_BYTES / encoder.bytes_per_token()).max(1);
        let mut first = 0;
        while first < ids.len() {
            // At least one text per pass, however long (it is cut to the
            // model's max_seq_length already).
            let mut end = first + 1;
            let mut tokens = ids[first].len();
            while end < ids.len() && tokens + ids[end].len() <= per_pass {
                tokens += ids[end].len();
                end += 1;
            }
            let (states, ranges) = encoder.forward(&ids[first..end])?;
            for (i, range) in ranges.into_iter().enumerate() {
                let v = &mut out[(first + i) * dim..(first + i + 1) * dim];
                let rows = &states[range.start * dim..range.end * dim];
                match self.layout.pooling {
                    Pooling::Mean => {
                        for row in rows.chunks_exact(dim) {
                            v.iter_mut().zip(row).for_each(|(a, x)| *a += x);
                        }
                        let n = range.len().max(1) as f32;
                        v.iter_mut().for_each(|a| *a /= n);
                    }
                    Pooling::Cls => {
                        if let Some(row) = rows.get(..dim) {
                            v.copy_from_slice(row);
                        }
                    }
                }
                if self.layout.normalize {
                    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                    v.iter_mut().for_each(|a| *a /= norm);
                }
            }
            first = end;
        }
        Ok(out)
    }

    /// candle's route: one padded tensor per batch, sorted by length.
    fn embed_padded(
        &self,
        bert: &BertModel,
        ids: &[&[u32]],
    ) -> std::result::Result<Vec<f32>, ModelError> {
        // Similar lengths together: less padding to compute over.
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let dim = self.layout.dim;
        let mut out = vec![0f32; ids.len() * dim];
        let longest = order.last().map_or(0, |&i| ids[i].len()).max(1);
        let rows = ids.len();
        let mut padded = vec![0u32; rows * longest];
        let mut mask = vec![0u32; rows * longest];
        for (r, &i) in order.iter().enumerate() {
            for (t, &id) in ids[i].iter().enumerate() {
                padded[r * longest + t] = id;
                mask[r * longest + t] = 1;
            }
        }
        let ids = Tensor::from_vec(padded, (rows, longest), &self.device)?;
        let mask = Tensor::from_vec(mask, (rows, longest), &self.device)?;
        let token_types = ids.zeros_like()?;
        let hidden = bert.forward(&ids, &token_types, Some(&mask))?;
        let pooled = match self.layout.pooling {
            // Mean over the real tokens only.
            Pooling::Mean => {
                let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
                let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
                let counts = mask.sum(1)?.clamp(1e-9, f32::MAX)?;
                summed.broadcast_div(&counts)?
            }
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
        };
        let pooled = if self.layout.normalize {
            let norms = pooled
                .sqr()?
                .sum_keepdim(1)?
                .sqrt()?
                .clamp(1e-12, f32::MAX)?;
            pooled.broadcast_div(&norms)?
        } else {
            pooled
        };
        let sorted: Vec<f32> = pooled.to_device(&Device::Cpu)?.flatten_all()?.to_vec1()?;
        for (r, &i) in order.iter().enumerate() {
            out[i * dim..(i + 1) * dim].copy_from_slice(&sorted[r * dim..(r + 1) * dim]);
        }
        Ok(out)
    }

    /// The Arrow type of the embedding column: `FixedSizeList<Float32, dim>`.
    pub fn output_type(&self) -> DataType {
        self.layout.output_type()
    }

    /// Embeds a string column; null text gives a null embedding.
    pub fn embed_array(&self, text: &ArrayRef) -> std::result::Result<ArrayRef, ModelError> {
        let text = arrow::compute::cast(text, &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        let present: Vec<&str> = text.iter().flatten().collect();
        let vectors = self.embed(&present)?;
        let dim = self.layout.dim;
        let mut values = Vec::with_capacity(text.len() * dim);
        let mut next = vectors.chunks_exact(dim);
        for row in 0..text.len() {
            if text.is_null(row) {
                values.extend(std::iter::repeat_n(0f32, dim));
            } else if let Some(v) = next.next() {
                values.extend_from_slice(v);
            }
        }
        Ok(embedding_array(values, dim, text.nulls().cloned())?)
    }
}

impl Model for SentenceEmbedder {
    fn process(&mut self, inputs: &[ArrayRef]) -> std::result::Result<ArrayRef, ModelError> {
        match inputs {
            [text] => self.embed_array(text),
            _ => Err(format!(
                "{} takes one text column, got {}",
                super::NAME,
                inputs.len()
            )
            .into()),
        }
    }
}

impl std::fmt::Debug for SentenceEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentenceEmbedder")
            .field("device", &self.device)
            .field("layout", &self.layout)
            .finish()
    }
}
