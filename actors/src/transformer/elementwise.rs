//! The transformer's per-element and per-row kernels: GELU, softmax and layer
//! norm. Each is written once as plain Rust over slices and compiled three times:
//! as is, and inside an AVX2+FMA function picked at run time where the CPU has
//! them, so LLVM vectorises the same body eight lanes wide, and inside an
//! AVX-512 one (sixteen lanes) where the CPU has that (the crate is built for
//! baseline x86-64). The exponential is a polynomial (no libm call, which
//! would stop vectorisation): softmax over Whisper's 1,500 positions runs it
//! hundreds of millions of times per batch.

/// Which GELU the model's config names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gelu {
    /// `x Φ(x)` with the exact error function (`gelu`: BERT, Whisper).
    Erf,
    /// The tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    Tanh,
}

/// Lanes the reductions accumulate in: independent partial sums LLVM can keep
/// in one vector register (it may not reorder a single float sum itself).
const LANES: usize = 8;

/// `e^x` to a few ulp, `x` clamped to [-87, 88] (below, about 1.6e-38).
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so n * ln2 is exact in the high part.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    // Cephes' expf polynomial on [-ln2/2, ln2/2].
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // 2^n through the exponent bits (n lies in [-126, 127] after the clamp).
    // No float-to-int conversion (Rust's saturating `as` is scalarised inside
    // the vector loop): n + 2^23 + 127 holds n + 127 in its low mantissa bits,
    // which the shift moves into the exponent field. Wrapping: a checked shift
    // (debug builds) is a call that stops the loop from vectorising.
    e * f32::from_bits((n + 8_388_735.0).to_bits().wrapping_shl(23))
}

/// The error function, Abramowitz and Stegun 7.1.26 (absolute error < 1.5e-7).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = ((((1.061_405_4 * t - 1.453_152_1) * t + 1.421_413_8) * t - 0.284_496_74) * t
        + 0.254_829_6)
        * t;
    (1.0 - poly * exp(-a * a)).copysign(x)
}

#[inline(always)]
fn gelu_body(values: &mut [f32], kind: Gelu) {
    match kind {
        Gelu::Erf => values
            .iter_mut()
            .for_each(|v| *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2))),
        Gelu::Tanh => values.iter_mut().for_each(|v| {
            let x = *v;
            let inner = 0.797_884_6 * (x + 0.044_715 * x * x * x);
            // tanh(y) = 1 - 2 / (e^{2y} + 1)
            let t = 1.0 - 2.0 / (exp(2.0 * inner) + 1.0);
            *v = 0.5 * x * (1.0 + t);
        }),
    }
}

/// Sum of `values` in [`LANES`] partial sums.
#[inline(always)]
fn lane_sum(values: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn lane_max(values: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = a.max(v);
        }
    }
    acc.iter().fold(tail, |m, &v| m.max(v))
}

/// Softmax of each row of `rows` (`width` values each), in place.
#[inline(always)]
fn softmax_body(rows: &mut [f32], width: usize) {
    for row in rows.chunks_exact_mut(width) {
        let max = lane_max(row);
        row.iter_mut().for_each(|v| *v = exp(*v - max));
        let inv = 1.0 / lane_sum(row);
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

/// Layer norm of each row of `rows` (`gamma.len()` values each), in place.
#[inline(always)]
fn layer_norm_body(rows: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let width = gamma.len();
    for row in rows.chunks_exact_mut(width) {
        let mean = lane_sum(row) / width as f32;
        row.iter_mut().for_each(|v| *v -= mean);
        let mut sq = [0f32; LANES];
        let chunks = row.chunks_exact(LANES);
        let tail: f32 = chunks.remainder().iter().map(|v| v * v).sum();
        for c in chunks {
            for (a, v) in sq.iter_mut().zip(c) {
                *a += v * v;
            }
        }
        let var = (sq.iter().sum::<f32>() + tail) / width as f32;
        let inv = 1.0 / (var + eps).sqrt();
        row.iter_mut()
            .zip(gamma.iter().zip(beta))
            .for_each(|(v, (g, b))| *v = *v * inv * g + b);
    }
}

/// A module of the three bodies compiled with `features` enabled, so LLVM
/// vectorises them as wide as those allow.
macro_rules! compiled_for {
    ($module:ident, $features:literal) => {
        #[cfg(target_arch = "x86_64")]
        mod $module {
            // SAFETY (all three): callers check the features at run time
            // first; the bodies are safe Rust over slices.
            #[target_feature(enable = $features)]
            pub(super) unsafe fn gelu(values: &mut [f32], kind: super::Gelu) {
                super::gelu_body(values, kind)
            }
            #[target_feature(enable = $features)]
            pub(super) unsafe fn softmax(rows: &mut [f32], width: usize) {
                super::softmax_body(rows, width)
            }
            #[target_feature(enable = $features)]
            pub(super) unsafe fn layer_norm(
                rows: &mut [f32],
                gamma: &[f32],
                beta: &[f32],
                eps: f32,
            ) {
                super::layer_norm_body(rows, gamma, beta, eps)
            }
        }
    };
}

compiled_for!(avx2, "avx2,fma");
compiled_for!(avx512, "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma");

/// Whether this CPU runs the AVX-512 versions (checked once; std caches it).
#[inline(always)]
fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && has_avx2()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU runs the AVX2 versions (checked once; std caches it).
#[inline(always)]
pub(crate) fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// GELU of every value, in place.
pub fn gelu(values: &mut [f32], kind: Gelu) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU has AVX-512 and FMA (checked above).
        return unsafe { avx512::gelu(values, kind) };
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        return unsafe { avx2::gelu(values, kind) };
    }
    gelu_body(values, kind)
}

/// Softmax of each `width`-value row of `rows`, in place.
pub fn softmax_rows(rows: &mut [f32], width: usize) {
    if width == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU has AVX-512 and FMA (checked above).
        return unsafe { avx512::softmax(rows, width) };
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        return unsafe { avx2::softmax(rows, width) };
    }
    softmax_body(rows, width)
}

/// Layer norm (`(x - mean) / sqrt(var + eps) * gamma + beta`) of each row of
/// `rows`, `gamma.len()` values each, in place.
pub fn layer_norm_rows(rows: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    if gamma.is_empty() {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU has AVX-512 and FMA (checked above).
        return unsafe { avx512::layer_norm(rows, gamma, beta, eps) };
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        return unsafe { avx2::layer_norm(rows, gamma, beta, eps) };
    }
    layer_norm_body(rows, gamma, beta, eps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_to_a_few_ulp() {
        for i in -8_000..=8_000 {
            let x = i as f32 / 100.0;
            let (got, want) = (exp(x), x.exp());
            assert!(
                (got - want).abs() <= want * 4e-7,
                "exp({x}) = {got}, std {want}"
            );
        }
        let tiny = exp(-1000.0);
        assert!((0.0..1e-37).contains(&tiny), "exp(-1000) = {tiny}");
    }

    #[test]
    fn gelu_matches_the_exact_and_tanh_formulas() {
        let xs: Vec<f32> = (-600..=600).map(|i| i as f32 / 100.0).collect();
        let mut erf_out = xs.clone();
        gelu(&mut erf_out, Gelu::Erf);
        let mut tanh_out = xs.clone();
        gelu(&mut tanh_out, Gelu::Tanh);
        for ((x, e), t) in xs.iter().zip(&erf_out).zip(&tanh_out) {
            let x64 = *x as f64;
            // erf by its series/continued fraction is not in std; integrate Φ.
            let phi = 0.5 * (1.0 + erf_ref(x64 / std::f64::consts::SQRT_2));
            assert!((*e as f64 - x64 * phi).abs() < 2e-6, "gelu({x}) = {e}");
            let tanh_ref = 0.5
                * x64
                * (1.0
                    + ((2.0 / std::f64::consts::PI).sqrt() * (x64 + 0.044715 * x64.powi(3)))
                        .tanh());
            assert!((*t as f64 - tanh_ref).abs() < 2e-6, "gelu_tanh({x}) = {t}");
        }
    }

    /// erf by its Taylor series (converges for the |x| < 5 used here).
    fn erf_ref(x: f64) -> f64 {
        if x.abs() > 4.5 {
            return x.signum();
        }
        let mut sum = 0.0;
        let mut term = x;
        let mut n = 0.0;
        while term.abs() > 1e-17 || n < 5.0 {
            sum += term / (2.0 * n + 1.0);
            n += 1.0;
            term *= -x * x / n;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn softmax_and_layer_norm_match_naive_loops() {
        let width = 37;
        let rows: Vec<f32> = (0..width * 5)
            .map(|i| ((i * 7919) % 97) as f32 / 9.0 - 5.0)
            .collect();
        let mut s = rows.clone();
        softmax_rows(&mut s, width);
        for (got, row) in s.chunks(width).zip(rows.chunks(width)) {
            let max = row.iter().cloned().fold(f32::MIN, f32::max);
            let sum: f64 = row.iter().map(|v| ((v - max) as f64).exp()).sum();
            for (g, v) in got.iter().zip(row) {
                assert!((*g as f64 - ((v - max) as f64).exp() / sum).abs() < 1e-6);
            }
        }
        let gamma: Vec<f32> = (0..width).map(|i| 1.0 + i as f32 / 50.0).collect();
        let beta: Vec<f32> = (0..width).map(|i| i as f32 / 10.0 - 1.0).collect();
        let mut n = rows.clone();
        layer_norm_rows(&mut n, &gamma, &beta, 1e-5);
        for (got, row) in n.chunks(width).zip(rows.chunks(width)) {
            let mean: f64 = row.iter().map(|&v| v as f64).sum::<f64>() / width as f64;
            let var: f64 =
                row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / width as f64;
            for (i, (g, v)) in got.iter().zip(row).enumerate() {
                let want =
                    (*v as f64 - mean) / (var + 1e-5).sqrt() * gamma[i] as f64 + beta[i] as f64;
                assert!((*g as f64 - want).abs() < 1e-5, "{g} vs {want}");
            }
        }
    }
}
