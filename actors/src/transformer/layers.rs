//! The layers a transformer block is made of, on the CPU kernels: dense
//! projections (gemm over row pieces, bias, GELU or the residual fused into
//! the product's epilogue), layer norm, and the block itself in BERT's
//! post-norm or Whisper's pre-norm arrangement.

use std::ops::Range;

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::attention::self_attention;
use super::elementwise::{layer_norm_rows, Gelu};
use super::int8::{Epilogue, Int8Weights};
use crate::nhwc::{pointwise, Activation};

/// A tensor's values, row-major.
pub(crate) fn values(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

/// A dense (PyTorch `Linear`) projection.
#[derive(Debug, Clone)]
pub(crate) struct Dense {
    weights: DenseWeights,
    bias: Vec<f32>,
}

/// A projection's weights in the precision it runs at.
#[derive(Debug, Clone)]
enum DenseWeights {
    /// Transposed (`inputs x outputs`) for the row-major product.
    F32(Vec<f32>),
    Int8(Int8Weights),
}

impl Dense {
    /// Reads `weight` (`outputs x inputs`) and, when `with_bias`, `bias` under `vb`.
    pub fn load(vb: &VarBuilder, inputs: usize, outputs: usize, with_bias: bool) -> Result<Self> {
        let w = values(&vb.get((outputs, inputs), "weight")?)?;
        let bias = if with_bias {
            values(&vb.get(outputs, "bias")?)?
        } else {
            vec![0.0; outputs]
        };
        let mut weights_t = vec![0f32; w.len()];
        for (o, row) in w.chunks_exact(inputs).enumerate() {
            for (i, v) in row.iter().enumerate() {
                weights_t[i * outputs + o] = *v;
            }
        }
        Ok(Self::from_parts(weights_t, bias))
    }

    /// A projection from its transposed weights (`inputs x outputs`) and bias.
    pub fn from_parts(weights_t: Vec<f32>, bias: Vec<f32>) -> Self {
        Self {
            weights: DenseWeights::F32(weights_t),
            bias,
        }
    }

    /// A projection from int8 weights and its bias.
    pub fn from_int8(weights: Int8Weights, bias: Vec<f32>) -> Self {
        Self {
            weights: DenseWeights::Int8(weights),
            bias,
        }
    }

    /// Projections of the same input side by side (query, key, value), so one
    /// product computes all three. The parts are as loaded (f32): quantise after.
    pub fn side_by_side(parts: &[Dense]) -> Result<Self> {
        let outputs: usize = parts.iter().map(|p| p.bias.len()).sum();
        let inputs = parts.first().map_or(0, Dense::inputs);
        let mut weights_t = Vec::with_capacity(inputs * outputs);
        let f32_parts = parts
            .iter()
            .map(|p| match &p.weights {
                DenseWeights::F32(w) if w.len() == inputs * p.bias.len() => Ok((w, p.bias.len())),
                _ => Err(candle_core::Error::msg(
                    "projections joined side by side must be f32 with one input width",
                )),
            })
            .collect::<Result<Vec<_>>>()?;
        for i in 0..inputs {
            for (w, o) in &f32_parts {
                weights_t.extend_from_slice(&w[i * o..(i + 1) * o]);
            }
        }
        let bias = parts.iter().flat_map(|p| p.bias.iter().copied()).collect();
        Ok(Self::from_parts(weights_t, bias))
    }

    /// The same projection with int8 weights (see [`super::int8`]).
    pub fn quantized(self) -> Self {
        let outputs = self.outputs();
        match self.weights {
            DenseWeights::F32(w) => {
                let inputs = w.len() / outputs.max(1);
                let q = Int8Weights::quantize(inputs, outputs, |k, n| w[k * outputs + n]);
                Self {
                    weights: DenseWeights::Int8(q),
                    bias: self.bias,
                }
            }
            DenseWeights::Int8(_) => self,
        }
    }

    pub fn inputs(&self) -> usize {
        match &self.weights {
            DenseWeights::F32(w) => w.len() / self.bias.len().max(1),
            DenseWeights::Int8(q) => q.inputs(),
        }
    }

    pub fn outputs(&self) -> usize {
        self.bias.len()
    }

    /// `out = x · W + b (+ residual)`, then `activation`; `x` is `rows x inputs`.
    pub fn forward(
        &self,
        x: &[f32],
        residual: Option<&[f32]>,
        activation: Activation<'_>,
        out: &mut Vec<f32>,
    ) {
        let rows = x.len() / self.inputs().max(1);
        // Both products write every cell (bias first), so a reused buffer is
        // only resized, not zeroed again.
        out.resize(rows * self.outputs(), 0.0);
        match &self.weights {
            DenseWeights::F32(w) => pointwise(x, rows, w, &self.bias, residual, activation, out),
            DenseWeights::Int8(q) => {
                let fused = activation.is_elementwise();
                let epilogue = Epilogue {
                    bias: &self.bias,
                    residual,
                    activation: if fused {
                        activation
                    } else {
                        Activation::Linear
                    },
                };
                q.product(x, epilogue, out);
                if !fused {
                    activation.apply_rows(out, self.outputs());
                }
            }
        }
    }
}

/// Layer norm's scale and shift.
#[derive(Debug, Clone)]
pub(crate) struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

impl Norm {
    /// Reads `weight` and `bias` (`d` each) under `vb`.
    pub fn load(vb: &VarBuilder, d: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            gamma: values(&vb.get(d, "weight")?)?,
            beta: values(&vb.get(d, "bias")?)?,
            eps: eps as f32,
        })
    }

    /// Normalises each row of `rows` in place.
    pub fn apply(&self, rows: &mut [f32]) {
        layer_norm_rows(rows, &self.gamma, &self.beta, self.eps)
    }
}

/// Where a block's layer norms sit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NormPlacement {
    /// After each residual sum (BERT): `x = norm(x + f(x))`.
    Post,
    /// Before each sublayer (Whisper): `x = x + f(norm(x))`.
    Pre,
}

/// One encoder block: self-attention and a GELU feed-forward, each with its
/// residual and layer norm.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    /// Query, key and value side by side: `d x 3d`.
    pub qkv: Dense,
    pub attn_out: Dense,
    pub attn_norm: Norm,
    pub ff_in: Dense,
    pub ff_out: Dense,
    pub ff_norm: Norm,
    pub heads: usize,
    pub gelu: Gelu,
    pub placement: NormPlacement,
}

/// Buffers a forward pass reuses from block to block.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    normed: Vec<f32>,
    qkv: Vec<f32>,
    context: Vec<f32>,
    hidden: Vec<f32>,
    next: Vec<f32>,
}

impl Block {
    fn d(&self) -> usize {
        self.attn_out.outputs()
    }

    /// The same block with its dense layers at `precision`.
    pub fn at(self, precision: super::Precision) -> Self {
        match precision {
            super::Precision::F32 => self,
            super::Precision::Int8 => self.quantized(),
        }
    }

    /// The same block with its dense layers in int8.
    fn quantized(self) -> Self {
        Self {
            qkv: self.qkv.quantized(),
            attn_out: self.attn_out.quantized(),
            ff_in: self.ff_in.quantized(),
            ff_out: self.ff_out.quantized(),
            ..self
        }
    }

    /// Runs the block over `x` (`rows x d`, the packed `sequences`), in place.
    pub fn forward(&self, x: &mut Vec<f32>, sequences: &[Range<usize>], s: &mut Scratch) {
        let d = self.d();
        match self.placement {
            NormPlacement::Post => {
                self.qkv.forward(x, None, Activation::Linear, &mut s.qkv);
                s.context.resize(x.len(), 0.0);
                self_attention(&s.qkv, sequences, self.heads, d, &mut s.context);
                self.attn_out
                    .forward(&s.context, Some(x), Activation::Linear, &mut s.next);
                self.attn_norm.apply(&mut s.next);
                std::mem::swap(x, &mut s.next);
                self.ff_in
                    .forward(x, None, Activation::Gelu(self.gelu), &mut s.hidden);
                self.ff_out
                    .forward(&s.hidden, Some(x), Activation::Linear, &mut s.next);
                self.ff_norm.apply(&mut s.next);
                std::mem::swap(x, &mut s.next);
            }
            NormPlacement::Pre => {
                s.normed.clone_from(x);
                self.attn_norm.apply(&mut s.normed);
                self.qkv
                    .forward(&s.normed, None, Activation::Linear, &mut s.qkv);
                s.context.resize(x.len(), 0.0);
                self_attention(&s.qkv, sequences, self.heads, d, &mut s.context);
                self.attn_out
                    .forward(&s.context, Some(x), Activation::Linear, &mut s.next);
                std::mem::swap(x, &mut s.next);
                s.normed.clone_from(x);
                self.ff_norm.apply(&mut s.normed);
                self.ff_in
                    .forward(&s.normed, None, Activation::Gelu(self.gelu), &mut s.hidden);
                self.ff_out
                    .forward(&s.hidden, Some(x), Activation::Linear, &mut s.next);
                std::mem::swap(x, &mut s.next);
            }
        }
    }
}
