//! The layers a transformer block is made of, on the CPU kernels: dense
//! projections (gemm over row pieces, bias, GELU or the residual fused into
//! the product's epilogue), layer norm, and the block itself in BERT's
//! post-norm or Whisper's pre-norm arrangement.

use std::ops::Range;

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::attention::self_attention;
use super::elementwise::{layer_norm_rows, Gelu};
use crate::nhwc::{pointwise, Activation};

/// A tensor's values, row-major.
pub(crate) fn values(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

/// A dense (PyTorch `Linear`) projection, its weights stored transposed
/// (`inputs x outputs`) for the row-major product.
#[derive(Debug, Clone)]
pub(crate) struct Dense {
    weights_t: Vec<f32>,
    bias: Vec<f32>,
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
        Ok(Self { weights_t, bias })
    }

    /// A projection from its transposed weights (`inputs x outputs`) and bias.
    pub fn from_parts(weights_t: Vec<f32>, bias: Vec<f32>) -> Self {
        Self { weights_t, bias }
    }

    /// Projections of the same input side by side (query, key, value), so one
    /// product computes all three.
    pub fn side_by_side(parts: &[Dense]) -> Self {
        let outputs: usize = parts.iter().map(|p| p.bias.len()).sum();
        let inputs = parts.first().map_or(0, Dense::inputs);
        let mut weights_t = Vec::with_capacity(inputs * outputs);
        for i in 0..inputs {
            for p in parts {
                let o = p.bias.len();
                weights_t.extend_from_slice(&p.weights_t[i * o..(i + 1) * o]);
            }
        }
        let bias = parts.iter().flat_map(|p| p.bias.iter().copied()).collect();
        Self { weights_t, bias }
    }

    pub fn inputs(&self) -> usize {
        self.weights_t.len() / self.bias.len().max(1)
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
        out.clear();
        out.resize(rows * self.outputs(), 0.0);
        pointwise(
            x,
            rows,
            &self.weights_t,
            &self.bias,
            residual,
            activation,
            out,
        );
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
