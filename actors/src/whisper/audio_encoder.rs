//! [`AudioEncoder`]: Whisper's audio encoder on regatta's CPU kernels
//! ([`crate::transformer`]): two 1-D convolutions as matrix products over
//! gathered frames (im2col) with GELU fused, sinusoidal positions, pre-norm
//! blocks with fused attention over each window's 1,500 positions. One window
//! at a time, so a pass holds one window's activations (about 25 MB for
//! tiny), not a batch's attention matrices.

use candle_nn::VarBuilder;
use candle_transformers::models::whisper::Config;

use crate::nhwc::Activation;
use crate::transformer::layers::{values, Block, Dense, Norm, NormPlacement};
use crate::transformer::SharedScratch;
use crate::transformer::{Gelu, Precision};

/// Layer norm epsilon of every Whisper norm.
const EPS: f64 = 1e-5;

/// A 1-D convolution of kernel 3 and padding 1, as a dense layer over
/// gathered frames: its weights' rows ordered (tap, input channel).
#[derive(Debug)]
struct Conv3 {
    dense: Dense,
    inputs: usize,
    stride: usize,
}

impl Conv3 {
    fn load(
        vb: &VarBuilder,
        inputs: usize,
        outputs: usize,
        stride: usize,
    ) -> candle_core::Result<Self> {
        let w = values(&vb.get((outputs, inputs, 3), "weight")?)?;
        let bias = values(&vb.get(outputs, "bias")?)?;
        let mut weights_t = vec![0f32; w.len()];
        for o in 0..outputs {
            for c in 0..inputs {
                for tap in 0..3 {
                    weights_t[(tap * inputs + c) * outputs + o] = w[(o * inputs + c) * 3 + tap];
                }
            }
        }
        Ok(Self {
            dense: Dense::from_parts(weights_t, bias),
            inputs,
            stride,
        })
    }

    /// `x` is `frames x inputs` (time-major); the result `out_frames x outputs`, GELU applied.
    fn forward(&self, x: &[f32], gelu: Gelu, cols: &mut Vec<f32>, out: &mut Vec<f32>) {
        let c = self.inputs;
        let frames = x.len() / c.max(1);
        let out_frames = (frames + 2 - 3) / self.stride + 1;
        cols.clear();
        cols.resize(out_frames * 3 * c, 0.0);
        for (t, patch) in cols.chunks_exact_mut(3 * c).enumerate() {
            for tap in 0..3 {
                // Input frame t·stride + tap - 1; outside the input is padding.
                let Some(src) = (t * self.stride + tap).checked_sub(1) else {
                    continue;
                };
                if let Some(frame) = x.get(src * c..(src + 1) * c) {
                    patch[tap * c..(tap + 1) * c].copy_from_slice(frame);
                }
            }
        }
        self.dense.forward(cols, None, Activation::Gelu(gelu), out);
    }
}

/// A Whisper attention's query, key (no bias), value and output projections
/// under `vb` (Hugging Face names), encoder and decoder alike.
pub(super) fn attention_parts(
    vb: &VarBuilder,
    d: usize,
) -> candle_core::Result<(Dense, Dense, Dense, Dense)> {
    Ok((
        Dense::load(&vb.pp("q_proj"), d, d, true)?,
        Dense::load(&vb.pp("k_proj"), d, d, false)?,
        Dense::load(&vb.pp("v_proj"), d, d, true)?,
        Dense::load(&vb.pp("out_proj"), d, d, true)?,
    ))
}

/// The encoder's weights.
#[derive(Debug)]
pub struct AudioEncoder {
    conv1: Conv3,
    conv2: Conv3,
    /// `positions x d` sinusoids, as Whisper computes them.
    positions: Vec<f32>,
    blocks: Vec<Block>,
    ln_post: Norm,
    mels: usize,
    d: usize,
    gelu: Gelu,
    scratch: SharedScratch,
}

/// Whisper's positional sinusoids (`sin` then `cos` halves per position).
fn sinusoids(length: usize, channels: usize) -> Vec<f32> {
    let half = channels / 2;
    let step = 10_000f32.ln() / (half.max(2) - 1) as f32;
    let mut out = Vec::with_capacity(length * channels);
    for t in 0..length {
        let scaled: Vec<f32> = (0..half)
            .map(|i| t as f32 * (i as f32 * -step).exp())
            .collect();
        out.extend(scaled.iter().map(|v| v.sin()));
        out.extend(scaled.iter().map(|v| v.cos()));
    }
    out
}

impl AudioEncoder {
    /// Reads the encoder of `vb` (the model's root, Hugging Face names).
    /// Each block is quantised as soon as it is read (int8).
    pub fn load(
        vb: &VarBuilder,
        config: &Config,
        precision: Precision,
    ) -> candle_core::Result<Self> {
        let vb = vb.pp("model.encoder");
        let d = config.d_model;
        let heads = config.encoder_attention_heads;
        crate::transformer::check_heads("d_model", d, heads).map_err(candle_core::Error::msg)?;
        // Whisper's GELU is the exact one (PyTorch's nn.GELU()).
        let gelu = Gelu::Erf;
        let blocks = (0..config.encoder_layers)
            .map(|i| {
                let l = vb.pp(format!("layers.{i}"));
                let (q, k, v, out) = attention_parts(&l.pp("self_attn"), d)?;
                let block = Block {
                    qkv: Dense::side_by_side(&[q, k, v])?,
                    attn_out: out,
                    attn_norm: Norm::load(&l.pp("self_attn_layer_norm"), d, EPS)?,
                    ff_in: Dense::load(&l.pp("fc1"), d, 4 * d, true)?,
                    ff_out: Dense::load(&l.pp("fc2"), 4 * d, d, true)?,
                    ff_norm: Norm::load(&l.pp("final_layer_norm"), d, EPS)?,
                    heads,
                    gelu,
                    placement: NormPlacement::Pre,
                };
                Ok(block.at(precision))
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            conv1: Conv3::load(&vb.pp("conv1"), config.num_mel_bins, d, 1)?,
            conv2: Conv3::load(&vb.pp("conv2"), d, d, 2)?,
            positions: sinusoids(config.max_source_positions, d),
            blocks,
            ln_post: Norm::load(&vb.pp("layer_norm"), d, EPS)?,
            mels: config.num_mel_bins,
            d,
            gelu,
            scratch: SharedScratch::default(),
        })
    }

    /// The width of an encoded position.
    pub fn width(&self) -> usize {
        self.d
    }

    /// Encodes one window of log-mel frames (`mels x frames`, as the
    /// featuriser lays them out) into `positions x d`, appended to `out`.
    pub fn encode_window(&self, mel: &[f32], out: &mut Vec<f32>) -> Result<(), String> {
        let frames = mel.len() / self.mels.max(1);
        if frames == 0 || mel.len() != frames * self.mels {
            return Err(format!(
                "a window of {} values is not {} mel bins of whole frames",
                mel.len(),
                self.mels
            ));
        }
        // Time-major: one row of mel bins per frame.
        let mut x = vec![0f32; mel.len()];
        for (bin, row) in mel.chunks_exact(frames).enumerate() {
            for (t, v) in row.iter().enumerate() {
                x[t * self.mels + bin] = *v;
            }
        }
        let (mut cols, mut h) = (Vec::new(), Vec::new());
        self.conv1.forward(&x, self.gelu, &mut cols, &mut h);
        self.conv2.forward(&h, self.gelu, &mut cols, &mut x);
        let positions = x.len() / self.d;
        let table = self.positions.get(..positions * self.d).ok_or_else(|| {
            format!(
                "{positions} positions, past the encoder's {}",
                self.positions.len() / self.d.max(1)
            )
        })?;
        x.iter_mut().zip(table).for_each(|(v, p)| *v += p);
        let window = 0..positions;
        let mut scratch = self.scratch.lock();
        for block in &self.blocks {
            block.forward(&mut x, std::slice::from_ref(&window), &mut scratch);
        }
        self.ln_post.apply(&mut x);
        out.extend_from_slice(&x);
        Ok(())
    }
}
