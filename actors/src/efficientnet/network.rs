//! [`EfficientNetLite0`]: the network, with batch norm folded into its convolutions.

use std::collections::HashMap;

use candle_core::{Device, Tensor};

use super::depthwise::{same_padding, Depthwise};
use super::CLASSES;

/// Batch norm's epsilon in the TensorFlow-trained checkpoint.
const BN_EPS: f32 = 1e-3;

/// Blocks whose depthwise convolution has stride 2 (the first of stages 2, 3, 4 and 6).
const STRIDE_TWO: [usize; 4] = [1, 3, 5, 11];

/// A 1x1 convolution as a matrix product, bias added.
#[derive(Debug)]
struct Pointwise {
    /// `(out, in)`.
    weight: Tensor,
    /// `(1, out, 1)`.
    bias: Tensor,
}

impl Pointwise {
    fn forward(&self, x: &Tensor, relu6: bool) -> candle_core::Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let out = self.weight.dim(0)?;
        let y = self
            .weight
            .broadcast_matmul(&x.reshape((b, c, h * w))?)?
            .broadcast_add(&self.bias)?;
        let y = if relu6 { y.clamp(0f32, 6f32)? } else { y };
        y.reshape((b, out, h, w))
    }
}

#[derive(Debug)]
struct Block {
    expand: Option<Pointwise>,
    depthwise: Depthwise,
    project: Pointwise,
    residual: bool,
}

/// EfficientNet-Lite0: a 3x3 stem, 16 inverted-residual blocks (no squeeze-excite,
/// ReLU6), a 1x1 head to 1,280 channels, average pooling and a 1,000-way
/// classifier. Input: `(B, 3, 224, 224)`, pixels as `(x - 127) / 128`.
#[derive(Debug)]
pub struct EfficientNetLite0 {
    stem_weight: Tensor,
    stem_bias: Tensor,
    blocks: Vec<Block>,
    head: Pointwise,
    fc_weight_t: Tensor,
    fc_bias: Tensor,
}

/// The checkpoint's tensors, read on the CPU, with errors naming the tensor.
struct Weights(HashMap<String, Tensor>);

impl Weights {
    fn get(&self, name: &str) -> candle_core::Result<&Tensor> {
        self.0
            .get(name)
            .ok_or_else(|| candle_core::Error::Msg(format!("the weights have no tensor {name}")))
    }

    fn vec(&self, name: &str) -> candle_core::Result<Vec<f32>> {
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

    /// A convolution's weights with batch norm `bn` folded in: `(out, rest...)` and bias.
    fn folded(
        &self,
        conv: &str,
        bn: &str,
    ) -> candle_core::Result<(Vec<f32>, Vec<usize>, Vec<f32>)> {
        let w = self.get(&format!("{conv}.weight"))?;
        let dims = w.dims().to_vec();
        let mut values: Vec<f32> = w.flatten_all()?.to_vec1()?;
        let (scale, shift) = self.batch_norm(bn)?;
        let per_out = values.len() / scale.len().max(1);
        if scale.len() != dims[0] {
            candle_core::bail!("{conv}: {} outputs but {bn} has {}", dims[0], scale.len());
        }
        for (o, chunk) in values.chunks_mut(per_out).enumerate() {
            chunk.iter_mut().for_each(|v| *v *= scale[o]);
        }
        Ok((values, dims, shift))
    }

    fn pointwise(&self, conv: &str, bn: &str, device: &Device) -> candle_core::Result<Pointwise> {
        let (w, dims, bias) = self.folded(conv, bn)?;
        let (out, inp) = (dims[0], dims[1]);
        Ok(Pointwise {
            weight: Tensor::from_vec(w, (out, inp), device)?,
            bias: Tensor::from_vec(bias, (1, out, 1), device)?,
        })
    }
}

impl EfficientNetLite0 {
    /// Builds the network from the checkpoint's tensors (any device; they are read
    /// once on the CPU to fold the batch norms), placing it on `device`.
    pub fn new(tensors: HashMap<String, Tensor>, device: &Device) -> candle_core::Result<Self> {
        let w = Weights(tensors);
        let (stem, stem_dims, stem_bias) = w.folded("_conv_stem", "_bn0")?;
        let stem_weight = Tensor::from_vec(stem, stem_dims.as_slice(), device)?;
        let stem_bias = Tensor::from_vec(stem_bias.clone(), (1, stem_bias.len(), 1, 1), device)?;
        let mut blocks = Vec::new();
        let mut channels = stem_dims[0];
        for b in 0.. {
            let p = format!("_blocks.{b}.");
            if !w.0.contains_key(&format!("{p}_depthwise_conv.weight")) {
                break;
            }
            let expand = if w.0.contains_key(&format!("{p}_expand_conv.weight")) {
                Some(w.pointwise(&format!("{p}_expand_conv"), &format!("{p}_bn0"), device)?)
            } else {
                None
            };
            let (dw, dw_dims, dw_bias) =
                w.folded(&format!("{p}_depthwise_conv"), &format!("{p}_bn1"))?;
            let k = dw_dims[2];
            let stride = if STRIDE_TWO.contains(&b) { 2 } else { 1 };
            let depthwise = Depthwise::new(dw, dw_bias, k, stride, device)?;
            let project = w.pointwise(&format!("{p}_project_conv"), &format!("{p}_bn2"), device)?;
            let out = project.weight.dim(0)?;
            blocks.push(Block {
                expand,
                depthwise,
                project,
                residual: stride == 1 && out == channels,
            });
            channels = out;
        }
        if blocks.len() != 16 {
            candle_core::bail!(
                "EfficientNet-Lite0 has 16 blocks, the weights {}",
                blocks.len()
            );
        }
        let head = w.pointwise("_conv_head", "_bn1", device)?;
        let fc = w.get("_fc.weight")?;
        if fc.dims() != [CLASSES, head.weight.dim(0)?] {
            candle_core::bail!("_fc.weight is {:?}, expected [{CLASSES}, 1280]", fc.dims());
        }
        Ok(Self {
            stem_weight,
            stem_bias,
            blocks,
            head,
            fc_weight_t: fc.t()?.contiguous()?.to_device(device)?,
            fc_bias: w.get("_fc.bias")?.to_device(device)?,
        })
    }

    /// Logits `(B, 1000)` of a batch `(B, 3, H, W)` of normalised images.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let k = self.stem_weight.dim(2)?;
        let (top, bottom, _) = same_padding(h, k, 2);
        let (left, right, _) = same_padding(w, k, 2);
        let padded = x
            .pad_with_zeros(2, top, bottom)?
            .pad_with_zeros(3, left, right)?;
        let mut x = padded
            .conv2d(&self.stem_weight, 0, 2, 1, 1)?
            .broadcast_add(&self.stem_bias)?
            .clamp(0f32, 6f32)?;
        for block in &self.blocks {
            let input = x.clone();
            if let Some(expand) = &block.expand {
                x = expand.forward(&x, true)?;
            }
            x = block.depthwise.forward(&x)?;
            x = block.project.forward(&x, false)?;
            if block.residual {
                x = (x + input)?;
            }
        }
        let x = self.head.forward(&x, true)?;
        let (b, c, h, w) = x.dims4()?;
        let pooled = x.reshape((b, c, h * w))?.mean(2)?;
        pooled
            .matmul(&self.fc_weight_t)?
            .broadcast_add(&self.fc_bias)
    }
}
