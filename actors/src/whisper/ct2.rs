//! Whisper weights in CTranslate2's `model.bin` (format 6, a `WhisperSpec`), the
//! layout faster-whisper and PyPI packages ship, read as they are: each
//! variable is renamed to the Hugging Face name the network reads, fused
//! projections are split by rows, and the network's config comes from the
//! shapes. The same mapping as `scripts/whisper_convert.py`, without a
//! converted copy on disk.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::whisper::Config;

use crate::model_files::files_error;
use crate::Result;

/// One variable: its type, dims and bytes.
struct Var {
    /// Its name in the file (an int8 weight's scales are `{name}_scale`).
    name: String,
    dtype: DType,
    dims: Vec<usize>,
    bytes: std::ops::Range<usize>,
}

/// A little-endian reader over the file's variable table, failing (not
/// panicking) past the end; the variables' bytes are skipped, not read (they
/// are read one at a time when converted, so the file is never held whole).
struct Reader {
    file: std::io::BufReader<std::fs::File>,
    pos: usize,
    len: usize,
}

impl Reader {
    fn bytes<const N: usize>(&mut self) -> Option<[u8; N]> {
        let mut b = [0u8; N];
        self.read(&mut b)?;
        Some(b)
    }
    fn read(&mut self, out: &mut [u8]) -> Option<()> {
        let end = self.pos.checked_add(out.len())?;
        if end > self.len {
            return None;
        }
        self.file.read_exact(out).ok()?;
        self.pos = end;
        Some(())
    }
    /// Skips `n` bytes, giving their place in the file.
    fn skip(&mut self, n: usize) -> Option<std::ops::Range<usize>> {
        let end = self.pos.checked_add(n)?;
        if end > self.len {
            return None;
        }
        self.file.seek_relative(i64::try_from(n).ok()?).ok()?;
        let r = self.pos..end;
        self.pos = end;
        Some(r)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.bytes::<1>()?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.bytes()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.bytes()?))
    }
    fn string(&mut self) -> Option<String> {
        let mut bytes = vec![0u8; self.u16()? as usize];
        self.read(&mut bytes)?;
        // Stored with its NUL.
        let text = bytes.strip_suffix(&[0]).unwrap_or(&bytes);
        Some(String::from_utf8_lossy(text).into_owned())
    }
}

/// The bytes at `range` of the open model file.
fn read_at(path: &Path, file: &std::fs::File, range: std::ops::Range<usize>) -> Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut out = vec![0u8; range.len()];
    file.read_exact_at(&mut out, range.start as u64)
        .map_err(|e| files_error(path, e))?;
    Ok(out)
}

/// The variables of a format-6 `WhisperSpec` model.bin.
fn read_vars(path: &Path, file: &std::fs::File) -> Result<HashMap<String, Var>> {
    let bad = |what: &str| files_error(path, format!("not a CTranslate2 Whisper model: {what}"));
    let len = file.metadata().map_err(|e| files_error(path, e))?.len();
    let mut r = Reader {
        file: std::io::BufReader::new(file.try_clone().map_err(|e| files_error(path, e))?),
        pos: 0,
        len: usize::try_from(len).map_err(|e| files_error(path, e))?,
    };
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
        let bytes = r.skip(n).ok_or_else(truncated)?;
        vars.insert(
            name.clone(),
            Var {
                name,
                dtype,
                dims,
                bytes,
            },
        );
    }
    Ok(vars)
}

/// The Whisper network's weights (f32, Hugging Face names) and config read
/// from `dir/model.bin` and the suppressed tokens of `dir/config.json`.
pub fn load(dir: &Path, device: &Device) -> Result<(HashMap<String, Tensor>, Config)> {
    let path = dir.join("model.bin");
    let file = std::fs::File::open(&path).map_err(|e| files_error(&path, e))?;
    let vars = read_vars(&path, &file)?;
    let get = |name: &str| {
        vars.get(name)
            .ok_or_else(|| files_error(&path, format!("the model has no variable {name}")))
    };
    let tensor = |v: &Var, rows: Option<std::ops::Range<usize>>| -> Result<Tensor> {
        let (first, count) = match &rows {
            Some(r) => (r.start, r.len()),
            None => (0, v.dims.first().copied().unwrap_or(1)),
        };
        let mut dims = v.dims.clone();
        if let Some(d0) = dims.first_mut() {
            *d0 = count;
        }
        let per_row: usize = v.dims.iter().skip(1).product();
        if v.dtype == DType::U8 {
            // An int8 model (`--quantization int8`): each row of `weight`
            // beside its f32 `weight_scale`, the value being `q / scale`.
            let scales = int8_scales(&path, &file, &vars, v, first, count)?;
            let start = v.bytes.start + first * per_row;
            if start + count * per_row > v.bytes.end {
                return Err(files_error(&path, "an int8 variable past its bytes"));
            }
            let q = read_at(&path, &file, start..start + count * per_row)?;
            let values: Vec<f32> = q
                .chunks_exact(per_row.max(1))
                .zip(&scales)
                .flat_map(|(row, scale)| row.iter().map(move |b| (*b as i8) as f32 / scale))
                .collect();
            return Tensor::from_vec(values, dims, device).map_err(|e| files_error(&path, e));
        }
        if v.dtype != DType::F16 && v.dtype != DType::F32 && v.dtype != DType::BF16 {
            return Err(files_error(
                &path,
                format!("a weight of type {:?}, not a float or int8 one", v.dtype),
            ));
        }
        let row = per_row * v.dtype.size_in_bytes();
        let start = v.bytes.start + first * row;
        if start + count * row > v.bytes.end {
            return Err(files_error(&path, "a variable past its bytes"));
        }
        let bytes = read_at(&path, &file, start..start + count * row)?;
        Tensor::from_raw_buffer(&bytes, v.dtype, &dims, device)
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(|e| files_error(&path, e))
    };
    let scalar = |name: &str| -> Result<usize> {
        let v = get(name)?;
        let b = read_at(&path, &file, v.bytes.clone())?;
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

/// The scales of rows `first..first + count` of the int8 variable `v`: its
/// `{name}_scale` variable, one positive f32 per row (CTranslate2 scales each
/// output row by 127 over its largest magnitude).
fn int8_scales(
    path: &Path,
    file: &std::fs::File,
    vars: &HashMap<String, Var>,
    v: &Var,
    first: usize,
    count: usize,
) -> Result<Vec<f32>> {
    let name = format!("{}_scale", v.name);
    let scale = vars.get(&name).ok_or_else(|| {
        files_error(
            path,
            format!("{} is int8 but the model has no {name}", v.name),
        )
    })?;
    let rows = v.dims.first().copied().unwrap_or(1);
    if scale.dtype != DType::F32 || scale.bytes.len() != rows * 4 {
        return Err(files_error(
            path,
            format!("{name} is not {rows} f32 scales, one per row of {}", v.name),
        ));
    }
    let bytes = read_at(path, file, scale.bytes.clone())?;
    let scales: Vec<f32> = bytes
        .chunks_exact(4)
        .skip(first)
        .take(count)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if let Some(bad) = scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(files_error(path, format!("{name} holds the scale {bad}")));
    }
    Ok(scales)
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

    /// A copy of `src` (a float model.bin, f32 or f16) quantised as `ct2-transformers-converter
    /// --quantization int8` writes it: every weight of rank 2 or more in int8,
    /// each row scaled by 127 over its largest magnitude, the scales beside it
    /// as `{name}_scale`.
    fn quantised_copy(src: &Path, dst: &Path) {
        let data = std::fs::read(src).unwrap();
        let vars = read_vars(src, &std::fs::File::open(src).unwrap()).unwrap();
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        let mut out = Vec::new();
        let string = |out: &mut Vec<u8>, s: &str| {
            out.extend((s.len() as u16 + 1).to_le_bytes());
            out.extend(s.as_bytes());
            out.push(0);
        };
        let mut entries: Vec<(String, Vec<usize>, u8, Vec<u8>)> = Vec::new();
        for name in names {
            let v = &vars[name];
            let bytes = data[v.bytes.clone()].to_vec();
            let code = match v.dtype {
                DType::F32 => 0,
                DType::F16 => 4,
                DType::BF16 => 5,
                DType::U8 => 1,
                DType::I16 => 2,
                _ => 3,
            };
            if !(name.ends_with("/weight") && v.dims.len() >= 2 && (code == 0 || code == 4)) {
                entries.push((name.clone(), v.dims.clone(), code, bytes));
                continue;
            }
            let values: Vec<f32> = if code == 0 {
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            } else {
                bytes
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect()
            };
            let per_row = values.len() / v.dims[0];
            let (mut q, mut scales) = (Vec::new(), Vec::new());
            for row in values.chunks_exact(per_row) {
                let amax = row.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-12);
                let scale = 127.0 / amax;
                q.extend(
                    row.iter()
                        .map(|x| (x * scale).round().clamp(-127.0, 127.0) as i8 as u8),
                );
                scales.extend(scale.to_le_bytes());
            }
            entries.push((name.clone(), v.dims.clone(), 1, q));
            entries.push((format!("{name}_scale"), vec![v.dims[0]], 0, scales));
        }
        out.extend(6u32.to_le_bytes());
        string(&mut out, "WhisperSpec");
        out.extend(3u32.to_le_bytes());
        out.extend((entries.len() as u32).to_le_bytes());
        for (name, dims, code, bytes) in entries {
            string(&mut out, &name);
            out.push(dims.len() as u8);
            for d in dims {
                out.extend((d as u32).to_le_bytes());
            }
            out.push(code);
            out.extend((bytes.len() as u32).to_le_bytes());
            out.extend(bytes);
        }
        out.extend(0u32.to_le_bytes()); // no aliases
        std::fs::write(dst.join("model.bin"), out).unwrap();
    }

    #[test]
    fn an_int8_model_bin_reads_as_its_weights_dequantised_within_half_a_step() {
        let Ok(dir) = std::env::var("REGATTA_WHISPER_CT2_DIR") else {
            panic!("set REGATTA_WHISPER_CT2_DIR to the CTranslate2 copy scripts/fetch_whisper.sh keeps (scripts/test does)");
        };
        let dir = Path::new(&dir);
        let int8 = tempfile::tempdir().unwrap();
        quantised_copy(&dir.join("model.bin"), int8.path());
        std::fs::copy(dir.join("config.json"), int8.path().join("config.json")).unwrap();
        let (float, config) = load(dir, &Device::Cpu).unwrap();
        let (quantised, config8) = load(int8.path(), &Device::Cpu).unwrap();
        assert_eq!(format!("{config:?}"), format!("{config8:?}"));
        assert_eq!(float.len(), quantised.len());
        let mut int8_weights = 0;
        for (name, f) in &float {
            let q = &quantised[name];
            assert_eq!(f.dims(), q.dims(), "{name}");
            let f = f.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let q = q.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let rows = quantised[name].dims()[0];
            let per_row = f.len() / rows;
            let scaled = name.ends_with(".weight") && quantised[name].rank() >= 2;
            for (r, (fr, qr)) in f.chunks(per_row).zip(q.chunks(per_row)).enumerate() {
                // Half a quantisation step of the row (its largest magnitude / 127 / 2).
                let amax = fr.iter().fold(0f32, |m, x| m.max(x.abs()));
                let tolerance = if scaled {
                    amax / 127.0 * 0.5 + 1e-6
                } else {
                    0.0
                };
                for (a, b) in fr.iter().zip(qr) {
                    assert!((a - b).abs() <= tolerance, "{name} row {r}: {a} vs {b}");
                }
            }
            int8_weights += usize::from(scaled && f != q);
        }
        assert!(
            int8_weights > 20,
            "only {int8_weights} weights were quantised"
        );
    }

    #[test]
    fn an_int8_weight_without_its_scales_is_refused_naming_both() {
        let Ok(dir) = std::env::var("REGATTA_WHISPER_CT2_DIR") else {
            panic!("set REGATTA_WHISPER_CT2_DIR (scripts/test does)");
        };
        let int8 = tempfile::tempdir().unwrap();
        quantised_copy(&Path::new(&dir).join("model.bin"), int8.path());
        // Rename one scale variable so its weight has none.
        let path = int8.path().join("model.bin");
        let mut bytes = std::fs::read(&path).unwrap();
        let needle = b"encoder/conv1/weight_scale";
        let at = bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap();
        bytes[at + needle.len() - 5..at + needle.len()].copy_from_slice(b"SCALE");
        std::fs::write(&path, bytes).unwrap();
        let err = load(int8.path(), &Device::Cpu).unwrap_err().to_string();
        assert!(
            err.contains("model.bin") && err.contains("encoder/conv1/weight_scale"),
            "{err}"
        );
    }
}
