//! Keys and values kept in half precision (IEEE f16) for attention of one
//! query row: Whisper's decoder reads the cross-attention's keys and values
//! over a window's 1,500 audio frames at every step (18 MB per window in f32
//! for tiny.en, 147 MB for a pass of eight windows), which made them the
//! largest buffer of a transcription and the largest read of a step. In f16
//! (11 significant bits) they take half of both; the query, the scores, the
//! softmax and the weighted sums stay f32, and the conversions are the CPU's
//! own (F16C) where it has them.

use rayon::prelude::*;

use super::attention::{query_shape, QueryShape};
use super::elementwise::softmax_rows;

/// The largest finite f16: values beyond are clamped to it rather than
/// turned into infinities (which would make a softmax NaN).
const F16_MAX: f32 = 65_504.0;

/// The head width the vectorised kernel is written for: every Whisper size
/// (tiny to large) has 64-wide heads; other widths take the portable kernel.
const HEAD: usize = 64;

/// `src` appended to `dst` in f16, rounded to nearest (ties to even).
pub(crate) fn extend_half(dst: &mut Vec<u16>, src: &[f32]) {
    let start = dst.len();
    dst.resize(start + src.len(), 0);
    let out = &mut dst[start..];
    #[cfg(target_arch = "x86_64")]
    if has_f16c() {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked above).
        return unsafe { fast::to_half(src, out) };
    }
    to_half_portable(src, out);
}

fn to_half_portable(src: &[f32], out: &mut [u16]) {
    for (o, v) in out.iter_mut().zip(src) {
        *o = half::f16::from_f32(v.clamp(-F16_MAX, F16_MAX)).to_bits();
    }
}

/// Attention of one query row per sequence over f16 keys and values of its
/// own: `q` is `rows x d`, `kv` is `rows * frames x 2d` in f16 (each row
/// `[k | v]`; sequence `r`'s frames start at row `r·frames`), `out` `rows x d`.
/// The f16 twin of [`super::attention::query_attention`] with `capacity ==
/// frames`.
pub(crate) fn query_attention_half(
    q: &[f32],
    kv: &[u16],
    frames: usize,
    heads: usize,
    d: usize,
    out: &mut [f32],
) {
    let Some(QueryShape {
        head_dim, scale, ..
    }) = query_shape(
        "query_attention_half",
        (q, &mut *out),
        kv.len(),
        (frames, frames),
        heads,
        d,
    )
    else {
        return;
    };
    let stride = 2 * d;
    // Each piece (row, head) writes its own head_dim values of `out`.
    out.par_chunks_mut(head_dim)
        .enumerate()
        .for_each(|(piece, out)| {
            let (r, h) = (piece / heads, piece % heads);
            let query = &q[r * d + h * head_dim..][..head_dim];
            let rows = &kv[r * frames * stride..][..frames * stride];
            SCORES.with_borrow_mut(|scores| {
                scores.clear();
                scores.resize(frames, 0.0);
                let head = Head {
                    rows,
                    stride,
                    key: h * head_dim,
                    value: d + h * head_dim,
                    scale,
                };
                attend(query, head, scores, out);
            });
        });
}

/// One (sequence, head)'s keys and values: `rows` holds a frame per
/// `stride` values, the head's key at `key` and its value at `value` within
/// each; scores are scaled by `scale`.
#[derive(Clone, Copy)]
struct Head<'a> {
    rows: &'a [u16],
    stride: usize,
    key: usize,
    value: usize,
    scale: f32,
}

thread_local! {
    /// Each thread's score row, kept between calls.
    static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One (row, head): `query` against the `scores.len()` frames of `head`.
fn attend(query: &[f32], head: Head<'_>, scores: &mut [f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if query.len() == HEAD && has_f16c() {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked above); `query`
        // and `out` are HEAD wide and every frame's key and value
        // (`f·stride + key` or `+ value`, HEAD wide) lies in `rows`, which
        // `query_attention_half`'s assert bounds (key, value + HEAD ≤ 2d =
        // stride, frames·stride = rows.len()).
        return unsafe { fast::attend(query, head, scores, out) };
    }
    attend_portable(query, head, scores, out);
}

fn attend_portable(query: &[f32], head: Head<'_>, scores: &mut [f32], out: &mut [f32]) {
    let wide = |bits: u16| half::f16::from_bits(bits).to_f32();
    let hd = query.len();
    let frame = |f: usize, at: usize| &head.rows[f * head.stride + at..][..hd];
    for (f, s) in scores.iter_mut().enumerate() {
        let k = frame(f, head.key);
        *s = k.iter().zip(query).map(|(k, q)| wide(*k) * q).sum::<f32>() * head.scale;
    }
    let width = scores.len();
    softmax_rows(scores, width);
    out.fill(0.0);
    for (f, p) in scores.iter().enumerate() {
        let v = frame(f, head.value);
        out.iter_mut().zip(v).for_each(|(o, v)| *o += p * wide(*v));
    }
}

/// Whether this CPU has AVX2, FMA and F16C (checked once; std caches it).
#[inline(always)]
fn has_f16c() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::elementwise::has_avx2() && std::arch::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod fast {
    use std::arch::x86_64::*;

    use super::{softmax_rows, Head, F16_MAX, HEAD};

    /// Eight f32 lanes per register: a head is this many registers.
    const CHUNKS: usize = HEAD / 8;

    /// # Safety
    /// The CPU has AVX2, FMA and F16C; `out` is as long as `src`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn to_half(src: &[f32], out: &mut [u16]) {
        let n = src.len().min(out.len());
        let whole = n / 8 * 8;
        let (lo, hi) = (_mm256_set1_ps(-F16_MAX), _mm256_set1_ps(F16_MAX));
        let mut i = 0;
        while i < whole {
            // SAFETY: i + 8 ≤ n, within both slices.
            unsafe {
                let v = _mm256_min_ps(_mm256_max_ps(_mm256_loadu_ps(src.as_ptr().add(i)), lo), hi);
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
                _mm_storeu_si128(out.as_mut_ptr().add(i) as *mut __m128i, h);
            }
            i += 8;
        }
        super::to_half_portable(&src[whole..n], &mut out[whole..n]);
    }

    /// Eight f16 values at `p`, widened.
    ///
    /// # Safety
    /// Eight values lie at `p`; the CPU has AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn load8(p: *const u16) -> __m256 {
        // SAFETY: the caller's contract.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
    }

    /// The dot product of the query (in registers) with the key at `k`.
    ///
    /// # Safety
    /// HEAD values lie at `k`; the CPU has AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn dot(q: &[__m256; CHUNKS], k: *const u16) -> __m256 {
        // Two partial sums halve the chain of dependent multiply-adds.
        let (mut a, mut b) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for c in (0..CHUNKS).step_by(2) {
            // SAFETY: c + 1 < CHUNKS, so both loads lie within the key.
            unsafe {
                a = _mm256_fmadd_ps(load8(k.add(8 * c)), q[c], a);
                b = _mm256_fmadd_ps(load8(k.add(8 * c + 8)), q[c + 1], b);
            }
        }
        _mm256_add_ps(a, b)
    }

    /// [`super::attend`] for HEAD-wide heads.
    ///
    /// # Safety
    /// As [`super::attend`]'s call states.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn attend(
        query: &[f32],
        head: Head<'_>,
        scores: &mut [f32],
        out: &mut [f32],
    ) {
        let Head {
            rows,
            stride,
            key,
            value,
            scale,
        } = head;
        let frames = scores.len();
        let base = rows.as_ptr();
        // SAFETY (every load below): frame f's key and value are HEAD values
        // at f·stride + key and f·stride + value, inside `rows` (the caller's
        // contract); `query` and `out` are HEAD wide.
        let q: [__m256; CHUNKS] =
            std::array::from_fn(|c| unsafe { _mm256_loadu_ps(query.as_ptr().add(8 * c)) });
        let scale4 = _mm_set1_ps(scale);
        let mut f = 0;
        // Four keys at a time, their sums reduced together.
        while f + 4 <= frames {
            unsafe {
                let k = base.add(f * stride + key);
                let s0 = dot(&q, k);
                let s1 = dot(&q, k.add(stride));
                let s2 = dot(&q, k.add(2 * stride));
                let s3 = dot(&q, k.add(3 * stride));
                // [s0 s1 s2 s3] summed lane-wise across each register.
                let h = _mm256_hadd_ps(_mm256_hadd_ps(s0, s1), _mm256_hadd_ps(s2, s3));
                let sums = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
                _mm_storeu_ps(scores.as_mut_ptr().add(f), _mm_mul_ps(sums, scale4));
            }
            f += 4;
        }
        while f < frames {
            unsafe {
                let s = dot(&q, base.add(f * stride + key));
                let h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps::<1>(s));
                let h = _mm_hadd_ps(h, h);
                let h = _mm_hadd_ps(h, h);
                scores[f] = _mm_cvtss_f32(h) * scale;
            }
            f += 1;
        }
        softmax_rows(scores, frames);
        let mut acc = [_mm256_setzero_ps(); CHUNKS];
        for (f, p) in scores.iter().enumerate() {
            let p = _mm256_set1_ps(*p);
            unsafe {
                let v = base.add(f * stride + value);
                for (c, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(load8(v.add(8 * c)), p, *a);
                }
            }
        }
        for (c, a) in acc.iter().enumerate() {
            unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(8 * c), *a) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transformer::attention::query_attention;

    fn wave(i: usize) -> f32 {
        (((i * 2_654_435_761usize) >> 9) % 1000) as f32 / 250.0 - 2.0
    }

    #[test]
    fn values_round_to_the_nearest_half_and_huge_ones_clamp_to_its_largest() {
        let mut src: Vec<f32> = (0..1003).map(|i| wave(i) * 3.0).collect();
        src.extend([1e9, -1e9, 65_519.0, 5.96e-8, 0.0, -0.0]);
        let mut got = Vec::new();
        extend_half(&mut got, &src);
        let mut portable = vec![0u16; src.len()];
        to_half_portable(&src, &mut portable);
        assert_eq!(got, portable, "the CPU's conversion and half's agree");
        for (bits, v) in got.iter().zip(&src) {
            let back = half::f16::from_bits(*bits).to_f32();
            assert!(back.is_finite(), "{v} became {back}");
            let want = v.clamp(-F16_MAX, F16_MAX);
            assert!(
                (back - want).abs() <= want.abs() / 1024.0 + 6e-8,
                "{v} -> {back}"
            );
        }
    }

    /// The f16 attention equals the f32 one over the same (rounded) values,
    /// for Whisper's 64-wide heads (the vectorised kernel, where the CPU has
    /// F16C) and another width (the portable one), frame counts that are and
    /// are not multiples of four.
    #[test]
    fn half_keys_attend_as_f32_keys_of_the_same_values_do() {
        for (heads, d, frames, rows) in [(6, 384, 1500, 2), (2, 128, 37, 3), (3, 24, 5, 2)] {
            let q: Vec<f32> = (0..rows * d).map(|i| wave(i) * 0.5).collect();
            let kv32: Vec<f32> = (0..rows * frames * 2 * d).map(|i| wave(i + 11)).collect();
            let mut kv16 = Vec::new();
            extend_half(&mut kv16, &kv32);
            let rounded: Vec<f32> = kv16
                .iter()
                .map(|b| half::f16::from_bits(*b).to_f32())
                .collect();
            let mut want = vec![0f32; rows * d];
            query_attention(&q, &rounded, frames, frames, heads, d, &mut want);
            let mut got = vec![f32::NAN; rows * d];
            query_attention_half(&q, &kv16, frames, heads, d, &mut got);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() < 1e-4,
                    "{heads} heads, d {d}, {frames} frames: value {i}: {g} vs {w}"
                );
            }
            let mut portable = vec![0f32; rows * d];
            let hd = d / heads;
            for r in 0..rows {
                for h in 0..heads {
                    let mut scores = vec![0f32; frames];
                    let head = Head {
                        rows: &kv16[r * frames * 2 * d..][..frames * 2 * d],
                        stride: 2 * d,
                        key: h * hd,
                        value: d + h * hd,
                        scale: (hd as f32).powf(-0.5),
                    };
                    attend_portable(
                        &q[r * d + h * hd..][..hd],
                        head,
                        &mut scores,
                        &mut portable[r * d + h * hd..][..hd],
                    );
                }
            }
            for (i, (g, p)) in got.iter().zip(&portable).enumerate() {
                assert!((g - p).abs() < 1e-4, "value {i}: fast {g}, portable {p}");
            }
        }
    }
}
