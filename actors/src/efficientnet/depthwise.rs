//! [`Depthwise`]: a depthwise convolution with its bias and ReLU6, as whole-tensor
//! operations (the device path; the CPU runs `nhwc_kernels::depthwise`).

use candle_core::{Device, Tensor};

use crate::nhwc::same_padding;

/// One depthwise convolution layer (batch norm already folded in): each channel
/// convolved with its own `k`x`k` kernel, TensorFlow "SAME" padding, then the bias
/// and ReLU6. candle's grouped convolution would make one call per channel, so
/// this runs `k * k` shifted multiply-adds instead.
#[derive(Debug, Clone)]
pub struct Depthwise {
    /// `(C, k * k)`.
    weights: Tensor,
    /// `(1, C, 1, 1)`.
    bias: Tensor,
    k: usize,
    stride: usize,
}

impl Depthwise {
    /// A layer from `weights` (`channels * k * k`, channel-major) and `bias`
    /// (`channels`), placed on `device`.
    pub fn new(
        weights: &[f32],
        bias: &[f32],
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
        Ok(Self {
            weights: Tensor::from_slice(weights, (channels, k * k), device)?,
            bias: Tensor::from_slice(bias, (1, channels, 1, 1), device)?,
            k,
            stride,
        })
    }

    /// Applies the layer to `x` (`B, C, H, W`).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
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
                let weight = self
                    .weights
                    .narrow(1, i * self.k + j, 1)?
                    .reshape((1, c, 1, 1))?;
                let term = tap.broadcast_mul(&weight)?;
                out = Some(match out {
                    None => term,
                    Some(acc) => (acc + term)?,
                });
            }
        }
        let out = out.ok_or_else(|| candle_core::Error::Msg("depthwise: empty kernel".into()))?;
        out.broadcast_add(&self.bias)?.clamp(0f32, 6f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole-tensor path equals a naive loop.
    #[test]
    fn the_shifted_path_agrees_with_a_naive_convolution() -> candle_core::Result<()> {
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
            let layer = Depthwise::new(&weights, &bias, k, stride, &Device::Cpu)?;
            let shifted: Vec<f32> = layer.forward(&x)?.flatten_all()?.to_vec1()?;
            let (top, _, oh) = same_padding(h, k, stride);
            let (left, _, ow) = same_padding(w, k, stride);
            assert_eq!(shifted.len(), 2 * c * oh * ow);
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
                                (shifted[at] - want).abs() < 1e-5,
                                "k{k} s{stride} at {at}: {} vs {want}",
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
