//! [`Depthwise`]: a depthwise convolution with its bias and ReLU6 fused.

use candle_core::{CpuStorage, CustomOp1, Device, Layout, Shape, Tensor};

/// One depthwise convolution layer (batch norm already folded in): each channel
/// convolved with its own `k`x`k` kernel, TensorFlow "SAME" padding, then the bias
/// and ReLU6.
#[derive(Debug, Clone)]
pub struct Depthwise {
    /// `channels * k * k`, channel-major.
    weights: Vec<f32>,
    bias: Vec<f32>,
    channels: usize,
    k: usize,
    stride: usize,
    /// The same layer's weights on the model's device, `(1, C, k, k)`-shaped
    /// pieces for the device path.
    device_weights: Option<(Tensor, Tensor)>,
}

/// TensorFlow "SAME" padding of one dimension: (before, after, output size).
pub(crate) fn same_padding(size: usize, k: usize, stride: usize) -> (usize, usize, usize) {
    let out = size.div_ceil(stride);
    let total = ((out - 1) * stride + k).saturating_sub(size);
    (total / 2, total - total / 2, out)
}

impl Depthwise {
    /// A layer from `weights` (`channels * k * k`) and `bias` (`channels`).
    pub fn new(
        weights: Vec<f32>,
        bias: Vec<f32>,
        k: usize,
        stride: usize,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let channels = bias.len();
        if weights.len() != channels * k * k || k == 0 || stride == 0 {
            candle_core::bail!(
                "depthwise: {} weights for {channels} channels of {k}x{k} at stride {stride}",
                weights.len()
            );
        }
        let device_weights = if device.is_cpu() {
            None
        } else {
            let w = Tensor::from_slice(&weights, (channels, k * k), device)?;
            let b = Tensor::from_slice(&bias, (1, channels, 1, 1), device)?;
            Some((w, b))
        };
        Ok(Self {
            weights,
            bias,
            channels,
            k,
            stride,
            device_weights,
        })
    }

    /// Applies the layer to `x` (`B, C, H, W`).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match &self.device_weights {
            None => x.contiguous()?.apply_op1_no_bwd(self),
            Some((w, b)) => self.forward_shifted(x, w, b),
        }
    }

    /// The device path: `k * k` shifted multiply-adds over the padded input, each a
    /// whole-tensor operation (so it runs wherever candle runs).
    pub fn forward_shifted(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let (batch, c, h, wd) = x.dims4()?;
        let s = self.stride;
        let (top, bottom, oh) = same_padding(h, self.k, s);
        let (left, right, ow) = same_padding(wd, self.k, s);
        // Pad to a multiple of the stride so strided taps become a reshape.
        let hp = (h + top + bottom).next_multiple_of(s);
        let wp = (wd + left + right).next_multiple_of(s);
        let padded = x
            .pad_with_zeros(2, top, hp - h - top)?
            .pad_with_zeros(3, left, wp - wd - left)?
            .reshape((batch, c, hp / s, s, wp / s, s))?;
        let mut out: Option<Tensor> = None;
        for i in 0..self.k {
            for j in 0..self.k {
                let tap = padded
                    .narrow(3, i % s, 1)?
                    .narrow(5, j % s, 1)?
                    .narrow(2, i / s, oh)?
                    .narrow(4, j / s, ow)?
                    .reshape((batch, c, oh, ow))?;
                let weight = w.narrow(1, i * self.k + j, 1)?.reshape((1, c, 1, 1))?;
                let term = tap.broadcast_mul(&weight)?;
                out = Some(match out {
                    None => term,
                    Some(acc) => (acc + term)?,
                });
            }
        }
        let out = out.ok_or_else(|| candle_core::Error::Msg("depthwise: empty kernel".into()))?;
        out.broadcast_add(b)?.clamp(0f32, 6f32)
    }

    /// One channel plane: `input` is `h x w`, `out` is `oh x ow`.
    fn plane(&self, ch: usize, input: &[f32], h: usize, w: usize, out: &mut [f32]) {
        let (k, s) = (self.k, self.stride);
        let (top, _, oh) = same_padding(h, k, s);
        let (left, _, ow) = same_padding(w, k, s);
        let kernel = &self.weights[ch * k * k..(ch + 1) * k * k];
        out.fill(self.bias[ch]);
        for oy in 0..oh {
            let row_out = &mut out[oy * ow..(oy + 1) * ow];
            for ki in 0..k {
                let iy = (oy * s + ki) as isize - top as isize;
                if iy < 0 || iy >= h as isize {
                    continue;
                }
                let row_in = &input[iy as usize * w..(iy as usize + 1) * w];
                for kj in 0..k {
                    let wt = kernel[ki * k + kj];
                    // Output columns whose input column ox*s + kj - left is inside.
                    let first = left.saturating_sub(kj).div_ceil(s);
                    let last = ((w + left).saturating_sub(kj)).div_ceil(s).min(ow);
                    if s == 1 {
                        let start = first + kj - left;
                        let src = &row_in[start..start + (last - first)];
                        for (o, &v) in row_out[first..last].iter_mut().zip(src) {
                            *o += wt * v;
                        }
                    } else {
                        for (ox, o) in row_out.iter_mut().enumerate().take(last).skip(first) {
                            *o += wt * row_in[ox * s + kj - left];
                        }
                    }
                }
            }
            for o in row_out.iter_mut() {
                *o = o.clamp(0.0, 6.0);
            }
        }
    }
}

impl CustomOp1 for Depthwise {
    fn name(&self) -> &'static str {
        "depthwise-conv-relu6"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        use rayon::prelude::*;
        let (batch, c, h, w) = layout.shape().dims4()?;
        if c != self.channels {
            candle_core::bail!(
                "depthwise: input has {c} channels, the layer {}",
                self.channels
            );
        }
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("depthwise: input not contiguous".into()))?;
        let input = match storage {
            CpuStorage::F32(v) => &v[start..end],
            _ => candle_core::bail!("depthwise: input must be f32"),
        };
        let (_, _, oh) = same_padding(h, self.k, self.stride);
        let (_, _, ow) = same_padding(w, self.k, self.stride);
        let mut out = vec![0f32; batch * c * oh * ow];
        out.par_chunks_mut(oh * ow)
            .zip(input.par_chunks(h * w))
            .enumerate()
            .for_each(|(plane, (o, i))| self.plane(plane % c, i, h, w, o));
        Ok((CpuStorage::F32(out), Shape::from((batch, c, oh, ow))))
    }
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

    /// The CPU kernel and the device path agree, and both equal a naive loop.
    #[test]
    fn the_cpu_kernel_and_the_shifted_path_agree_with_a_naive_convolution(
    ) -> candle_core::Result<()> {
        for (k, stride, h, w) in [(3, 1, 7, 9), (3, 2, 8, 7), (5, 2, 11, 10), (5, 1, 6, 6)] {
            let c = 3;
            let weights: Vec<f32> = (0..c * k * k)
                .map(|i| ((i * 7 % 11) as f32 - 5.0) / 10.0)
                .collect();
            let bias: Vec<f32> = (0..c).map(|i| i as f32 * 0.1 - 0.1).collect();
            let input: Vec<f32> = (0..2 * c * h * w)
                .map(|i| ((i * 13 % 17) as f32) / 8.0)
                .collect();
            let x = Tensor::from_slice(&input, (2, c, h, w), &Device::Cpu)?;
            let layer = Depthwise::new(weights.clone(), bias.clone(), k, stride, &Device::Cpu)?;
            let fast = layer.forward(&x)?;
            let wt = Tensor::from_slice(&weights, (c, k * k), &Device::Cpu)?;
            let bt = Tensor::from_slice(&bias, (1, c, 1, 1), &Device::Cpu)?;
            let shifted = layer.forward_shifted(&x, &wt, &bt)?;
            let (top, _, oh) = same_padding(h, k, stride);
            let (left, _, ow) = same_padding(w, k, stride);
            assert_eq!(fast.dims4()?, (2, c, oh, ow));
            let fast: Vec<f32> = fast.flatten_all()?.to_vec1()?;
            let shifted: Vec<f32> = shifted.flatten_all()?.to_vec1()?;
            for b in 0..2 {
                for ch in 0..c {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let mut want = bias[ch];
                            for ki in 0..k {
                                for kj in 0..k {
                                    let iy = (oy * stride + ki) as isize - top as isize;
                                    let ix = (ox * stride + kj) as isize - left as isize;
                                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w
                                    {
                                        want += weights[ch * k * k + ki * k + kj]
                                            * input[((b * c + ch) * h + iy as usize) * w
                                                + ix as usize];
                                    }
                                }
                            }
                            let want = want.clamp(0.0, 6.0);
                            let at = ((b * c + ch) * oh + oy) * ow + ox;
                            assert!(
                                (fast[at] - want).abs() < 1e-5,
                                "k{k} s{stride} kernel at {at}: {} vs {want}",
                                fast[at]
                            );
                            assert!(
                                (shifted[at] - want).abs() < 1e-5,
                                "k{k} s{stride} shifted at {at}: {} vs {want}",
                                shifted[at]
                            );
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
