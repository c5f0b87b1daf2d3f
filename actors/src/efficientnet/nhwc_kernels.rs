//! The CPU kernels of [`super::NhwcNetwork`], on activations laid out NHWC (one
//! row of `C` channels per pixel), each with its bias, ReLU6 and residual fused in,
//! so every layer reads and writes its activations once.

use rayon::prelude::*;

/// ReLU6 after the bias, or nothing (a block's linear projection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activation {
    Relu6,
    Linear,
}

impl Activation {
    fn apply(self, values: &mut [f32]) {
        if self == Activation::Relu6 {
            values.iter_mut().for_each(|v| *v = v.clamp(0.0, 6.0));
        }
    }
}

/// `dst += lhs · rhs`, all row-major: `dst` is `m x n`, `lhs` `m x k`, `rhs` `k x n`.
/// Single-threaded: callers split rows across cores themselves, so each call's
/// output stays in cache for its epilogue.
pub(crate) fn matmul_add(dst: &mut [f32], lhs: &[f32], rhs: &[f32], m: usize, k: usize, n: usize) {
    assert!(
        dst.len() == m * n && lhs.len() == m * k && rhs.len() == k * n,
        "matmul_add: {m}x{k} · {k}x{n} with {} / {} / {} values",
        lhs.len(),
        rhs.len(),
        dst.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the assert above keeps every access gemm makes through these
    // strides inside the three slices; `dst` is exclusively borrowed and does not
    // overlap the shared `lhs` and `rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            true,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            1,
            n as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// How many pixel rows one parallel piece of a 1x1 convolution takes: enough
/// pieces for every core, few enough that packing the weights stays cheap.
fn rows_per_piece(rows: usize) -> usize {
    let pieces = rayon::current_num_threads().max(1) * 4;
    rows.div_ceil(pieces).clamp(32, 512)
}

/// A 1x1 convolution (batch norm folded in) on `rows` pixels: `x` is
/// `rows x inputs`, `weights_t` `inputs x outputs`, and the result
/// `rows x outputs` = `x · weights_t + bias (+ residual)`, then `activation`.
pub(crate) fn pointwise(
    x: &[f32],
    rows: usize,
    weights_t: &[f32],
    bias: &[f32],
    residual: Option<&[f32]>,
    activation: Activation,
    out: &mut [f32],
) {
    let outputs = bias.len();
    let inputs = weights_t.len() / outputs.max(1);
    let piece = rows_per_piece(rows);
    out.par_chunks_mut(piece * outputs)
        .enumerate()
        .for_each(|(i, dst)| {
            let first = i * piece;
            let n = dst.len() / outputs;
            match residual {
                Some(r) => {
                    let r = &r[first * outputs..(first + n) * outputs];
                    for (d, r) in dst.chunks_exact_mut(outputs).zip(r.chunks_exact(outputs)) {
                        d.iter_mut()
                            .zip(r.iter().zip(bias))
                            .for_each(|(d, (r, b))| *d = r + b);
                    }
                }
                None => dst
                    .chunks_exact_mut(outputs)
                    .for_each(|d| d.copy_from_slice(bias)),
            }
            let lhs = &x[first * inputs..(first + n) * inputs];
            matmul_add(dst, lhs, weights_t, n, inputs, outputs);
            activation.apply(dst);
        });
}

/// TensorFlow "SAME" padding of one dimension: (before, after, output size).
pub(crate) fn same_padding(size: usize, k: usize, stride: usize) -> (usize, usize, usize) {
    let out = size.div_ceil(stride);
    let total = ((out - 1) * stride + k).saturating_sub(size);
    (total / 2, total - total / 2, out)
}

/// Shape of one depthwise layer's input: `images x h x w x channels`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Planes {
    pub images: usize,
    pub h: usize,
    pub w: usize,
    pub channels: usize,
}

/// A depthwise `k`x`k` convolution at `stride` with "SAME" padding, bias and
/// ReLU6: `weights` is `(k * k) x channels` (tap-major, so the innermost loop runs
/// along contiguous channels), `out` is `images x oh x ow x channels`.
pub(crate) fn depthwise(
    x: &[f32],
    shape: Planes,
    weights: &[f32],
    bias: &[f32],
    k: usize,
    stride: usize,
    out: &mut [f32],
) {
    let Planes {
        images,
        h,
        w,
        channels,
    } = shape;
    let (top, _, oh) = same_padding(h, k, stride);
    let (left, _, ow) = same_padding(w, k, stride);
    debug_assert_eq!(x.len(), images * h * w * channels);
    debug_assert_eq!(out.len(), images * oh * ow * channels);
    out.par_chunks_mut(ow * channels)
        .enumerate()
        .for_each(|(row, dst)| {
            let (image, oy) = (row / oh, row % oh);
            let plane = &x[image * h * w * channels..(image + 1) * h * w * channels];
            dst.chunks_exact_mut(channels)
                .for_each(|d| d.copy_from_slice(bias));
            for ki in 0..k {
                let iy = (oy * stride + ki) as isize - top as isize;
                if iy < 0 || iy >= h as isize {
                    continue;
                }
                let line = &plane[iy as usize * w * channels..(iy as usize + 1) * w * channels];
                for (ox, d) in dst.chunks_exact_mut(channels).enumerate() {
                    for kj in 0..k {
                        let ix = (ox * stride + kj) as isize - left as isize;
                        if ix < 0 || ix >= w as isize {
                            continue;
                        }
                        let src = &line[ix as usize * channels..(ix as usize + 1) * channels];
                        let tap = &weights[(ki * k + kj) * channels..(ki * k + kj + 1) * channels];
                        d.iter_mut()
                            .zip(src.iter().zip(tap))
                            .for_each(|(d, (s, t))| *d += s * t);
                    }
                }
            }
            Activation::Relu6.apply(dst);
        });
}

/// The stem: a 3-channel `k`x`k` convolution at `stride`, "SAME" padding, bias and
/// ReLU6, reading NCHW input (`images x 3 x h x w`, as the preprocessing makes it)
/// and writing NHWC. `weights` is `(k * k * 3) x outputs`, rows ordered
/// (tap row, tap column, input channel), the order each pixel's patch is gathered in.
#[allow(clippy::too_many_arguments)]
pub(crate) fn stem(
    x: &[f32],
    images: usize,
    h: usize,
    w: usize,
    weights: &[f32],
    bias: &[f32],
    k: usize,
    stride: usize,
    out: &mut [f32],
) {
    const IN: usize = 3;
    let outputs = bias.len();
    let (top, _, oh) = same_padding(h, k, stride);
    let (left, _, ow) = same_padding(w, k, stride);
    let patch = k * k * IN;
    debug_assert_eq!(out.len(), images * oh * ow * outputs);
    out.par_chunks_mut(ow * outputs)
        .enumerate()
        .for_each_init(Vec::new, |cols, (row, dst)| {
            let (image, oy) = (row / oh, row % oh);
            let input = &x[image * IN * h * w..(image + 1) * IN * h * w];
            cols.clear();
            cols.resize(ow * patch, 0.0);
            for (ox, p) in cols.chunks_exact_mut(patch).enumerate() {
                for ki in 0..k {
                    let iy = (oy * stride + ki) as isize - top as isize;
                    for kj in 0..k {
                        let ix = (ox * stride + kj) as isize - left as isize;
                        let inside = iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w;
                        for c in 0..IN {
                            p[(ki * k + kj) * IN + c] = if inside {
                                input[(c * h + iy as usize) * w + ix as usize]
                            } else {
                                0.0
                            };
                        }
                    }
                }
            }
            dst.chunks_exact_mut(outputs)
                .for_each(|d| d.copy_from_slice(bias));
            matmul_add(dst, cols, weights, ow, patch, outputs);
            Activation::Relu6.apply(dst);
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_matches_tensorflow() {
        assert_eq!(same_padding(224, 3, 2), (0, 1, 112));
        assert_eq!(same_padding(112, 5, 2), (1, 2, 56));
        assert_eq!(same_padding(56, 3, 1), (1, 1, 56));
        assert_eq!(same_padding(14, 5, 1), (2, 2, 14));
    }

    /// A value in [-1, 1) from an index, so inputs differ everywhere.
    fn wave(i: usize, m: usize) -> f32 {
        ((i * 7919 % m) as f32 / m as f32) * 2.0 - 1.0
    }

    #[test]
    fn pointwise_adds_bias_and_residual_then_clamps_like_a_naive_loop() {
        let (rows, inputs, outputs) = (300, 5, 7);
        let x: Vec<f32> = (0..rows * inputs).map(|i| wave(i, 97) * 4.0).collect();
        let wt: Vec<f32> = (0..inputs * outputs).map(|i| wave(i, 31)).collect();
        let bias: Vec<f32> = (0..outputs).map(|i| wave(i, 5)).collect();
        let residual: Vec<f32> = (0..rows * outputs).map(|i| wave(i, 13) * 3.0).collect();
        for (res, act) in [
            (None, Activation::Relu6),
            (Some(&residual[..]), Activation::Linear),
        ] {
            let mut out = vec![f32::NAN; rows * outputs];
            pointwise(&x, rows, &wt, &bias, res, act, &mut out);
            for r in 0..rows {
                for o in 0..outputs {
                    let mut want = bias[o] + res.map_or(0.0, |v| v[r * outputs + o]);
                    for i in 0..inputs {
                        want += x[r * inputs + i] * wt[i * outputs + o];
                    }
                    if act == Activation::Relu6 {
                        want = want.clamp(0.0, 6.0);
                    }
                    let got = out[r * outputs + o];
                    assert!(
                        (got - want).abs() < 1e-4,
                        "row {r} out {o}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn depthwise_and_stem_equal_a_naive_convolution() {
        for (k, stride, h, w) in [(3, 1, 7, 9), (3, 2, 8, 7), (5, 2, 11, 10), (5, 1, 6, 6)] {
            // Depthwise, 3 channels, 2 images.
            let (images, c) = (2, 3);
            let weights: Vec<f32> = (0..k * k * c).map(|i| wave(i, 11)).collect();
            let bias: Vec<f32> = (0..c).map(|i| wave(i, 3)).collect();
            let x: Vec<f32> = (0..images * h * w * c).map(|i| wave(i, 17) * 3.0).collect();
            let (top, _, oh) = same_padding(h, k, stride);
            let (left, _, ow) = same_padding(w, k, stride);
            let mut out = vec![f32::NAN; images * oh * ow * c];
            let shape = Planes {
                images,
                h,
                w,
                channels: c,
            };
            depthwise(&x, shape, &weights, &bias, k, stride, &mut out);
            // The stem on the same numbers read as NCHW, 4 outputs.
            let outputs = 4;
            let sw: Vec<f32> = (0..k * k * 3 * outputs).map(|i| wave(i, 23)).collect();
            let sb: Vec<f32> = (0..outputs).map(|i| wave(i, 7)).collect();
            let mut stem_out = vec![f32::NAN; images * oh * ow * outputs];
            stem(&x, images, h, w, &sw, &sb, k, stride, &mut stem_out);
            let at = |iy: usize, ki: usize, ox: usize, kj: usize| {
                let iy = (iy * stride + ki) as isize - top as isize;
                let ix = (ox * stride + kj) as isize - left as isize;
                (iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w)
                    .then_some((iy as usize, ix as usize))
            };
            for n in 0..images {
                for oy in 0..oh {
                    for ox in 0..ow {
                        for ch in 0..c {
                            let mut want = bias[ch];
                            for ki in 0..k {
                                for kj in 0..k {
                                    if let Some((iy, ix)) = at(oy, ki, ox, kj) {
                                        want += weights[(ki * k + kj) * c + ch]
                                            * x[((n * h + iy) * w + ix) * c + ch];
                                    }
                                }
                            }
                            let want = want.clamp(0.0, 6.0);
                            let got = out[((n * oh + oy) * ow + ox) * c + ch];
                            assert!(
                                (got - want).abs() < 1e-4,
                                "dw k{k} s{stride}: {got} vs {want}"
                            );
                        }
                        for o in 0..outputs {
                            let mut want = sb[o];
                            for ki in 0..k {
                                for kj in 0..k {
                                    if let Some((iy, ix)) = at(oy, ki, ox, kj) {
                                        for ch in 0..3 {
                                            want += sw[((ki * k + kj) * 3 + ch) * outputs + o]
                                                * x[((n * 3 + ch) * h + iy) * w + ix];
                                        }
                                    }
                                }
                            }
                            let want = want.clamp(0.0, 6.0);
                            let got = stem_out[((n * oh + oy) * ow + ox) * outputs + o];
                            assert!(
                                (got - want).abs() < 1e-4,
                                "stem k{k} s{stride}: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}
