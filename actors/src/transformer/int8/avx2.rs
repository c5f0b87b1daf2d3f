//! The AVX2 kernels of [`super`], for CPUs without AVX-512 VNNI (AMD before
//! Zen 4, Intel before Ice Lake): the quantiser and a micro tile over the same
//! packed layout that widens bytes to 16 bits and multiplies with `vpmaddwd`,
//! exact at 8-bit inputs. (`vpmaddubsw` is twice as dense but saturates its
//! 16-bit pair sums unless inputs are cut to 7 bits, as PyTorch's
//! `reduce_range` does; tried, that changed a test transcript's punctuation
//! where f32 and the 8-bit kernels agree.)

use std::arch::x86_64::*;

use super::{GROUP, PANEL, PANEL_GROUP, ROWS};

/// [`super::quantize_row`] in AVX2: the row's extremes
/// 8 lanes at a time, then scale, shift (one fused multiply-add), round to
/// nearest even, clamp and pack to bytes; the last partial chunk goes through
/// the same instructions from a zero-padded copy.
///
/// # Safety
/// The CPU has AVX2 and FMA; `dst` holds at least `row.len()` bytes.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn quantize_row(row: &[f32], dst: &mut [u8]) -> (f32, f32) {
    let inputs = row.len();
    let full = inputs / 8;
    let tail = inputs % 8;
    let mut last = [0f32; 8];
    last[..tail].copy_from_slice(&row[full * 8..]);
    let p = row.as_ptr();
    // SAFETY: loads of 8 lie inside `row` (`full` whole chunks) or read
    // `last`; stores of 8 bytes lie inside `dst`, which holds at least
    // `inputs` bytes, and the tail's bytes go through a copy.
    unsafe {
        let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for c in 0..full {
            let v = _mm256_loadu_ps(p.wrapping_add(c * 8));
            lo = _mm256_min_ps(lo, v);
            hi = _mm256_max_ps(hi, v);
        }
        let t = _mm256_loadu_ps(last.as_ptr());
        lo = _mm256_min_ps(lo, t);
        hi = _mm256_max_ps(hi, t);
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), lo);
        let lo = lanes.iter().fold(0f32, |m, v| m.min(*v));
        _mm256_storeu_ps(lanes.as_mut_ptr(), hi);
        let hi = lanes.iter().fold(0f32, |m, v| m.max(*v));
        let (step, z) = super::row_step(lo, hi);
        let (inv, vz) = (_mm256_set1_ps(1.0 / step), _mm256_set1_ps(z));
        let top = _mm256_set1_epi32(255);
        let quantize8 = |v: __m256| {
            // The default rounding mode: to nearest, ties to even.
            let q = _mm256_cvtps_epi32(_mm256_fmadd_ps(v, inv, vz));
            let q = _mm256_min_epi32(_mm256_max_epi32(q, _mm256_setzero_si256()), top);
            let words =
                _mm_packus_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256::<1>(q));
            _mm_packus_epi16(words, words)
        };
        let d = dst.as_mut_ptr();
        for c in 0..full {
            let v = _mm256_loadu_ps(p.wrapping_add(c * 8));
            _mm_storel_epi64(d.wrapping_add(c * 8).cast(), quantize8(v));
        }
        if tail > 0 {
            let mut packed = [0u8; 16];
            _mm_storeu_si128(packed.as_mut_ptr().cast(), quantize8(t));
            dst[full * 8..inputs].copy_from_slice(&packed[..tail]);
        }
        (step, z)
    }
}

/// Outputs of one pass over the groups: four 8-lane registers of pairs.
const QUARTER: usize = 16;

/// `R` rows against one panel, two rows and a quarter of its outputs at a time.
///
/// # Safety
/// The CPU has AVX2; `a` holds `R` rows of `stride` bytes, `stride >= 4 *
/// groups`, and `panel` at least `groups * 256` bytes.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn tile<const R: usize>(
    a: &[u8],
    stride: usize,
    panel: &[i8],
    groups: usize,
    acc: &mut [[i32; PANEL]; ROWS],
) {
    let rows: [*const u8; R] = std::array::from_fn(|r| a.as_ptr().wrapping_add(r * stride));
    let mut first = 0;
    while first < R {
        // SAFETY: the caller's contract, for rows `first..` of `rows`.
        unsafe {
            if R - first >= 2 {
                pair::<2>(
                    &rows[first..first + 2],
                    panel,
                    groups,
                    &mut acc[first..first + 2],
                );
            } else {
                pair::<1>(
                    &rows[first..first + 1],
                    panel,
                    groups,
                    &mut acc[first..first + 1],
                );
            }
        }
        first += 2;
    }
}

/// `P` (1 or 2) rows against one panel, a quarter at a time: per group, the
/// quarter's 64 weight bytes sign-extended to 16 bits in four registers (four
/// outputs each), each row's four input bytes zero-extended and broadcast,
/// and `vpmaddwd` adding products in pairs into 32 bits, exact for any bytes
/// (`vpmaddubsw` would saturate 16-bit sums of 8-bit inputs). The pairs of an
/// output are added at the end (`vphaddd`, lanes put back in order).
///
/// # Safety
/// As [`tile`], for the `P` rows at `rows`.
#[target_feature(enable = "avx2")]
unsafe fn pair<const P: usize>(
    rows: &[*const u8],
    panel: &[i8],
    groups: usize,
    acc: &mut [[i32; PANEL]],
) {
    for quarter in 0..PANEL / QUARTER {
        let mut c = [[_mm256_setzero_si256(); 4]; P];
        // Within a group, output n's four bytes sit at 4n: this quarter's 16
        // outputs are 64 consecutive bytes.
        let mut w = panel.as_ptr().wrapping_add(quarter * QUARTER * GROUP);
        let mut at = 0usize;
        for _ in 0..groups {
            // SAFETY: within `panel` and the rows by the function's contract.
            unsafe {
                let wide =
                    |o: usize| _mm256_cvtepi8_epi16(_mm_loadu_si128(w.wrapping_add(o).cast()));
                let ws = [wide(0), wide(16), wide(32), wide(48)];
                for (row, c) in rows.iter().zip(c.iter_mut()) {
                    let four = _mm_cvtepu8_epi16(_mm_loadu_si32(row.wrapping_add(at)));
                    let v = _mm256_broadcastq_epi64(four);
                    for (c, w) in c.iter_mut().zip(&ws) {
                        *c = _mm256_add_epi32(*c, _mm256_madd_epi16(*w, v));
                    }
                }
            }
            w = w.wrapping_add(PANEL_GROUP);
            at = at.wrapping_add(GROUP);
        }
        for (c, acc) in c.iter().zip(acc.iter_mut()) {
            // [o0 o1 o4 o5 | o2 o3 o6 o7] after the pairwise add: 64-bit
            // lanes 0, 2, 1, 3 are outputs 0..8 in order.
            let low = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_hadd_epi32(c[0], c[1]));
            let high = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_hadd_epi32(c[2], c[3]));
            // SAFETY: `acc` rows hold 64 lanes; the stores write this
            // quarter's 16.
            unsafe {
                let dst = acc.as_mut_ptr().wrapping_add(quarter * QUARTER);
                _mm256_storeu_si256(dst.cast(), low);
                _mm256_storeu_si256(dst.wrapping_add(8).cast(), high);
            }
        }
    }
}
