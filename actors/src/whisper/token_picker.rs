//! [`TokenPicker`]: greedy choice of Whisper's next token for every route:
//! the prompt, the tokens never emitted (the config's list, every special
//! token but end-of-text, timestamps; on the first step end-of-text and the
//! blank too), rows that ended emitting end-of-text, and the prompt and
//! end-of-text cut from what is decoded.

use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use candle_transformers::models::whisper::{Config, EOT_TOKEN, NO_TIMESTAMPS_TOKEN, SOT_TOKEN};
use tokenizers::Tokenizer;

use crate::model_files::files_error;
use crate::Result;

/// The picker of one model.
pub(crate) struct TokenPicker {
    sot: u32,
    eot: u32,
    no_timestamps: u32,
    /// -inf for tokens never emitted; 0 elsewhere.
    suppress: Vec<f32>,
    /// `suppress` plus end-of-text and the blank, for the first token.
    suppress_first: Vec<f32>,
    /// The two masks on the model's device, for candle's logits.
    on_device: [Tensor; 2],
}

fn token(tokenizer: &Tokenizer, text: &str, path: &Path) -> Result<u32> {
    tokenizer
        .token_to_id(text)
        .ok_or_else(|| files_error(path, format!("the tokenizer has no {text} token")))
}

impl TokenPicker {
    /// The picker for `config`'s vocabulary, its special tokens read from
    /// `tokenizer` (loaded from `path`).
    pub fn new(
        tokenizer: &Tokenizer,
        path: &Path,
        config: &Config,
        device: &Device,
    ) -> Result<Self> {
        let sot = token(tokenizer, SOT_TOKEN, path)?;
        let eot = token(tokenizer, EOT_TOKEN, path)?;
        let no_timestamps = token(tokenizer, NO_TIMESTAMPS_TOKEN, path)?;
        let blank = tokenizer.token_to_id("Ġ").unwrap_or(220);
        let suppress: Vec<f32> = (0..config.vocab_size as u32)
            .map(|t| {
                let special = t > eot; // sot, languages, tasks, no-timestamps, timestamps
                if special || config.suppress_tokens.contains(&t) {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        let mut suppress_first = suppress.clone();
        for t in [eot, blank] {
            if let Some(m) = suppress_first.get_mut(t as usize) {
                *m = f32::NEG_INFINITY;
            }
        }
        let tensor = |mask: &[f32]| {
            Tensor::from_slice(mask, mask.len(), device).map_err(|e| files_error(path, e))
        };
        Ok(Self {
            on_device: [tensor(&suppress)?, tensor(&suppress_first)?],
            sot,
            eot,
            no_timestamps,
            suppress,
            suppress_first,
        })
    }

    /// The tokens every window's decoding starts from.
    pub fn prompt(&self) -> [u32; 2] {
        [self.sot, self.no_timestamps]
    }

    /// `t`, or end-of-text for a row that ended; marks the row ended at end-of-text.
    fn finish(&self, t: u32, done: &mut bool) -> u32 {
        let t = if *done { self.eot } else { t };
        *done |= t == self.eot;
        t
    }

    /// The next token of each row of candle's `logits` (`rows x vocab`).
    pub fn pick_tensor(
        &self,
        logits: &Tensor,
        first: bool,
        done: &mut [bool],
    ) -> candle_core::Result<Vec<u32>> {
        let mask = &self.on_device[usize::from(first)];
        let next: Vec<u32> = logits
            .broadcast_add(mask)?
            .argmax(D::Minus1)?
            .to_dtype(DType::U32)?
            .to_vec1()?;
        Ok(next
            .into_iter()
            .zip(done)
            .map(|(t, d)| self.finish(t, d))
            .collect())
    }

    /// The next token of each row of plain `logits` (`rows x vocab`): the
    /// first highest unsuppressed one, as candle's argmax picks.
    pub fn pick(&self, logits: &[f32], first: bool, done: &mut [bool]) -> Vec<u32> {
        let mask = if first {
            &self.suppress_first
        } else {
            &self.suppress
        };
        logits
            .chunks_exact(mask.len().max(1))
            .zip(done)
            .map(|(row, d)| {
                let mut best = (f32::NEG_INFINITY, self.eot);
                for (t, (l, m)) in row.iter().zip(mask).enumerate() {
                    let v = l + m;
                    if v > best.0 {
                        best = (v, t as u32);
                    }
                }
                self.finish(best.1, d)
            })
            .collect()
    }

    /// Each row's tokens without the prompt and from end-of-text on.
    pub fn strip(&self, tokens: Vec<Vec<u32>>) -> Vec<Vec<u32>> {
        let prompt = self.prompt().len();
        tokens
            .into_iter()
            .map(|t| {
                t.into_iter()
                    .skip(prompt)
                    .take_while(|&x| x != self.eot)
                    .collect()
            })
            .collect()
    }
}
