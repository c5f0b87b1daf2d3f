//! [`WeightsFile`]: a safetensors file read one tensor at a time, as a
//! candle `VarBuilder` backend.
//!
//! candle's buffered backend holds the whole file in memory while a model
//! copies its weights out (for whisper-tiny.en 151 MB beside the model's own
//! copy, at the process's peak); the memory-mapped one maps it. Here only the
//! header is kept: each tensor is read from the file when the model asks for
//! it, straight into the `Vec` the tensor then owns, so loading holds the
//! model's weights plus one tensor in flight.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Shape, Tensor};
use serde::Deserialize;

/// The largest header accepted (safetensors' own limit is 100 MB).
const MAX_HEADER: u64 = 100 << 20;

/// One tensor's entry in the header, as written.
#[derive(Debug, Clone, Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

/// A checked entry: its dtype known, its bytes inside the file.
#[derive(Debug, Clone)]
struct Stored {
    dtype: DType,
    shape: Vec<usize>,
    /// Where its bytes start and end, from the start of the file.
    start: u64,
    end: u64,
}

/// A safetensors file whose header has been read and checked.
#[derive(Debug)]
pub(crate) struct WeightsFile {
    path: PathBuf,
    file: File,
    tensors: HashMap<String, Stored>,
}

fn dtype_of(name: &str) -> Option<DType> {
    Some(match name {
        "F32" => DType::F32,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "F64" => DType::F64,
        "U8" => DType::U8,
        "U32" => DType::U32,
        "I64" => DType::I64,
        _ => return None,
    })
}

impl WeightsFile {
    /// Opens `path` and reads its header: a file whose header is not valid, or
    /// whose tensors do not fit their shapes or the file, is refused here.
    pub fn open(path: &Path) -> Result<Self, String> {
        let file = File::open(path).map_err(|e| e.to_string())?;
        let len = file.metadata().map_err(|e| e.to_string())?.len();
        let mut prefix = [0u8; 8];
        file.read_exact_at(&mut prefix, 0)
            .map_err(|_| format!("{len} bytes: too short for a safetensors header"))?;
        let header_len = u64::from_le_bytes(prefix);
        if header_len > MAX_HEADER || 8 + header_len > len {
            return Err(format!(
                "safetensors header of {header_len} bytes in a file of {len}"
            ));
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_exact_at(&mut header, 8)
            .map_err(|e| e.to_string())?;
        let mut raw: HashMap<String, serde_json::Value> =
            serde_json::from_slice(&header).map_err(|e| format!("safetensors header: {e}"))?;
        raw.remove("__metadata__");
        let data_start = 8 + header_len;
        let mut tensors = HashMap::with_capacity(raw.len());
        for (name, value) in raw {
            let entry: Entry = serde_json::from_value(value)
                .map_err(|e| format!("safetensors header entry {name:?}: {e}"))?;
            let dtype = dtype_of(&entry.dtype)
                .ok_or_else(|| format!("tensor {name:?}: dtype {} not supported", entry.dtype))?;
            let [start, end] = entry.data_offsets;
            let elements: usize = entry.shape.iter().product();
            let bytes = (elements * dtype.size_in_bytes()) as u64;
            if end < start || end - start != bytes || data_start + end > len {
                return Err(format!(
                    "tensor {name:?}: {} bytes at {start}..{end} for shape {:?} of {}, in a file of {len}",
                    end.saturating_sub(start),
                    entry.shape,
                    entry.dtype
                ));
            }
            let stored = Stored {
                dtype,
                shape: entry.shape,
                start: data_start + start,
                end: data_start + end,
            };
            tensors.insert(name, stored);
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            tensors,
        })
    }

    /// Reads tensor `name` as stored, on `device`.
    fn load(&self, name: &str, device: &Device) -> candle_core::Result<Tensor> {
        let stored =
            self.tensors
                .get(name)
                .ok_or_else(|| candle_core::Error::CannotFindTensor {
                    path: name.to_string(),
                })?;
        let read_error = |e: std::io::Error| {
            candle_core::Error::Msg(format!(
                "reading tensor {name:?} from {}: {e}",
                self.path.display()
            ))
        };
        if stored.dtype == DType::F32 && cfg!(target_endian = "little") {
            // Straight into the f32 buffer the tensor keeps (no byte copy).
            let n: usize = stored.shape.iter().product();
            let mut values = vec![0f32; n];
            // SAFETY: any bit pattern is a valid f32, and the byte view covers
            // exactly the vector's `4n` initialised bytes.
            let bytes =
                unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr().cast::<u8>(), 4 * n) };
            self.file
                .read_exact_at(bytes, stored.start)
                .map_err(read_error)?;
            return Tensor::from_vec(values, stored.shape.as_slice(), device);
        }
        let mut bytes = vec![0u8; (stored.end - stored.start) as usize];
        self.file
            .read_exact_at(&mut bytes, stored.start)
            .map_err(read_error)?;
        Tensor::from_raw_buffer(&bytes, stored.dtype, &stored.shape, device)
    }
}

impl candle_nn::var_builder::SimpleBackend for WeightsFile {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let tensor = self.load(name, dev)?.to_dtype(dtype)?;
        if tensor.shape() != &s {
            return Err(candle_core::Error::UnexpectedShape {
                msg: format!("shape mismatch for {name}"),
                expected: s,
                got: tensor.shape().clone(),
            });
        }
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.load(name, dev)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

/// A `VarBuilder` over the safetensors file at `path` (its header read now).
pub(crate) fn var_builder(
    path: &Path,
    dtype: DType,
    device: &Device,
) -> Result<candle_nn::VarBuilder<'static>, String> {
    let file = WeightsFile::open(path)?;
    Ok(candle_nn::VarBuilder::from_backend(
        Box::new(file),
        dtype,
        device.clone(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, header: &str, data: &[u8]) {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn tensors_are_read_on_demand_with_their_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let data: Vec<u8> = [1.5f32, -2.0, 3.25, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        write(
            &path,
            r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}}"#,
            &data,
        );
        let vb = var_builder(&path, DType::F32, &Device::Cpu).unwrap();
        let a = vb.get((2, 2), "a").unwrap();
        assert_eq!(
            a.to_vec2::<f32>().unwrap(),
            vec![vec![1.5, -2.0], vec![3.25, 4.0]]
        );
        assert_eq!(
            vb.get(2, "b").unwrap().to_vec1::<f32>().unwrap(),
            vec![5.0, 6.0]
        );
        assert!(vb.contains_tensor("a") && !vb.contains_tensor("c"));
        let e = vb.get((4, 1), "a").unwrap_err().to_string();
        assert!(e.contains("shape mismatch for a"), "{e}");
        assert!(vb.get(2, "c").is_err());
    }

    #[test]
    fn a_truncated_or_lying_file_is_refused_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        // Offsets past the end of the data.
        write(
            &path,
            r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
            &[0u8; 8],
        );
        let e = WeightsFile::open(&path).unwrap_err();
        assert!(e.contains("\"a\"") && e.contains("0..16"), "{e}");
        // A header that says it is longer than the file.
        std::fs::write(&path, 1_000u64.to_le_bytes()).unwrap();
        let e = WeightsFile::open(&path).unwrap_err();
        assert!(e.contains("header of 1000 bytes"), "{e}");
        // Not JSON.
        write(&path, "{not json", &[]);
        assert!(WeightsFile::open(&path).unwrap_err().contains("header"));
        std::fs::write(&path, b"abc").unwrap();
        assert!(WeightsFile::open(&path).unwrap_err().contains("too short"));
    }
}
