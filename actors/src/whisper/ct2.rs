//! Whisper weights in CTranslate2's `model.bin` (format 6, a `WhisperSpec`), the
//! layout faster-whisper and PyPI packages ship, read as they are: each
//! variable is renamed to the Hugging Face name the network reads, fused
//! projections are split by rows, and the network's config comes from the
//! shapes. The same mapping as `scripts/whisper_convert.py`, without a
//! converted copy on disk.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::whisper::Config;

use crate::model_files::files_error;
use crate::Result;

/// One variable: its type, dims and bytes.
struct Var {
    dtype: DType,
    dims: Vec<usize>,
    bytes: std::ops::Range<usize>,
}

/// A little-endian reader over the file's bytes, failing (not panicking) past
/// the end.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<std::ops::Range<usize>> {
        let end = self.pos.checked_add(n)?;
        if end > self.data.len() {
            return None;
        }
        let r = self.pos..end;
        self.pos = end;
        Some(r)
    }
    fn u8(&mut self) -> Option<u8> {
        let r = self.take(1)?;
        Some(self.data[r.start])
    }
    fn u16(&mut self) -> Option<u16> {
        let r = self.take(2)?;
        Some(u16::from_le_bytes([
            self.data[r.start],
            self.data[r.start + 1],
        ]))
    }
    fn u32(&mut self) -> Option<u32> {
        let r = self.take(4)?;
        let b = &self.data[r];
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Option<String> {
        let n = self.u16()? as usize;
        let r = self.take(n)?;
        let bytes = &self.data[r];
        // Stored with its NUL.
        let text = bytes.strip_suffix(&[0]).unwrap_or(bytes);
        Some(String::from_utf8_lossy(text).into_owned())
    }
}

/// The variables of a format-6 `WhisperSpec` model.bin.
fn read_vars(path: &Path, data: &[u8]) -> Result<HashMap<String, Var>> {
    let bad = |what: &str| files_error(path, format!("not a CTranslate2 Whisper model: {what}"));
    let mut r = Reader { data, pos: 0 };
    let version = r.u32().ok_or_else(|| bad("truncated header"))?;
    if version != 6 {
        return Err(bad(&format!("format version {version}, expected 6")));
    }
    let spec = r.string().ok_or_else(|| bad("truncated header"))?;
    if spec != "WhisperSpec" {
        return Err(bad(&format!("a {spec}, not a WhisperSpec")));
    }
    r.u32().ok_or_else(|| bad("truncated header"))?; // spec revision
    let count = r.u32().ok_or_else(|| bad("truncated header"))?;
    let mut vars = HashMap::new();
    for _ in 0..count {
        let truncated = || bad("truncated variable table");
        let name = r.string().ok_or_else(truncated)?;
        let rank = r.u8().ok_or_else(truncated)?;
        let mut dims = Vec::with_capacity(rank as usize);
        for _ in 0..rank {
            dims.push(r.u32().ok_or_else(truncated)? as usize);
        }
        let dtype = match r.u8().ok_or_else(truncated)? {
            0 => DType::F32,
            4 => DType::F16,
            5 => DType::BF16,
            // Integers (int8 weights, int16/int32 scalars) are kept by their
            // width: `scalar` reads the bytes, `tensor` refuses them.
            1 => DType::U8,
            2 => DType::I16,
            3 => DType::U32,
            other => return Err(bad(&format!("{name} has unknown type {other}"))),
        };
        let n = r.u32().ok_or_else(truncated)? as usize;
        let bytes = r.take(n).ok_or_else(truncated)?;
        vars.insert(name, Var { dtype, dims, bytes });
    }
    Ok(vars)
}

/// The Whisper network's weights (f32, Hugging Face names) and config read
/// from `dir/model.bin` and the suppressed tokens of `dir/config.json`.
pub fn load(dir: &Path, device: &Device) -> Result<(HashMap<String, Tensor>, Config)> {
    let path = dir.join("model.bin");
    let data = std::fs::read(&path).map_err(|e| files_error(&path, e))?;
    let vars = read_vars(&path, &data)?;
    let get = |name: &str| {
        vars.get(name)
            .ok_or_else(|| files_error(&path, format!("the model has no variable {name}")))
    };
    let tensor = |v: &Var, rows: Option<std::ops::Range<usize>>| -> Result<Tensor> {
        if v.dtype != DType::F16 && v.dtype != DType::F32 && v.dtype != DType::BF16 {
            return Err(files_error(
                &path,
                "expected float weights (int8 models are not read yet)",
            ));
        }
        let width = v.dtype.size_in_bytes();
        let row: usize = v.dims.iter().skip(1).product::<usize>() * width;
        let (bytes, dims) = match rows {
            Some(r) => {
                let mut dims = v.dims.clone();
                dims[0] = r.len();
                let start = v.bytes.start + r.start * row;
                (&data[start..start + r.len() * row], dims)
            }
            None => (&data[v.bytes.clone()], v.dims.clone()),
        };
        Tensor::from_raw_buffer(bytes, v.dtype, &dims, device)
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(|e| files_error(&path, e))
    };
    let scalar = |name: &str| -> Result<usize> {
        let v = get(name)?;
        let b = &data[v.bytes.clone()];
        Ok(match b.len() {
            2 => i16::from_le_bytes([b[0], b[1]]) as usize,
            4 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize,
            _ => return Err(files_error(&path, format!("{name} is not an integer"))),
        })
    };
    let mut t: HashMap<String, Tensor> = HashMap::new();
    let mut put = |name: String, tensor: Tensor| {
        t.insert(name, tensor);
    };
    let layers = |side: &str| {
        (0..)
            .take_while(|i| vars.contains_key(&format!("{side}/layer_{i}/ffn/linear_0/weight")))
            .count()
    };
    let (enc_layers, dec_layers) = (layers("encoder"), layers("decoder"));
    // Whisper's key projection has no bias (CTranslate2 stores zeros).
    let attention =
        |put: &mut dyn FnMut(String, Tensor), dst: &str, src: &str, fused: bool| -> Result<()> {
            let (w, b) = (
                get(&format!("{src}/linear_0/weight"))?,
                get(&format!("{src}/linear_0/bias"))?,
            );
            let n = *w
                .dims
                .get(1)
                .ok_or_else(|| files_error(&path, format!("{src}: bad shape")))?;
            put(
                format!("{dst}.q_proj.weight"),
                tensor(w, fused.then_some(0..n))?,
            );
            put(
                format!("{dst}.q_proj.bias"),
                tensor(b, fused.then_some(0..n))?,
            );
            let (kv_w, kv_b, offset, out) = if fused {
                (w, b, n, "linear_1")
            } else {
                (
                    get(&format!("{src}/linear_1/weight"))?,
                    get(&format!("{src}/linear_1/bias"))?,
                    0,
                    "linear_2",
                )
            };
            put(
                format!("{dst}.k_proj.weight"),
                tensor(kv_w, Some(offset..offset + n))?,
            );
            put(
                format!("{dst}.v_proj.weight"),
                tensor(kv_w, Some(offset + n..offset + 2 * n))?,
            );
            put(
                format!("{dst}.v_proj.bias"),
                tensor(kv_b, Some(offset + n..offset + 2 * n))?,
            );
            put(
                format!("{dst}.out_proj.weight"),
                tensor(get(&format!("{src}/{out}/weight"))?, None)?,
            );
            put(
                format!("{dst}.out_proj.bias"),
                tensor(get(&format!("{src}/{out}/bias"))?, None)?,
            );
            Ok(())
        };
    let norm = |put: &mut dyn FnMut(String, Tensor), dst: &str, src: &str| -> Result<()> {
        put(
            format!("{dst}.weight"),
            tensor(get(&format!("{src}/gamma"))?, None)?,
        );
        put(
            format!("{dst}.bias"),
            tensor(get(&format!("{src}/beta"))?, None)?,
        );
        Ok(())
    };
    // A layer's self-attention and the layer norm before it: alike in the
    // encoder and the decoder.
    let self_attention =
        |put: &mut dyn FnMut(String, Tensor), dst: &str, src: &str| -> Result<()> {
            attention(
                put,
                &format!("{dst}.self_attn"),
                &format!("{src}/self_attention"),
                true,
            )?;
            norm(
                put,
                &format!("{dst}.self_attn_layer_norm"),
                &format!("{src}/self_attention/layer_norm"),
            )
        };
    let ffn = |put: &mut dyn FnMut(String, Tensor), dst: &str, src: &str| -> Result<()> {
        norm(
            put,
            &format!("{dst}.final_layer_norm"),
            &format!("{src}/layer_norm"),
        )?;
        for (i, fc) in [(0, "fc1"), (1, "fc2")] {
            put(
                format!("{dst}.{fc}.weight"),
                tensor(get(&format!("{src}/linear_{i}/weight"))?, None)?,
            );
            put(
                format!("{dst}.{fc}.bias"),
                tensor(get(&format!("{src}/linear_{i}/bias"))?, None)?,
            );
        }
        Ok(())
    };
    for conv in ["conv1", "conv2"] {
        put(
            format!("model.encoder.{conv}.weight"),
            tensor(get(&format!("encoder/{conv}/weight"))?, None)?,
        );
        put(
            format!("model.encoder.{conv}.bias"),
            tensor(get(&format!("encoder/{conv}/bias"))?, None)?,
        );
    }
    for i in 0..enc_layers {
        let (dst, src) = (
            format!("model.encoder.layers.{i}"),
            format!("encoder/layer_{i}"),
        );
        self_attention(&mut put, &dst, &src)?;
        ffn(&mut put, &dst, &format!("{src}/ffn"))?;
    }
    norm(&mut put, "model.encoder.layer_norm", "encoder/layer_norm")?;
    put(
        "model.decoder.embed_tokens.weight".into(),
        tensor(get("decoder/embeddings/weight")?, None)?,
    );
    put(
        "model.decoder.embed_positions.weight".into(),
        tensor(get("decoder/position_encodings/encodings")?, None)?,
    );
    for i in 0..dec_layers {
        let (dst, src) = (
            format!("model.decoder.layers.{i}"),
            format!("decoder/layer_{i}"),
        );
        self_attention(&mut put, &dst, &src)?;
        attention(
            &mut put,
            &format!("{dst}.encoder_attn"),
            &format!("{src}/attention"),
            false,
        )?;
        norm(
            &mut put,
            &format!("{dst}.encoder_attn_layer_norm"),
            &format!("{src}/attention/layer_norm"),
        )?;
        ffn(&mut put, &dst, &format!("{src}/ffn"))?;
    }
    norm(&mut put, "model.decoder.layer_norm", "decoder/layer_norm")?;
    let dim = |name: &str, i: usize| -> Result<usize> {
        get(name)?
            .dims
            .get(i)
            .copied()
            .ok_or_else(|| files_error(&path, format!("{name}: bad shape")))
    };
    let suppress = suppressed_tokens(dir)?;
    let config = serde_json::json!({
        "num_mel_bins": dim("encoder/conv1/weight", 1)?,
        "max_source_positions": dim("encoder/position_encodings/encodings", 0)?,
        "d_model": dim("decoder/embeddings/weight", 1)?,
        "encoder_attention_heads": scalar("encoder/num_heads")?,
        "encoder_layers": enc_layers,
        "vocab_size": dim("decoder/embeddings/weight", 0)?,
        "max_target_positions": dim("decoder/position_encodings/encodings", 0)?,
        "decoder_attention_heads": scalar("decoder/num_heads")?,
        "decoder_layers": dec_layers,
        "suppress_tokens": suppress,
    });
    let config: Config = serde_json::from_value(config).map_err(|e| files_error(&path, e))?;
    Ok((t, config))
}

/// `suppress_ids` of CTranslate2's config.json (none when it has none).
fn suppressed_tokens(dir: &Path) -> Result<Vec<u32>> {
    let path = dir.join("config.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(Vec::new());
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| files_error(&path, e))?;
    Ok(value
        .get("suppress_ids")
        .and_then(|s| s.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_u64())
                .map(|v| v as u32)
                .collect()
        })
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_truncated_or_foreign_model_bin_is_refused_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        for (bytes, why) in [
            (vec![6u8, 0, 0], "truncated"),
            (vec![5u8, 0, 0, 0], "format version 5"),
        ] {
            std::fs::write(d.path().join("model.bin"), bytes).unwrap();
            let err = load(d.path(), &Device::Cpu).unwrap_err().to_string();
            assert!(err.contains("model.bin") && err.contains(why), "{err}");
        }
    }
}
