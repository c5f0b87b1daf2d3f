//! [`Weights`]: the checkpoint's tensors, with batch norms folded into the
//! convolutions before them, and the block layout read from their names.

use std::collections::HashMap;

use candle_core::Tensor;

/// Batch norm's epsilon in the TensorFlow-trained checkpoint.
const BN_EPS: f32 = 1e-3;

/// Blocks whose depthwise convolution has stride 2 (the first of stages 2, 3, 4 and 6).
const STRIDE_TWO: [usize; 4] = [1, 3, 5, 11];

/// EfficientNet-Lite0's inverted-residual blocks.
const BLOCKS: usize = 16;

/// A convolution with its batch norm folded in: `y = conv(x, values) + bias`.
pub(crate) struct Folded {
    /// The checkpoint's layout: `(out, in / groups, k, k)`, row-major.
    pub values: Vec<f32>,
    pub dims: Vec<usize>,
    /// One per output channel.
    pub bias: Vec<f32>,
}

/// One block's place in the checkpoint.
pub(crate) struct BlockSpec {
    /// `_blocks.{i}.`
    pub prefix: String,
    pub has_expand: bool,
    pub stride: usize,
}

/// The checkpoint's tensors, read on the CPU, with errors naming the tensor.
pub(crate) struct Weights(pub HashMap<String, Tensor>);

impl Weights {
    pub fn get(&self, name: &str) -> candle_core::Result<&Tensor> {
        self.0
            .get(name)
            .ok_or_else(|| candle_core::Error::Msg(format!("the weights have no tensor {name}")))
    }

    pub fn vec(&self, name: &str) -> candle_core::Result<Vec<f32>> {
        self.get(name)?.flatten_all()?.to_vec1()
    }

    /// `(scale, shift)` of the batch norm `prefix`: y = x * scale + shift.
    fn batch_norm(&self, prefix: &str) -> candle_core::Result<(Vec<f32>, Vec<f32>)> {
        let gamma = self.vec(&format!("{prefix}.weight"))?;
        let beta = self.vec(&format!("{prefix}.bias"))?;
        let mean = self.vec(&format!("{prefix}.running_mean"))?;
        let var = self.vec(&format!("{prefix}.running_var"))?;
        let scale: Vec<f32> = gamma
            .iter()
            .zip(&var)
            .map(|(g, v)| g / (v + BN_EPS).sqrt())
            .collect();
        let shift = beta
            .iter()
            .zip(&mean)
            .zip(&scale)
            .map(|((b, m), s)| b - m * s)
            .collect();
        Ok((scale, shift))
    }

    /// Convolution `conv` with batch norm `bn` folded in.
    pub fn folded(&self, conv: &str, bn: &str) -> candle_core::Result<Folded> {
        let w = self.get(&format!("{conv}.weight"))?;
        let dims = w.dims().to_vec();
        if dims.len() != 4 {
            candle_core::bail!("{conv}.weight is {dims:?}, expected 4 dimensions");
        }
        let mut values: Vec<f32> = w.flatten_all()?.to_vec1()?;
        let (scale, bias) = self.batch_norm(bn)?;
        if scale.len() != dims[0] || bias.len() != dims[0] {
            candle_core::bail!("{conv}: {} outputs but {bn} has {}", dims[0], scale.len());
        }
        let per_out = values.len() / scale.len().max(1);
        for (o, chunk) in values.chunks_mut(per_out).enumerate() {
            chunk.iter_mut().for_each(|v| *v *= scale[o]);
        }
        Ok(Folded { values, dims, bias })
    }

    /// The blocks, in order, checked to be EfficientNet-Lite0's sixteen.
    pub fn blocks(&self) -> candle_core::Result<Vec<BlockSpec>> {
        let mut blocks = Vec::new();
        for b in 0.. {
            let prefix = format!("_blocks.{b}.");
            if !self
                .0
                .contains_key(&format!("{prefix}_depthwise_conv.weight"))
            {
                break;
            }
            blocks.push(BlockSpec {
                has_expand: self.0.contains_key(&format!("{prefix}_expand_conv.weight")),
                stride: if STRIDE_TWO.contains(&b) { 2 } else { 1 },
                prefix,
            });
        }
        if blocks.len() != BLOCKS {
            candle_core::bail!(
                "EfficientNet-Lite0 has {BLOCKS} blocks, the weights {}",
                blocks.len()
            );
        }
        Ok(blocks)
    }
}
