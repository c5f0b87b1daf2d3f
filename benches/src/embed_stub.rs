//! W5's deterministic hash "embedding" (exact definition in WORKLOADS.md).

use regatta::arrow::array::{Array, ArrayRef, StringArray};
use regatta::arrow::compute::cast;
use regatta::arrow::datatypes::DataType;
use regatta::datafusion::error::{DataFusionError, Result};
use regatta::types;

/// Dimensions of the stub embedding.
pub const DIM: usize = 384;

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The 64-bit hash of a chunk's UTF-8 bytes.
pub fn text_hash(text: &str) -> u64 {
    let bytes = text.as_bytes();
    let mut poly: u64 = 0;
    for &b in bytes {
        poly = poly
            .wrapping_mul(0x0000_0100_0000_01B3)
            .wrapping_add(u64::from(b) + 1);
    }
    mix64(poly ^ bytes.len() as u64)
}

/// Appends the 384 float32 values of `text`'s embedding to `out`.
pub fn embed_into(text: &str, out: &mut Vec<f32>) {
    let h = text_hash(text);
    let mut u = [0f64; DIM];
    let mut norm = 0f64;
    for (k, slot) in u.iter_mut().enumerate() {
        let z = mix64(h.wrapping_add(((k as u64) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        let v = (z >> 40) as f64 / 8_388_608.0 - 1.0;
        *slot = v;
        norm += v * v;
    }
    let norm = norm.sqrt();
    out.extend(u.iter().map(|v| (v / norm) as f32));
}

/// The batch function: a text column in, a `FixedSizeList<Float32>[384]` column out.
pub fn embed_batch(args: &[ArrayRef]) -> Result<ArrayRef> {
    let text = args
        .first()
        .ok_or_else(|| DataFusionError::Plan("embed_stub needs one argument".into()))?;
    let text = cast(text, &DataType::Utf8)?;
    let text = text
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| DataFusionError::Internal("embed_stub input is not Utf8".into()))?;
    let mut values = Vec::with_capacity(text.len() * DIM);
    for i in 0..text.len() {
        embed_into(
            if text.is_null(i) { "" } else { text.value(i) },
            &mut values,
        );
    }
    Ok(types::embedding_array(values, DIM, text.nulls().cloned())?)
}

/// The return type of [`embed_batch`].
pub fn embedding_type() -> DataType {
    types::embedding_type(DIM as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_hash() {
        // WORKLOADS.md: mix64(poly("hello world") XOR 11) = 0xcb918e511b8ebc99.
        assert_eq!(text_hash("hello world"), 0xcb91_8e51_1b8e_bc99);
    }

    #[test]
    fn vectors_have_unit_norm() {
        let mut v = Vec::new();
        embed_into("some words here", &mut v);
        let n: f64 = v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum();
        assert!((n - 1.0).abs() < 1e-5);
    }
}
