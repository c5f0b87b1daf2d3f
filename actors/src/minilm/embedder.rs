//! [`MiniLm`]: one loaded copy of the model and its tokenizer.

use std::path::Path;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DataType;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use regatta_engine::types::{embedding_array, embedding_type};
use tokenizers::{Tokenizer, TruncationParams};

use super::{DIM, MAX_TOKENS};
use crate::model::{Model, ModelError};
use crate::model_files::{files_error, required};
use crate::Result;

/// How to get the model files when they are missing.
const FIX: &str = "run scripts/fetch_model.sh, or set REGATTA_MINILM_DIR";

/// all-MiniLM-L6-v2 on one device.
pub struct MiniLm {
    bert: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

impl MiniLm {
    /// Loads the model from `dir` onto `device`.
    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        let config_path = required(dir, "config.json", FIX)?;
        let weights_path = required(dir, "model.safetensors", FIX)?;
        let tokenizer_path = required(dir, "tokenizer.json", FIX)?;
        let config_text =
            std::fs::read_to_string(&config_path).map_err(|e| files_error(&config_path, e))?;
        let config: Config =
            serde_json::from_str(&config_text).map_err(|e| files_error(&config_path, e))?;
        let weights = std::fs::read(&weights_path).map_err(|e| files_error(&weights_path, e))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|e| files_error(&weights_path, e))?;
        let bert = BertModel::load(vb, &config).map_err(|e| files_error(&weights_path, e))?;
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| files_error(&tokenizer_path, e))?;
        // The shipped tokenizer.json truncates at 128 and pads to a fixed 128; the
        // model was trained with 256 and we pad per batch ourselves.
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| files_error(&tokenizer_path, e))?;
        tokenizer.with_padding(None);
        Ok(Self {
            bert,
            tokenizer,
            device,
        })
    }

    /// Token ids of `text`, `[CLS]` and `[SEP]` included, after truncation.
    pub fn token_ids(&self, text: &str) -> std::result::Result<Vec<u32>, ModelError> {
        Ok(self.tokenizer.encode(text, true)?.get_ids().to_vec())
    }

    /// Unit-length embeddings of `texts`, `DIM` floats each, in order.
    pub fn embed(&self, texts: &[&str]) -> std::result::Result<Vec<f32>, ModelError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self.tokenizer.encode_batch(texts.to_vec(), true)?;
        // Similar lengths together: less padding to compute over.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());
        let mut out = vec![0f32; texts.len() * DIM];
        let longest = order
            .last()
            .map_or(0, |&i| encodings[i].get_ids().len())
            .max(1);
        let rows = texts.len();
        let mut ids = vec![0u32; rows * longest];
        let mut mask = vec![0u32; rows * longest];
        for (r, &i) in order.iter().enumerate() {
            for (t, &id) in encodings[i].get_ids().iter().enumerate() {
                ids[r * longest + t] = id;
                mask[r * longest + t] = 1;
            }
        }
        let ids = Tensor::from_vec(ids, (rows, longest), &self.device)?;
        let mask = Tensor::from_vec(mask, (rows, longest), &self.device)?;
        let token_types = ids.zeros_like()?;
        let hidden = self.bert.forward(&ids, &token_types, Some(&mask))?;
        // Mean over the real tokens only, then unit length.
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?.clamp(1e-9, f32::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f32::MAX)?;
        let unit = mean.broadcast_div(&norms)?.to_device(&Device::Cpu)?;
        let sorted: Vec<f32> = unit.flatten_all()?.to_vec1()?;
        for (r, &i) in order.iter().enumerate() {
            out[i * DIM..(i + 1) * DIM].copy_from_slice(&sorted[r * DIM..(r + 1) * DIM]);
        }
        Ok(out)
    }

    /// The Arrow type of an embedding column: `FixedSizeList<Float32, 384>`.
    pub fn output_type() -> DataType {
        embedding_type(DIM as i32)
    }

    /// Embeds a string column; null text gives a null embedding.
    pub fn embed_array(&self, text: &ArrayRef) -> std::result::Result<ArrayRef, ModelError> {
        let text = arrow::compute::cast(text, &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        let present: Vec<&str> = text.iter().flatten().collect();
        let vectors = self.embed(&present)?;
        let mut values = Vec::with_capacity(text.len() * DIM);
        let mut next = vectors.chunks_exact(DIM);
        for row in 0..text.len() {
            if text.is_null(row) {
                values.extend(std::iter::repeat_n(0f32, DIM));
            } else if let Some(v) = next.next() {
                values.extend_from_slice(v);
            }
        }
        Ok(embedding_array(values, DIM, text.nulls().cloned())?)
    }
}

impl Model for MiniLm {
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

impl std::fmt::Debug for MiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLm")
            .field("device", &self.device)
            .finish()
    }
}
