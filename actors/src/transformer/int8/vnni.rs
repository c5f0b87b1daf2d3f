//! The AVX-512 VNNI kernels of [`super`]: the micro tile and the quantiser.

use std::arch::x86_64::*;

use super::{GROUP, PANEL, PANEL_GROUP, ROWS};

/// [`super::quantize_row`] in AVX-512: the row's extremes 16 lanes at a time,
/// then scale, shift, round to nearest even and saturate to bytes in four
/// instructions per 16 values.
///
/// # Safety
/// The CPU has AVX-512 F and BW; `dst` holds at least `row.len()` bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn quantize_row(row: &[f32], dst: &mut [u8]) -> (f32, f32) {
    let inputs = row.len();
    let full = inputs / 16;
    let tail = (inputs % 16) as u32;
    let tail_mask: __mmask16 = ((1u32 << tail) - 1) as u16;
    let p = row.as_ptr();
    // SAFETY: loads of 16 lie inside `row` (`full` whole chunks), the
    // tail's masked load reads only its `tail` values; stores likewise
    // inside `dst`, which holds at least `inputs` bytes.
    unsafe {
        let (mut lo, mut hi) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        for c in 0..full {
            let v = _mm512_loadu_ps(p.wrapping_add(c * 16));
            lo = _mm512_min_ps(lo, v);
            hi = _mm512_max_ps(hi, v);
        }
        let t = _mm512_maskz_loadu_ps(tail_mask, p.wrapping_add(full * 16));
        lo = _mm512_min_ps(lo, t);
        hi = _mm512_max_ps(hi, t);
        let (lo, hi) = (_mm512_reduce_min_ps(lo), _mm512_reduce_max_ps(hi));
        let (step, z) = super::row_step(lo, hi);
        let (inv, vz) = (_mm512_set1_ps(1.0 / step), _mm512_set1_ps(z));
        let d = dst.as_mut_ptr();
        let quantize16 = |v: __m512| {
            let q = _mm512_cvtps_epi32(_mm512_fmadd_ps(v, inv, vz));
            _mm512_cvtusepi32_epi8(_mm512_max_epi32(q, _mm512_setzero_si512()))
        };
        for c in 0..full {
            let v = _mm512_loadu_ps(p.wrapping_add(c * 16));
            _mm_storeu_si128(d.wrapping_add(c * 16).cast(), quantize16(v));
        }
        if tail > 0 {
            _mm_mask_storeu_epi8(d.wrapping_add(full * 16).cast(), tail_mask, quantize16(t));
        }
        (step, z)
    }
}

/// `R` rows against one panel: 4 x `R` accumulators, per group 4 weight
/// loads, `R` broadcasts and 4`R` `vpdpbusd`.
///
/// # Safety
/// The CPU has AVX-512 F, BW and VNNI; `a` holds `R` rows of `stride` bytes,
/// `stride >= 4 * groups`, and `panel` at least `groups * 256` bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn tile<const R: usize>(
    a: &[u8],
    stride: usize,
    panel: &[i8],
    groups: usize,
    acc: &mut [[i32; PANEL]; ROWS],
) {
    let mut c = [[_mm512_setzero_si512(); 4]; R];
    // Pointers bumped with wrapping arithmetic and read through the
    // intrinsics: no per-step overflow or precondition checks in builds
    // with debug assertions (the tests' and examples').
    let rows: [*const u8; R] = std::array::from_fn(|r| a.as_ptr().wrapping_add(r * stride));
    let mut w = panel.as_ptr();
    let mut at = 0usize;
    for _ in 0..groups {
        // SAFETY: within `panel` and `a` by the function's contract.
        unsafe {
            let w0 = _mm512_loadu_si512(w.cast());
            let w1 = _mm512_loadu_si512(w.wrapping_add(64).cast());
            let w2 = _mm512_loadu_si512(w.wrapping_add(128).cast());
            let w3 = _mm512_loadu_si512(w.wrapping_add(192).cast());
            for (row, c) in rows.iter().zip(c.iter_mut()) {
                let v = _mm512_broadcastd_epi32(_mm_loadu_si32(row.wrapping_add(at)));
                c[0] = _mm512_dpbusd_epi32(c[0], v, w0);
                c[1] = _mm512_dpbusd_epi32(c[1], v, w1);
                c[2] = _mm512_dpbusd_epi32(c[2], v, w2);
                c[3] = _mm512_dpbusd_epi32(c[3], v, w3);
            }
        }
        w = w.wrapping_add(PANEL_GROUP);
        at = at.wrapping_add(GROUP);
    }
    for (c, acc) in c.iter().zip(acc.iter_mut()) {
        for (s, v) in c.iter().enumerate() {
            // SAFETY: `acc` rows hold 64 lanes; each store writes 16.
            unsafe { _mm512_storeu_si512(acc.as_mut_ptr().add(s * 16).cast(), *v) };
        }
    }
}
