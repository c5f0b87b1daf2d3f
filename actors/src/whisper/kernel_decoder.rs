//! [`KernelDecoder`]: Whisper's text decoder on regatta's CPU kernels, with
//! the same key/value caching as [`super::cached_decoder::CachedDecoder`]
//! (candle's ops, which GPUs run): a greedy step runs only the new token of
//! each row, attending to the keys and values kept from the steps before, and
//! the cross-attention's keys and values over the audio are computed once per
//! pass. Tokens go in one at a time, the prompt too (the causal mask makes
//! that the same arithmetic).

use candle_nn::VarBuilder;
use candle_transformers::models::whisper::Config;

use super::audio_encoder::attention_parts;
use crate::nhwc::Activation;
use crate::product::{product, SharedOut, Strided};
use crate::transformer::attention::query_attention;
use crate::transformer::half_keys::{extend_half, query_attention_half};
use crate::transformer::int8::Int8Weights;
use crate::transformer::layers::{values, Dense, Norm};
use crate::transformer::{Gelu, Precision};
use rayon::prelude::*;

const EPS: f64 = 1e-5;

/// Vocabulary rows per parallel piece of the logits: 8,192 rows of tiny.en's
/// 384 values are 12 MB, a few pieces per thread.
const LOGIT_PIECE: usize = 8192;

#[derive(Debug)]
struct Layer {
    /// Query, key (no bias) and value of the new token, side by side.
    self_qkv: Dense,
    self_out: Dense,
    self_ln: Norm,
    cross_q: Dense,
    /// Key (no bias) and value of the audio, side by side.
    cross_kv: Dense,
    cross_out: Dense,
    cross_ln: Norm,
    fc1: Dense,
    fc2: Dense,
    mlp_ln: Norm,
}

impl Layer {
    /// The same layer with its dense layers in int8 (norms stay f32).
    fn quantized(self) -> Self {
        Self {
            self_qkv: self.self_qkv.quantized(),
            self_out: self.self_out.quantized(),
            cross_q: self.cross_q.quantized(),
            cross_kv: self.cross_kv.quantized(),
            cross_out: self.cross_out.quantized(),
            fc1: self.fc1.quantized(),
            fc2: self.fc2.quantized(),
            ..self
        }
    }
}

/// The decoder's weights.
#[derive(Debug)]
pub struct KernelDecoder {
    /// The token embeddings, `vocab x d`: also the output projection, read
    /// transposed in place (a transposed copy would be another 80 MB for tiny).
    tokens: Vec<f32>,
    positions: Vec<f32>,
    layers: Vec<Layer>,
    ln: Norm,
    heads: usize,
    d: usize,
    vocab: usize,
    max_positions: usize,
    /// The output projection in int8, when the decoder is quantised: the
    /// largest product of a step (vocab x d per row), read once per step.
    logits_int8: Option<Dense>,
}

/// One pass's caches: per layer, the audio's keys and values
/// (`rows * frames x 2d`, in f16) and every earlier token's
/// (`rows * capacity x 2d`).
#[derive(Debug)]
pub struct KernelDecodeState {
    rows: usize,
    /// Windows added so far; steps run once all `rows` are.
    windows: usize,
    frames: usize,
    cross: Vec<Vec<u16>>,
    past: Vec<Vec<f32>>,
    capacity: usize,
    len: usize,
}

impl KernelDecoder {
    /// Reads the decoder of `vb` (the model's root, Hugging Face names).
    /// At int8, each layer is quantised as soon as it is read, and the output
    /// projection (the token embeddings, transposed) once they are.
    pub fn load(
        vb: &VarBuilder,
        config: &Config,
        precision: Precision,
    ) -> candle_core::Result<Self> {
        let vb = vb.pp("model.decoder");
        let d = config.d_model;
        let heads = config.decoder_attention_heads;
        crate::transformer::check_heads("d_model", d, heads).map_err(candle_core::Error::msg)?;
        // The token embeddings first: the largest tensor (80 MB for tiny.en)
        // is briefly held twice while it is copied out of the file's tensor,
        // which then costs least, with nothing else loaded yet.
        let vocab = config.vocab_size;
        let tokens = values(&vb.get((vocab, d), "embed_tokens.weight")?)?;
        let layers = (0..config.decoder_layers)
            .map(|i| {
                let l = vb.pp(format!("layers.{i}"));
                let (q, k, v, out) = attention_parts(&l.pp("self_attn"), d)?;
                let (cq, ck, cv, cout) = attention_parts(&l.pp("encoder_attn"), d)?;
                let layer = Layer {
                    self_qkv: Dense::side_by_side(&[q, k, v])?,
                    self_out: out,
                    self_ln: Norm::load(&l.pp("self_attn_layer_norm"), d, EPS)?,
                    cross_q: cq,
                    cross_kv: Dense::side_by_side(&[ck, cv])?,
                    cross_out: cout,
                    cross_ln: Norm::load(&l.pp("encoder_attn_layer_norm"), d, EPS)?,
                    fc1: Dense::load(&l.pp("fc1"), d, 4 * d, true)?,
                    fc2: Dense::load(&l.pp("fc2"), 4 * d, d, true)?,
                    mlp_ln: Norm::load(&l.pp("final_layer_norm"), d, EPS)?,
                };
                Ok(match precision {
                    Precision::F32 => layer,
                    Precision::Int8 => layer.quantized(),
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let logits_int8 = (precision == Precision::Int8).then(|| {
            Dense::from_int8(
                Int8Weights::quantize(d, vocab, |k, n| tokens[n * d + k]),
                vec![0f32; vocab],
            )
        });
        Ok(Self {
            tokens,
            positions: values(
                &vb.get((config.max_target_positions, d), "embed_positions.weight")?,
            )?,
            layers,
            ln: Norm::load(&vb.pp("layer_norm"), d, EPS)?,
            heads,
            d,
            vocab,
            max_positions: config.max_target_positions,
            logits_int8,
        })
    }

    /// The most tokens a window may hold.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// A pass of `rows` windows: their encoder outputs are added one by one
    /// with [`Self::add_window`] before the first step.
    pub fn start(&self, rows: usize) -> KernelDecodeState {
        KernelDecodeState {
            rows,
            windows: 0,
            frames: 0,
            cross: vec![Vec::new(); self.layers.len()],
            past: vec![Vec::new(); self.layers.len()],
            capacity: 0,
            len: 0,
        }
    }

    /// Adds the next window's encoder output (`frames x d`) to a pass: each
    /// layer's cross-attention keys and values over it, computed once and
    /// kept in f16 (so the pass never holds all its windows' encoder output,
    /// nor their keys and values, in f32).
    pub fn add_window(&self, state: &mut KernelDecodeState, audio: &[f32]) -> Result<(), String> {
        let frames = audio.len() / self.d.max(1);
        if frames == 0 || audio.len() != frames * self.d {
            return Err(format!(
                "an encoder output of {} values is not whole {}-wide frames",
                audio.len(),
                self.d
            ));
        }
        if state.windows == state.rows || (state.windows > 0 && frames != state.frames) {
            return Err(format!(
                "window {} of {frames} frames does not fit a pass of {} windows of {} frames",
                state.windows + 1,
                state.rows,
                state.frames
            ));
        }
        let mut kv = Vec::new();
        for (layer, cross) in self.layers.iter().zip(&mut state.cross) {
            layer
                .cross_kv
                .forward(audio, None, Activation::Linear, &mut kv);
            extend_half(cross, &kv);
        }
        state.frames = frames;
        state.windows += 1;
        Ok(())
    }

    /// Grows each layer's token cache to hold `needed` positions per row,
    /// doubling, each row's block kept whole.
    fn reserve(&self, state: &mut KernelDecodeState, needed: usize) {
        if needed <= state.capacity {
            return;
        }
        let capacity = needed.max(2 * state.capacity).max(16);
        let width = 2 * self.d;
        for past in &mut state.past {
            let mut grown = vec![0f32; state.rows * capacity * width];
            for r in 0..state.rows {
                let old = &past[r * state.capacity * width..][..state.len * width];
                grown[r * capacity * width..][..state.len * width].copy_from_slice(old);
            }
            *past = grown;
        }
        state.capacity = capacity;
    }

    /// Runs one new token per row and gives the logits after it, `rows x vocab`.
    pub fn step(&self, state: &mut KernelDecodeState, tokens: &[u32]) -> Result<Vec<f32>, String> {
        let (d, rows) = (self.d, state.rows);
        if tokens.len() != rows {
            return Err(format!("{} tokens for {rows} rows", tokens.len()));
        }
        if state.windows != rows {
            return Err(format!(
                "a step with {} of the pass's {rows} windows added",
                state.windows
            ));
        }
        let position = state.len;
        let pos = self
            .positions
            .get(position * d..(position + 1) * d)
            .ok_or_else(|| {
                format!(
                    "position {position} past the decoder's {}",
                    self.max_positions
                )
            })?;
        let mut x = Vec::with_capacity(rows * d);
        for &t in tokens {
            let t = t as usize;
            let row = self
                .tokens
                .get(t * d..(t + 1) * d)
                .ok_or_else(|| format!("token {t} outside the vocabulary of {}", self.vocab))?;
            x.extend(row.iter().zip(pos).map(|(a, b)| a + b));
        }
        self.reserve(state, position + 1);
        let (mut h, mut qkv, mut ctx, mut next, mut hidden) = (
            Vec::new(),
            Vec::new(),
            vec![0f32; rows * d],
            Vec::new(),
            Vec::new(),
        );
        let width = 2 * d;
        for (i, layer) in self.layers.iter().enumerate() {
            // Self-attention over the tokens so far, this one included.
            h.clone_from(&x);
            layer.self_ln.apply(&mut h);
            layer
                .self_qkv
                .forward(&h, None, Activation::Linear, &mut qkv);
            let past = &mut state.past[i];
            for r in 0..rows {
                let at = (r * state.capacity + position) * width;
                past[at..at + width].copy_from_slice(&qkv[r * 3 * d + d..(r + 1) * 3 * d]);
                h[r * d..(r + 1) * d].copy_from_slice(&qkv[r * 3 * d..r * 3 * d + d]);
            }
            query_attention(
                &h,
                past,
                position + 1,
                state.capacity,
                self.heads,
                d,
                &mut ctx,
            );
            layer
                .self_out
                .forward(&ctx, Some(&x), Activation::Linear, &mut next);
            std::mem::swap(&mut x, &mut next);
            // Cross-attention over the audio.
            h.clone_from(&x);
            layer.cross_ln.apply(&mut h);
            layer
                .cross_q
                .forward(&h, None, Activation::Linear, &mut next);
            query_attention_half(
                &next,
                &state.cross[i],
                state.frames,
                self.heads,
                d,
                &mut ctx,
            );
            layer
                .cross_out
                .forward(&ctx, Some(&x), Activation::Linear, &mut next);
            std::mem::swap(&mut x, &mut next);
            // Feed-forward.
            h.clone_from(&x);
            layer.mlp_ln.apply(&mut h);
            layer
                .fc1
                .forward(&h, None, Activation::Gelu(Gelu::Erf), &mut hidden);
            layer
                .fc2
                .forward(&hidden, Some(&x), Activation::Linear, &mut next);
            std::mem::swap(&mut x, &mut next);
        }
        state.len += 1;
        self.ln.apply(&mut x);
        Ok(self.logits(&x))
    }

    /// Each row of `x` (`rows x d`) against every token's embedding: `rows x vocab`.
    fn logits(&self, x: &[f32]) -> Vec<f32> {
        let (d, vocab) = (self.d, self.vocab);
        let rows = x.len() / d.max(1);
        if let Some(projection) = &self.logits_int8 {
            let mut out = Vec::new();
            projection.forward(x, None, Activation::Linear, &mut out);
            return out;
        }
        let mut out = vec![0f32; rows * vocab];
        if rows == 0 || x.len() != rows * d || self.tokens.len() != vocab * d {
            return out;
        }
        // Vocabulary pieces in parallel: a step reads the whole embedding
        // table (80 MB for tiny.en) for a handful of rows, which one core
        // alone streams at half the speed two do. Each piece writes its own
        // columns of every row.
        let dst = SharedOut(out.as_mut_ptr());
        (0..vocab)
            .into_par_iter()
            .step_by(LOGIT_PIECE)
            .for_each(|v0| {
                let n = LOGIT_PIECE.min(vocab - v0);
                // SAFETY: checked above: x is rows x d, tokens vocab x d (rows
                // v0..v0+n read as their transpose, d x n: row step 1, column
                // step d), out rows x vocab, of which this piece alone writes
                // columns v0..v0+n.
                unsafe {
                    product(
                        (rows, n, d),
                        dst.ptr().add(v0),
                        vocab,
                        Strided {
                            ptr: x.as_ptr(),
                            row: d,
                            col: 1,
                        },
                        Strided {
                            ptr: self.tokens.as_ptr().add(v0 * d),
                            row: 1,
                            col: d,
                        },
                        1.0,
                    );
                }
            });
        out
    }
}
