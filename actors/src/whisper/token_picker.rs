//! [`TokenPicker`]: greedy choice of Whisper's next token for every route:
//! the prompt, the tokens never emitted (the config's list, every special
//! token but end-of-text, timestamps; on the first step end-of-text and the
//! blank too), rows that ended emitting end-of-text, and the prompt and
//! end-of-text cut from what is decoded.
//!
//! A multilingual model (a vocabulary of 51,865 tokens or more, as OpenAI's
//! `is_multilingual`) is prompted `<|startoftranscript|> <|lang|>
//! <|transcribe|> <|notimestamps|>`, its language the one its first step
//! ranks highest among the language tokens (Whisper's language detection, per
//! 30-second window); an English-only one `<|startoftranscript|>
//! <|notimestamps|>`.

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
    /// A multilingual model's language tokens and its `<|transcribe|>`.
    multilingual: Option<Multilingual>,
    /// -inf for tokens never emitted; 0 elsewhere.
    suppress: Vec<f32>,
    /// `suppress` plus end-of-text and the blank, for the first token.
    suppress_first: Vec<f32>,
    /// The two masks on the model's device, for candle's logits.
    on_device: [Tensor; 2],
}

/// What a multilingual model's prompt needs.
#[derive(Debug, Clone)]
struct Multilingual {
    /// The language tokens, `<|en|>` to the last before `<|translate|>`.
    languages: std::ops::Range<u32>,
    transcribe: u32,
}

/// The smallest vocabulary of a multilingual Whisper (English-only: 51,864).
const MULTILINGUAL_VOCAB: usize = 51_865;

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
        let multilingual = if config.vocab_size >= MULTILINGUAL_VOCAB {
            let translate = token(tokenizer, "<|translate|>", path)?;
            let transcribe = token(tokenizer, "<|transcribe|>", path)?;
            if translate <= sot + 1 {
                return Err(files_error(
                    path,
                    "a multilingual vocabulary without language tokens between \
                     <|startoftranscript|> and <|translate|>",
                ));
            }
            Some(Multilingual {
                languages: sot + 1..translate,
                transcribe,
            })
        } else {
            None
        };
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
            multilingual,
            suppress,
            suppress_first,
        })
    }

    /// The token every window's decoding starts from.
    pub fn start(&self) -> u32 {
        self.sot
    }

    /// Whether the prompt names a language, picked by [`Self::languages`]
    /// from the logits after [`Self::start`].
    pub fn is_multilingual(&self) -> bool {
        self.multilingual.is_some()
    }

    /// The language of each row of `logits` (`rows x vocab`, the logits after
    /// [`Self::start`]): the highest-ranked language token. English for an
    /// English-only model, which never asks.
    pub fn languages(&self, logits: &[f32]) -> Vec<u32> {
        let Some(m) = &self.multilingual else {
            return Vec::new();
        };
        let vocab = self.suppress.len().max(1);
        logits
            .chunks_exact(vocab)
            .map(|row| {
                let mut best = (f32::NEG_INFINITY, m.languages.start);
                for t in m.languages.clone() {
                    if let Some(&v) = row.get(t as usize) {
                        if v > best.0 {
                            best = (v, t);
                        }
                    }
                }
                best.1
            })
            .collect()
    }

    /// [`Self::languages`] of candle's `logits` (`rows x vocab`).
    pub fn languages_tensor(&self, logits: &Tensor) -> candle_core::Result<Vec<u32>> {
        Ok(self.languages(&logits.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?))
    }

    /// Every row's prompt, row `r` in `languages[r]` (none for an
    /// English-only model).
    pub fn prompts(&self, rows: usize, languages: &[u32]) -> Vec<Vec<u32>> {
        (0..rows)
            .map(|r| self.prompt(languages.get(r).copied()))
            .collect()
    }

    /// The prompt's tokens after [`Self::start`] (and, multilingual, after
    /// the row's `language`): `<|transcribe|>` where the model has languages,
    /// then `<|notimestamps|>`.
    pub fn rest_of_prompt(&self) -> Vec<u32> {
        match &self.multilingual {
            Some(m) => vec![m.transcribe, self.no_timestamps],
            None => vec![self.no_timestamps],
        }
    }

    /// The whole prompt of a row whose language token is `language` (ignored
    /// by an English-only model).
    pub fn prompt(&self, language: Option<u32>) -> Vec<u32> {
        let mut p = vec![self.sot];
        if self.is_multilingual() {
            p.extend(language);
        }
        p.extend(self.rest_of_prompt());
        p
    }

    /// Tokens in every row's prompt.
    fn prompt_len(&self) -> usize {
        if self.is_multilingual() {
            4
        } else {
            2
        }
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
        let prompt = self.prompt_len();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The checkout's Whisper tiny.en tokenizer and config (`REGATTA_WHISPER_DIR`).
    fn tiny_en() -> (Tokenizer, std::path::PathBuf, Config) {
        let dir = std::env::var_os("REGATTA_WHISPER_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| regatta_common::manifest_dir!().join("../models/whisper-tiny.en"));
        let path = dir.join("tokenizer.json");
        let tokenizer = Tokenizer::from_file(&path).unwrap();
        let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
        (tokenizer, path, serde_json::from_str(&text).unwrap())
    }

    #[test]
    fn an_english_only_model_is_prompted_without_a_language() {
        let (tokenizer, path, config) = tiny_en();
        assert_eq!(config.vocab_size, 51_864);
        let p = TokenPicker::new(&tokenizer, &path, &config, &Device::Cpu).unwrap();
        assert!(!p.is_multilingual());
        let sot = tokenizer.token_to_id(SOT_TOKEN).unwrap();
        let nt = tokenizer.token_to_id(NO_TIMESTAMPS_TOKEN).unwrap();
        assert_eq!(p.prompt(Some(sot + 1)), vec![sot, nt]);
        assert!(p.languages(&vec![0.0; config.vocab_size]).is_empty());
        assert_eq!(
            p.strip(vec![vec![sot, nt, 11, 12, p.eot, 13]]),
            vec![vec![11, 12]]
        );
    }

    /// A multilingual vocabulary (tiny.en's tokenizer holds the same special
    /// tokens, one place lower than the multilingual models'): the prompt names
    /// the language the first step ranks highest among the language tokens
    /// only, and `<|transcribe|>`.
    #[test]
    fn a_multilingual_model_is_prompted_with_the_language_it_ranks_first() {
        let (tokenizer, path, mut config) = tiny_en();
        config.vocab_size = MULTILINGUAL_VOCAB;
        let p = TokenPicker::new(&tokenizer, &path, &config, &Device::Cpu).unwrap();
        assert!(p.is_multilingual());
        let id = |t: &str| tokenizer.token_to_id(t).unwrap();
        let (sot, en, de) = (id(SOT_TOKEN), id("<|en|>"), id("<|de|>"));
        assert_eq!(en, sot + 1);
        let vocab = config.vocab_size;
        let mut logits = vec![0.0f32; 2 * vocab];
        logits[id("<|fr|>") as usize] = 3.0;
        logits[de as usize] = 5.0;
        logits[100] = 50.0; // a text token: never a language
        logits[vocab + en as usize] = 1.0;
        logits[vocab + id("<|transcribe|>") as usize] = 9.0; // nor a task
        assert_eq!(p.languages(&logits), vec![de, en]);
        let prompt = p.prompt(Some(de));
        assert_eq!(
            prompt,
            vec![sot, de, id("<|transcribe|>"), id(NO_TIMESTAMPS_TOKEN)]
        );
        let mut decoded = prompt.clone();
        decoded.extend([40, 41, p.eot]);
        assert_eq!(p.strip(vec![decoded]), vec![vec![40, 41]]);
    }
}
