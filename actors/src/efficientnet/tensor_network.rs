//! [`TensorNetwork`]: EfficientNet-Lite0 as whole-tensor candle operations, for
//! devices other than the CPU (the CPU runs [`super::NhwcNetwork`]).

use candle_core::{Device, Tensor};

use super::depthwise::Depthwise;
use super::weights::{Folded, Weights};
use super::CLASSES;
use crate::nhwc::same_padding;

/// A 1x1 convolution as a matrix product, bias added.
#[derive(Debug)]
struct Pointwise {
    /// `(out, in)`.
    weight: Tensor,
    /// `(1, out, 1)`.
    bias: Tensor,
}

impl Pointwise {
    fn new(folded: Folded, device: &Device) -> candle_core::Result<Self> {
        let (out, inp) = (folded.dims[0], folded.dims[1]);
        Ok(Self {
            weight: Tensor::from_vec(folded.values, (out, inp), device)?,
            bias: Tensor::from_vec(folded.bias, (1, out, 1), device)?,
        })
    }

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
/// classifier. Input: `(B, 3, H, W)`, pixels as `(x - 127) / 128`.
#[derive(Debug)]
pub(crate) struct TensorNetwork {
    stem_weight: Tensor,
    stem_bias: Tensor,
    blocks: Vec<Block>,
    head: Pointwise,
    fc_weight_t: Tensor,
    fc_bias: Tensor,
}

impl TensorNetwork {
    pub fn new(w: &Weights, device: &Device) -> candle_core::Result<Self> {
        let stem = w.folded("_conv_stem", "_bn0")?;
        let stem_weight = Tensor::from_vec(stem.values, stem.dims.as_slice(), device)?;
        let stem_bias = Tensor::from_vec(stem.bias.clone(), (1, stem.bias.len(), 1, 1), device)?;
        let mut blocks = Vec::new();
        let mut channels = stem.dims[0];
        for spec in w.blocks()? {
            let p = &spec.prefix;
            let expand = if spec.has_expand {
                let f = w.folded(&format!("{p}_expand_conv"), &format!("{p}_bn0"))?;
                Some(Pointwise::new(f, device)?)
            } else {
                None
            };
            let dw = w.folded(&format!("{p}_depthwise_conv"), &format!("{p}_bn1"))?;
            let k = dw.dims[2];
            let depthwise = Depthwise::new(&dw.values, &dw.bias, k, spec.stride, device)?;
            let f = w.folded(&format!("{p}_project_conv"), &format!("{p}_bn2"))?;
            let project = Pointwise::new(f, device)?;
            let out = project.weight.dim(0)?;
            blocks.push(Block {
                expand,
                depthwise,
                project,
                residual: spec.stride == 1 && out == channels,
            });
            channels = out;
        }
        let head = Pointwise::new(w.folded("_conv_head", "_bn1")?, device)?;
        let fc = w.get("_fc.weight")?;
        if fc.dims() != [CLASSES, head.weight.dim(0)?] {
            candle_core::bail!(
                "_fc.weight is {:?}, expected [{CLASSES}, {}]",
                fc.dims(),
                head.weight.dim(0)?
            );
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
