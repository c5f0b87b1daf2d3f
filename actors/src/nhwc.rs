//! CPU kernels for the vision models (EfficientNet-Lite0, MTCNN) on activations
//! laid out NHWC (one row of `C` channels per pixel), each with its bias,
//! activation and residual fused in, so every layer reads and writes its
//! activations once. Convolutions are matrix products (gemm) over row-blocked
//! pieces of the output, the pieces spread over the cores with rayon.

use rayon::prelude::*;

use crate::column_pieces::{columns_per_piece, pointwise_columns, Operands};
use crate::product::{product_add, Strided};

/// What follows a layer's bias.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Activation<'a> {
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// Nothing (a linear projection).
    Linear,
    /// `x` where positive, else `x * slope` with one slope per channel.
    PRelu(&'a [f32]),
    /// A transformer feed-forward's GELU.
    Gelu(crate::transformer::Gelu),
}

impl Activation<'_> {
    /// Applies to `values` (rows of `width` channels) in pieces across the
    /// cores: for products that could not fuse it into their epilogue.
    pub(crate) fn apply_rows(self, values: &mut [f32], width: usize) {
        if matches!(self, Activation::Linear) {
            return;
        }
        let piece = rows_per_piece(values.len() / width.max(1)) * width.max(1);
        values.par_chunks_mut(piece).for_each(|v| self.apply(v));
    }

    /// Whether it acts on each value alone (so on any piece of a row).
    pub(crate) fn is_elementwise(self) -> bool {
        !matches!(self, Activation::PRelu(_))
    }

    /// Applies to `values`, any piece of the output, if it acts element by
    /// element (else leaves them: [`Self::apply_rows`] is for whole rows).
    #[inline(always)]
    pub(crate) fn apply_elementwise(self, values: &mut [f32]) {
        if self.is_elementwise() {
            self.apply(values)
        }
    }

    /// Applies to `values`, rows of as many channels as the layer has.
    fn apply(self, values: &mut [f32]) {
        match self {
            Activation::Relu6 => values.iter_mut().for_each(|v| *v = v.clamp(0.0, 6.0)),
            Activation::Linear => {}
            Activation::Gelu(kind) => crate::transformer::elementwise::gelu(values, kind),
            Activation::PRelu(slopes) => {
                for row in values.chunks_exact_mut(slopes.len().max(1)) {
                    row.iter_mut().zip(slopes).for_each(|(v, a)| {
                        if *v < 0.0 {
                            *v *= a;
                        }
                    });
                }
            }
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
    let contiguous = |ptr: *const f32, row: usize| Strided { ptr, row, col: 1 };
    // SAFETY: the assert above keeps every access through these strides inside
    // the three slices; `dst` is exclusively borrowed (and initialised) and
    // does not overlap the shared `lhs` and `rhs`.
    unsafe {
        product_add(
            (m, n, k),
            dst.as_mut_ptr(),
            n,
            contiguous(lhs.as_ptr(), k),
            contiguous(rhs.as_ptr(), n),
        );
    }
}

/// How many pixel rows one parallel piece of a 1x1 convolution takes: enough
/// pieces for every core, few enough that packing the weights stays cheap.
fn rows_per_piece(rows: usize) -> usize {
    let pieces = rayon::current_num_threads().max(1) * 4;
    rows.div_ceil(pieces).clamp(32, 512)
}

/// Starts each row of `dst` (rows of `bias.len()` outputs) at the bias, plus
/// the same cells of `residual` when there is one, for a product to add to.
pub(crate) fn start_rows(dst: &mut [f32], bias: &[f32], residual: Option<&[f32]>) {
    let outputs = bias.len().max(1);
    match residual {
        Some(r) => {
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
    activation: Activation<'_>,
    out: &mut [f32],
) {
    let outputs = bias.len();
    let inputs = weights_t.len() / outputs.max(1);
    let piece = rows_per_piece(rows);
    if rows <= piece && activation.is_elementwise() {
        if let Some(width) = columns_per_piece(outputs) {
            let operands = Operands {
                x,
                rows,
                weights_t,
                bias,
                residual,
            };
            return pointwise_columns(operands, activation, out, width);
        }
    }
    out.par_chunks_mut(piece * outputs)
        .enumerate()
        .for_each(|(i, dst)| {
            let first = i * piece;
            let n = dst.len() / outputs;
            start_rows(
                dst,
                bias,
                residual.map(|r| &r[first * outputs..(first + n) * outputs]),
            );
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

/// How a convolution pads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Padding {
    /// TensorFlow's "SAME": the output is `ceil(size / stride)`.
    Same,
    /// None: only windows wholly inside.
    Valid,
}

/// A `k`x`k` convolution's weights: `(k * k * inputs) x outputs`, rows ordered
/// (tap row, tap column, input channel), the order an NHWC patch is gathered in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvLayer<'a> {
    pub weights: &'a [f32],
    pub bias: &'a [f32],
    pub k: usize,
    pub stride: usize,
    pub padding: Padding,
}

impl ConvLayer<'_> {
    /// `(top, left, out_h, out_w)` for an `h` x `w` input.
    pub fn geometry(&self, h: usize, w: usize) -> (usize, usize, usize, usize) {
        match self.padding {
            Padding::Same => {
                let (top, _, oh) = same_padding(h, self.k, self.stride);
                let (left, _, ow) = same_padding(w, self.k, self.stride);
                (top, left, oh, ow)
            }
            Padding::Valid => {
                let out = |n: usize| n.saturating_sub(self.k) / self.stride + 1;
                (0, 0, out(h), out(w))
            }
        }
    }
}

/// Reorders a convolution's weights from PyTorch's `(out, in, k, k)` to
/// [`ConvLayer`]'s `(k * k * in) x out`.
pub(crate) fn conv_weights(values: &[f32], outputs: usize, inputs: usize, k: usize) -> Vec<f32> {
    let mut w = vec![0f32; values.len()];
    for o in 0..outputs {
        for c in 0..inputs {
            for t in 0..k * k {
                w[(t * inputs + c) * outputs + o] = values[(o * inputs + c) * k * k + t];
            }
        }
    }
    w
}

/// A convolution over NHWC `x` (`shape`), then `activation`, into `out`
/// (`images x oh x ow x outputs`): each output row gathers its patches (im2col)
/// and multiplies them by the weights in one matrix product.
pub(crate) fn conv(
    x: &[f32],
    shape: Planes,
    layer: ConvLayer<'_>,
    activation: Activation<'_>,
    out: &mut [f32],
) {
    let Planes {
        images,
        h,
        w,
        channels,
    } = shape;
    let k = layer.k;
    let outputs = layer.bias.len();
    let (top, left, oh, ow) = layer.geometry(h, w);
    let patch = k * k * channels;
    debug_assert_eq!(x.len(), images * h * w * channels);
    debug_assert_eq!(out.len(), images * oh * ow * outputs);
    debug_assert_eq!(layer.weights.len(), patch * outputs);
    out.par_chunks_mut(ow * outputs)
        .enumerate()
        .for_each_init(Vec::new, |cols, (row, dst)| {
            let (image, oy) = (row / oh, row % oh);
            let plane = &x[image * h * w * channels..(image + 1) * h * w * channels];
            cols.clear();
            cols.resize(ow * patch, 0.0);
            for (ox, p) in cols.chunks_exact_mut(patch).enumerate() {
                for ki in 0..k {
                    let iy = (oy * layer.stride + ki) as isize - top as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    for kj in 0..k {
                        let ix = (ox * layer.stride + kj) as isize - left as isize;
                        if ix < 0 || ix >= w as isize {
                            continue;
                        }
                        let at = (iy as usize * w + ix as usize) * channels;
                        p[(ki * k + kj) * channels..(ki * k + kj + 1) * channels]
                            .copy_from_slice(&plane[at..at + channels]);
                    }
                }
            }
            dst.chunks_exact_mut(outputs)
                .for_each(|d| d.copy_from_slice(layer.bias));
            matmul_add(dst, cols, layer.weights, ow, patch, outputs);
            activation.apply(dst);
        });
}

/// PyTorch's output size of a pooling with `ceil_mode = true`.
pub(crate) fn ceil_out(n: usize, k: usize, s: usize) -> usize {
    let n = n.max(k);
    let mut o = (n - k).div_ceil(s) + 1;
    if (o - 1) * s >= n {
        o -= 1;
    }
    o
}

/// Max pooling `k`x`k` at stride `s` with `ceil_mode = true` (the last, partial
/// window counts) over NHWC `x`; returns the output and its `(h, w)`.
pub(crate) fn max_pool_ceil(
    x: &[f32],
    shape: Planes,
    k: usize,
    s: usize,
) -> (Vec<f32>, usize, usize) {
    let Planes {
        images,
        h,
        w,
        channels,
    } = shape;
    let (oh, ow) = (ceil_out(h, k, s), ceil_out(w, k, s));
    let mut out = vec![f32::NEG_INFINITY; images * oh * ow * channels];
    out.par_chunks_mut(ow * channels)
        .enumerate()
        .for_each(|(row, dst)| {
            let (image, oy) = (row / oh, row % oh);
            let plane = &x[image * h * w * channels..(image + 1) * h * w * channels];
            for iy in oy * s..(oy * s + k).min(h) {
                for (ox, d) in dst.chunks_exact_mut(channels).enumerate() {
                    for ix in ox * s..(ox * s + k).min(w) {
                        let src = &plane[(iy * w + ix) * channels..(iy * w + ix + 1) * channels];
                        d.iter_mut().zip(src).for_each(|(d, v)| *d = d.max(*v));
                    }
                }
            }
        });
    (out, oh, ow)
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
        // Many rows (split by rows) and a decoder step's few rows over many
        // columns (split by columns, pieces ragged at the end).
        for (rows, inputs, outputs) in [(300, 5, 7), (3, 40, 1_000), (1, 9, 130)] {
            pointwise_case(rows, inputs, outputs);
        }
        assert!(
            rayon::current_num_threads() == 1 || columns_per_piece(1_000).is_some(),
            "a thousand columns are shared out on {} threads",
            rayon::current_num_threads()
        );
    }

    fn pointwise_case(rows: usize, inputs: usize, outputs: usize) {
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
    fn depthwise_and_conv_equal_a_naive_convolution() {
        for (k, stride, h, w) in [(3, 1, 7, 9), (3, 2, 8, 7), (5, 2, 11, 10), (5, 1, 6, 6)] {
            // Depthwise, 3 channels, 2 images.
            let (images, c) = (2, 3);
            let weights: Vec<f32> = (0..k * k * c).map(|i| wave(i, 11)).collect();
            let bias: Vec<f32> = (0..c).map(|i| wave(i, 3)).collect();
            let x: Vec<f32> = (0..images * h * w * c).map(|i| wave(i, 17) * 3.0).collect();
            let shape = Planes {
                images,
                h,
                w,
                channels: c,
            };
            let (top, _, oh) = same_padding(h, k, stride);
            let (left, _, ow) = same_padding(w, k, stride);
            let mut out = vec![f32::NAN; images * oh * ow * c];
            depthwise(&x, shape, &weights, &bias, k, stride, &mut out);
            let at = |oy: usize, ki: usize, ox: usize, kj: usize, top: usize, left: usize| {
                let iy = (oy * stride + ki) as isize - top as isize;
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
                                    if let Some((iy, ix)) = at(oy, ki, ox, kj, top, left) {
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
                    }
                }
            }
            // A full convolution, 4 outputs, "SAME" with ReLU6 and "VALID" with PReLU,
            // weights given in PyTorch's order.
            let outputs = 4;
            let torch: Vec<f32> = (0..outputs * c * k * k).map(|i| wave(i, 23)).collect();
            let sw = conv_weights(&torch, outputs, c, k);
            let sb: Vec<f32> = (0..outputs).map(|i| wave(i, 7)).collect();
            let slopes: Vec<f32> = (0..outputs).map(|i| 0.1 + i as f32 * 0.2).collect();
            for (padding, act) in [
                (Padding::Same, Activation::Relu6),
                (Padding::Valid, Activation::PRelu(&slopes)),
            ] {
                let layer = ConvLayer {
                    weights: &sw,
                    bias: &sb,
                    k,
                    stride,
                    padding,
                };
                let (top, left, oh, ow) = layer.geometry(h, w);
                let mut got = vec![f32::NAN; images * oh * ow * outputs];
                conv(&x, shape, layer, act, &mut got);
                for n in 0..images {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            for o in 0..outputs {
                                let mut want = sb[o];
                                for ki in 0..k {
                                    for kj in 0..k {
                                        if let Some((iy, ix)) = at(oy, ki, ox, kj, top, left) {
                                            for ch in 0..c {
                                                want += torch[((o * c + ch) * k + ki) * k + kj]
                                                    * x[((n * h + iy) * w + ix) * c + ch];
                                            }
                                        }
                                    }
                                }
                                let want = match act {
                                    Activation::PRelu(a) if want < 0.0 => want * a[o],
                                    Activation::PRelu(_) => want,
                                    _ => want.clamp(0.0, 6.0),
                                };
                                let g = got[((n * oh + oy) * ow + ox) * outputs + o];
                                assert!(
                                    (g - want).abs() < 1e-4,
                                    "conv {padding:?} k{k} s{stride}: {g} vs {want}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn ceil_mode_pooling_matches_pytorch() {
        // PyTorch's MaxPool2d(k, s, ceil_mode=True): (3, 2) on 22 -> 11 and on
        // 10 -> 5, (2, 2) on 5 -> 3 and on 4 -> 2.
        assert_eq!(ceil_out(22, 3, 2), 11);
        assert_eq!(ceil_out(10, 3, 2), 5);
        assert_eq!(ceil_out(5, 2, 2), 3);
        assert_eq!(ceil_out(4, 2, 2), 2);
        // One 5x5 plane 0..25 and the same negated as a second channel.
        let x: Vec<f32> = (0..25).flat_map(|i| [i as f32, -(i as f32)]).collect();
        let shape = Planes {
            images: 1,
            h: 5,
            w: 5,
            channels: 2,
        };
        let (y, oh, ow) = max_pool_ceil(&x, shape, 2, 2);
        assert_eq!((oh, ow), (3, 3));
        let first: Vec<f32> = y.iter().step_by(2).copied().collect();
        assert_eq!(first, vec![6., 8., 9., 16., 18., 19., 21., 23., 24.]);
        let second: Vec<f32> = y.iter().skip(1).step_by(2).copied().collect();
        assert_eq!(
            second,
            vec![0., -2., -4., -10., -12., -14., -20., -22., -24.]
        );
    }
}
