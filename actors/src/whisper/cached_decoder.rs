//! [`CachedDecoder`]: Whisper's text decoder with a key/value cache for its
//! self-attention. candle's decoder caches only the cross-attention, so each
//! greedy step ran every earlier token through every layer again (quadratic in
//! the tokens of a window); here a step runs only the new token, attending to
//! the keys and values kept from the steps before. Same weights, same
//! arithmetic per token (the causal mask made the rest redundant), so the
//! tokens match the uncached decoder's.

use candle_core::{Module, Result, Tensor};
use candle_nn::{embedding, layer_norm, linear, linear_no_bias, Embedding, LayerNorm, Linear};
use candle_nn::{LayerNormConfig, VarBuilder};
use candle_transformers::models::whisper::Config;

/// One attention: the projections and the head count.
struct Attention {
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    heads: usize,
}

impl Attention {
    fn load(d: usize, heads: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            query: linear(d, d, vb.pp("q_proj"))?,
            key: linear_no_bias(d, d, vb.pp("k_proj"))?,
            value: linear(d, d, vb.pp("v_proj"))?,
            out: linear(d, d, vb.pp("out_proj"))?,
            heads,
        })
    }

    /// `(rows, n, d)` → `(rows, heads, n, d / heads)`.
    fn heads(&self, x: &Tensor) -> Result<Tensor> {
        let (rows, n, d) = x.dims3()?;
        x.reshape((rows, n, self.heads, d / self.heads))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// Keys and values of `x`, split into heads.
    fn keys_values(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            self.heads(&self.key.forward(x)?)?,
            self.heads(&self.value.forward(x)?)?,
        ))
    }

    /// Scaled dot-product attention of `x`'s queries over `k`, `v`, with an
    /// additive `mask` over (new positions, all positions).
    fn attend(&self, x: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (rows, n, d) = x.dims3()?;
        let scale = ((d / self.heads) as f64).powf(-0.5);
        let q = (self.heads(&self.query.forward(x)?)? * scale)?;
        let mut w = q.matmul(&k.transpose(2, 3)?.contiguous()?)?;
        if let Some(m) = mask {
            w = w.broadcast_add(m)?;
        }
        let w = candle_nn::ops::softmax_last_dim(&w)?;
        let out = w.matmul(v)?.transpose(1, 2)?.reshape((rows, n, d))?;
        self.out.forward(&out)
    }
}

struct Layer {
    self_attn: Attention,
    self_ln: LayerNorm,
    cross_attn: Attention,
    cross_ln: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    mlp_ln: LayerNorm,
}

/// The decoder's weights.
pub struct CachedDecoder {
    tokens: Embedding,
    positions: Tensor,
    layers: Vec<Layer>,
    ln: LayerNorm,
    max_positions: usize,
}

/// One pass's cache: per layer, the cross-attention's keys and values of the
/// encoded audio, and the self-attention's of every token so far.
pub struct DecodeState {
    cross: Vec<(Tensor, Tensor)>,
    past: Vec<Option<(Tensor, Tensor)>>,
    /// Tokens decoded so far (the next one's position).
    len: usize,
}

fn norm(d: usize, vb: VarBuilder) -> Result<LayerNorm> {
    layer_norm(d, LayerNormConfig::from(1e-5), vb)
}

impl CachedDecoder {
    /// Reads the decoder of `vb` (the model's root, Hugging Face names).
    pub fn load(vb: &VarBuilder, config: &Config) -> Result<Self> {
        let vb = vb.pp("model.decoder");
        let d = config.d_model;
        let heads = config.decoder_attention_heads;
        let layers = (0..config.decoder_layers)
            .map(|i| {
                let vb = vb.pp(format!("layers.{i}"));
                Ok(Layer {
                    self_attn: Attention::load(d, heads, vb.pp("self_attn"))?,
                    self_ln: norm(d, vb.pp("self_attn_layer_norm"))?,
                    cross_attn: Attention::load(d, heads, vb.pp("encoder_attn"))?,
                    cross_ln: norm(d, vb.pp("encoder_attn_layer_norm"))?,
                    fc1: linear(d, 4 * d, vb.pp("fc1"))?,
                    fc2: linear(4 * d, d, vb.pp("fc2"))?,
                    mlp_ln: norm(d, vb.pp("final_layer_norm"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            tokens: embedding(config.vocab_size, d, vb.pp("embed_tokens"))?,
            positions: vb.get((config.max_target_positions, d), "embed_positions.weight")?,
            layers,
            ln: norm(d, vb.pp("layer_norm"))?,
            max_positions: config.max_target_positions,
        })
    }

    /// The most tokens a window may hold.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// A pass over `audio` (the encoder's output, `(rows, frames, d)`): the
    /// cross-attention's keys and values computed once.
    pub fn start(&self, audio: &Tensor) -> Result<DecodeState> {
        let cross = self
            .layers
            .iter()
            .map(|l| l.cross_attn.keys_values(audio))
            .collect::<Result<Vec<_>>>()?;
        Ok(DecodeState {
            cross,
            past: vec![None; self.layers.len()],
            len: 0,
        })
    }

    /// Runs `new` tokens (`(rows, n)`, the prompt first, then one per step)
    /// and gives the logits after the last of them, `(rows, vocab)`.
    pub fn step(&self, state: &mut DecodeState, new: &Tensor) -> Result<Tensor> {
        let (_, n) = new.dims2()?;
        let start = state.len;
        let positions = self.positions.narrow(0, start, n)?;
        let mut x = self.tokens.forward(new)?.broadcast_add(&positions)?;
        // New token i sees every earlier token and the new ones up to itself.
        let mask = if n > 1 {
            let total = start + n;
            let m: Vec<f32> = (0..n)
                .flat_map(|i| {
                    (0..total).map(move |j| {
                        if j > start + i {
                            f32::NEG_INFINITY
                        } else {
                            0.0
                        }
                    })
                })
                .collect();
            Some(Tensor::from_vec(m, (n, total), new.device())?)
        } else {
            None
        };
        for (i, layer) in self.layers.iter().enumerate() {
            let h = layer.self_ln.forward(&x)?;
            let (k, v) = layer.self_attn.keys_values(&h)?;
            let (k, v) = match &state.past[i] {
                Some((pk, pv)) => (Tensor::cat(&[pk, &k], 2)?, Tensor::cat(&[pv, &v], 2)?),
                None => (k, v),
            };
            let a = layer.self_attn.attend(&h, &k, &v, mask.as_ref())?;
            state.past[i] = Some((k, v));
            x = (x + a)?;
            let h = layer.cross_ln.forward(&x)?;
            let (ck, cv) = &state.cross[i];
            x = (&x + layer.cross_attn.attend(&h, ck, cv, None)?)?;
            let h = layer.fc1.forward(&layer.mlp_ln.forward(&x)?)?.gelu()?;
            x = (&x + layer.fc2.forward(&h)?)?;
        }
        state.len += n;
        let last = x.narrow(1, n - 1, 1)?.squeeze(1)?;
        let last = self.ln.forward(&last)?;
        last.matmul(&self.tokens.embeddings().t()?)
    }
}
