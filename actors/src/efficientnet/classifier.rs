//! [`Classifier`]: one loaded EfficientNet-Lite0 with its labels.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float32Array, StringArray, StructArray};
use arrow::datatypes::{DataType, Field, Fields};
use candle_core::{Device, Tensor};
use rayon::prelude::*;
use regatta_engine::types::{embedding_array, embedding_type, ImageColumn};

use super::{center_crop, normalise, EfficientNetLite0, Output, CLASSES, CROP};
use crate::model::{Model, ModelError};
use crate::model_files::{files_error, required};
use crate::Result;

/// How to get the model files when they are missing.
const FIX: &str = "run scripts/fetch_efficientnet.sh, or set REGATTA_EFFICIENTNET_DIR";

/// The fields of `classify_image`'s result: `{label: Utf8, score: Float32}`.
pub fn top1_fields() -> Fields {
    Fields::from(vec![
        Field::new("label", DataType::Utf8, true),
        Field::new("score", DataType::Float32, true),
    ])
}

/// EfficientNet-Lite0 on one device, answering with `output`.
pub struct Classifier {
    net: EfficientNetLite0,
    labels: Vec<String>,
    device: Device,
    output: Output,
}

impl Classifier {
    /// Loads `model.safetensors` and `labels.txt` from `dir` onto `device`.
    pub fn load(dir: &Path, device: Device, output: Output) -> Result<Self> {
        let weights_path = required(dir, "model.safetensors", FIX)?;
        let labels_path = required(dir, "labels.txt", FIX)?;
        let bytes = std::fs::read(&weights_path).map_err(|e| files_error(&weights_path, e))?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| files_error(&weights_path, e))?;
        let net =
            EfficientNetLite0::new(tensors, &device).map_err(|e| files_error(&weights_path, e))?;
        let labels: Vec<String> = std::fs::read_to_string(&labels_path)
            .map_err(|e| files_error(&labels_path, e))?
            .lines()
            .map(str::to_string)
            .collect();
        if labels.len() != CLASSES {
            return Err(files_error(
                &labels_path,
                format!("{} class names, expected {CLASSES} ({FIX})", labels.len()),
            ));
        }
        Ok(Self {
            net,
            labels,
            device,
            output,
        })
    }

    /// The Arrow type a pool answering with `output` returns.
    pub fn output_type(output: Output) -> DataType {
        match output {
            Output::Top1 => DataType::Struct(top1_fields()),
            Output::Logits => embedding_type(CLASSES as i32),
        }
    }

    /// The class name of ImageNet index `i`.
    pub fn label(&self, i: usize) -> Option<&str> {
        self.labels.get(i).map(String::as_str)
    }

    /// Logits, `CLASSES` per image, of a batch of normalised 224x224 inputs.
    pub fn logits(&self, inputs: Vec<f32>, n: usize) -> std::result::Result<Vec<f32>, ModelError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let side = CROP as usize;
        let x = Tensor::from_vec(inputs, (n, 3, side, side), &self.device)?;
        Ok(self
            .net
            .forward(&x)?
            .to_device(&Device::Cpu)?
            .flatten_all()?
            .to_vec1()?)
    }

    /// Classifies an image column; null images give null results.
    pub fn classify(&self, images: &ArrayRef) -> std::result::Result<ArrayRef, ModelError> {
        let column = ImageColumn::try_new(images.as_ref(), super::NAME)?;
        let mut images_in = Vec::with_capacity(column.len());
        for row in 0..column.len() {
            if let Some(img) = column.get(row)? {
                images_in.push((row, img));
            }
        }
        // Resize, crop and normalise on all cores, not one by one in the actor's
        // thread while the other cores wait for the network.
        let per_image = 3 * (CROP * CROP) as usize;
        let mut inputs = vec![0f32; images_in.len() * per_image];
        inputs
            .par_chunks_mut(per_image)
            .zip(&images_in)
            .try_for_each(|(dst, (row, img))| {
                let crop = center_crop(*img).map_err(|e| format!("image at row {row}: {e}"))?;
                normalise(&crop, dst);
                Ok::<_, String>(())
            })?;
        let logits = self.logits(inputs, images_in.len())?;
        let nulls = images.logical_nulls();
        let mut rows = logits.chunks_exact(CLASSES);
        match self.output {
            Output::Logits => {
                let mut values = Vec::with_capacity(column.len() * CLASSES);
                for row in 0..column.len() {
                    if images.is_valid(row) {
                        values.extend_from_slice(rows.next().ok_or("fewer logits than images")?);
                    } else {
                        values.extend(std::iter::repeat_n(0f32, CLASSES));
                    }
                }
                Ok(embedding_array(values, CLASSES, nulls)?)
            }
            Output::Top1 => {
                let mut labels = Vec::with_capacity(column.len());
                let mut scores = Vec::with_capacity(column.len());
                for row in 0..column.len() {
                    if images.is_valid(row) {
                        let l = rows.next().ok_or("fewer logits than images")?;
                        let (best, p) = top1(l);
                        labels.push(self.label(best).map(str::to_string));
                        scores.push(Some(p));
                    } else {
                        labels.push(None);
                        scores.push(None);
                    }
                }
                let children: Vec<ArrayRef> = vec![
                    Arc::new(StringArray::from(labels)),
                    Arc::new(Float32Array::from(scores)),
                ];
                Ok(Arc::new(StructArray::try_new(
                    top1_fields(),
                    children,
                    nulls,
                )?))
            }
        }
    }
}

/// The index of the largest logit and its softmax probability.
pub fn top1(logits: &[f32]) -> (usize, f32) {
    let (best, max) =
        logits
            .iter()
            .copied()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |a, (i, v)| if v > a.1 { (i, v) } else { a },
            );
    let sum: f32 = logits.iter().map(|v| (v - max).exp()).sum();
    (best, 1.0 / sum)
}

impl Model for Classifier {
    fn process(&mut self, inputs: &[ArrayRef]) -> std::result::Result<ArrayRef, ModelError> {
        match inputs {
            [images] => self.classify(images),
            _ => Err(format!(
                "{} takes one image column, got {}",
                super::NAME,
                inputs.len()
            )
            .into()),
        }
    }
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("device", &self.device)
            .field("output", &self.output)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top1_gives_the_argmax_and_its_softmax_probability() {
        let (i, p) = top1(&[0.0, 2.0, 0.0]);
        assert_eq!(i, 1);
        let want = 2f32.exp() / (2.0 + 2f32.exp());
        assert!((p - want).abs() < 1e-6, "{p} vs {want}");
    }
}
