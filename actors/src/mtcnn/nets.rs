//! [`Nets`]: MTCNN's P-, R- and O-net as facenet-pytorch defines them, as candle
//! tensor operations (the device path; the CPU runs [`super::NhwcNets`]).

use std::collections::HashMap;

use candle_core::{Device, Tensor};

use crate::nhwc::ceil_out;

struct Conv {
    weight: Tensor,
    bias: Tensor,
}

impl Conv {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.conv2d(&self.weight, 0, 1, 1, 1)?
            .broadcast_add(&self.bias)
    }
}

struct Dense {
    weight_t: Tensor,
    bias: Tensor,
}

impl Dense {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.weight_t)?.broadcast_add(&self.bias)
    }
}

/// PReLU with one slope per channel, `slope` shaped to broadcast over `x`.
fn prelu(x: &Tensor, slope: &Tensor) -> candle_core::Result<Tensor> {
    x.relu()? + x.minimum(0f32)?.broadcast_mul(slope)?
}

/// Max pooling with `ceil_mode = true`: the input is padded on the far sides with a
/// very negative value so the last, partial window counts.
fn max_pool_ceil(x: &Tensor, k: usize, s: usize) -> candle_core::Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let need_h = (ceil_out(h, k, s) - 1) * s + k;
    let need_w = (ceil_out(w, k, s) - 1) * s + k;
    let mut x = x.clone();
    if need_h > h {
        let pad = Tensor::full(-1e30f32, (b, c, need_h - h, w), x.device())?;
        x = Tensor::cat(&[&x, &pad], 2)?;
    }
    if need_w > w {
        let pad = Tensor::full(-1e30f32, (b, c, need_h.max(h), need_w - w), x.device())?;
        x = Tensor::cat(&[&x, &pad], 3)?;
    }
    x.max_pool2d_with_stride(k, s)
}

/// The three networks on one device.
pub struct Nets {
    convs: HashMap<String, Conv>,
    dense: HashMap<String, Dense>,
    slopes: HashMap<String, Tensor>,
}

impl Nets {
    /// Builds the networks from `pnet.*`, `rnet.*` and `onet.*` tensors.
    pub fn new(tensors: HashMap<String, Tensor>, device: &Device) -> candle_core::Result<Self> {
        let get = |n: &str| {
            tensors
                .get(n)
                .ok_or_else(|| candle_core::Error::Msg(format!("the weights have no tensor {n}")))
        };
        let mut convs = HashMap::new();
        let mut dense = HashMap::new();
        let mut slopes = HashMap::new();
        for (name, t) in &tensors {
            let Some(layer) = name.strip_suffix(".weight") else {
                continue;
            };
            let bias = get(&format!("{layer}.bias"));
            if layer.contains(".prelu") {
                let c = t.dim(0)?;
                slopes.insert(layer.to_string(), t.to_device(device)?.reshape((1, c))?);
            } else if t.rank() == 4 {
                let o = t.dim(0)?;
                convs.insert(
                    layer.to_string(),
                    Conv {
                        weight: t.to_device(device)?,
                        bias: bias?.to_device(device)?.reshape((1, o, 1, 1))?,
                    },
                );
            } else {
                dense.insert(
                    layer.to_string(),
                    Dense {
                        weight_t: t.t()?.contiguous()?.to_device(device)?,
                        bias: bias?.to_device(device)?,
                    },
                );
            }
        }
        let nets = Self {
            convs,
            dense,
            slopes,
        };
        for needed in ["pnet.conv4_2", "rnet.conv3", "onet.conv4"] {
            nets.conv(needed)?;
        }
        for needed in ["rnet.dense5_2", "onet.dense6_2"] {
            nets.dense(needed)?;
        }
        Ok(nets)
    }

    fn conv(&self, n: &str) -> candle_core::Result<&Conv> {
        self.convs
            .get(n)
            .ok_or_else(|| candle_core::Error::Msg(format!("the weights have no convolution {n}")))
    }

    fn dense(&self, n: &str) -> candle_core::Result<&Dense> {
        self.dense
            .get(n)
            .ok_or_else(|| candle_core::Error::Msg(format!("the weights have no dense layer {n}")))
    }

    fn slope(&self, n: &str, rank4: bool) -> candle_core::Result<Tensor> {
        let s = self
            .slopes
            .get(n)
            .ok_or_else(|| candle_core::Error::Msg(format!("the weights have no PReLU {n}")))?;
        if rank4 {
            let c = s.dim(1)?;
            s.reshape((1, c, 1, 1))
        } else {
            Ok(s.clone())
        }
    }

    fn conv_prelu(&self, x: &Tensor, net: &str, i: usize) -> candle_core::Result<Tensor> {
        let y = self.conv(&format!("{net}.conv{i}"))?.forward(x)?;
        prelu(&y, &self.slope(&format!("{net}.prelu{i}"), true)?)
    }

    /// Face probability of a two-way softmax's second class.
    fn face_prob(logits: &Tensor, dim: usize) -> candle_core::Result<Tensor> {
        candle_nn::ops::softmax(logits, dim)?
            .narrow(dim, 1, 1)?
            .squeeze(dim)
    }

    /// P-net over `(1, 3, H, W)`: box offsets `(1, 4, H', W')` and face
    /// probabilities `(1, H', W')`.
    pub fn pnet(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let x = self.conv_prelu(x, "pnet", 1)?;
        let x = max_pool_ceil(&x, 2, 2)?;
        let x = self.conv_prelu(&x, "pnet", 2)?;
        let x = self.conv_prelu(&x, "pnet", 3)?;
        let prob = Self::face_prob(&self.conv("pnet.conv4_1")?.forward(&x)?, 1)?;
        let reg = self.conv("pnet.conv4_2")?.forward(&x)?;
        Ok((reg, prob))
    }

    /// Channel-last flattening, as facenet-pytorch does before its dense layers.
    fn flatten_nhwc(x: &Tensor) -> candle_core::Result<Tensor> {
        let n = x.dim(0)?;
        x.permute((0, 3, 2, 1))?.contiguous()?.reshape((n, ()))
    }

    /// R-net over `(N, 3, 24, 24)`: offsets `(N, 4)` and probabilities `(N)`.
    pub fn rnet(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let x = self.conv_prelu(x, "rnet", 1)?;
        let x = max_pool_ceil(&x, 3, 2)?;
        let x = self.conv_prelu(&x, "rnet", 2)?;
        let x = max_pool_ceil(&x, 3, 2)?;
        let x = self.conv_prelu(&x, "rnet", 3)?;
        let x = self
            .dense("rnet.dense4")?
            .forward(&Self::flatten_nhwc(&x)?)?;
        let x = prelu(&x, &self.slope("rnet.prelu4", false)?)?;
        let prob = Self::face_prob(&self.dense("rnet.dense5_1")?.forward(&x)?, 1)?;
        let reg = self.dense("rnet.dense5_2")?.forward(&x)?;
        Ok((reg, prob))
    }

    /// O-net over `(N, 3, 48, 48)`: offsets `(N, 4)` and probabilities `(N)`.
    pub fn onet(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let x = self.conv_prelu(x, "onet", 1)?;
        let x = max_pool_ceil(&x, 3, 2)?;
        let x = self.conv_prelu(&x, "onet", 2)?;
        let x = max_pool_ceil(&x, 3, 2)?;
        let x = self.conv_prelu(&x, "onet", 3)?;
        let x = max_pool_ceil(&x, 2, 2)?;
        let x = self.conv_prelu(&x, "onet", 4)?;
        let x = self
            .dense("onet.dense5")?
            .forward(&Self::flatten_nhwc(&x)?)?;
        let x = prelu(&x, &self.slope("onet.prelu5", false)?)?;
        let prob = Self::face_prob(&self.dense("onet.dense6_1")?.forward(&x)?, 1)?;
        let reg = self.dense("onet.dense6_2")?.forward(&x)?;
        Ok((reg, prob))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceil_mode_pooling_keeps_the_partial_windows() {
        let x = Tensor::arange(0f32, 25.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 5, 5))
            .unwrap();
        let y = max_pool_ceil(&x, 2, 2).unwrap();
        assert_eq!(y.dims4().unwrap(), (1, 1, 3, 3));
        let v: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(v, vec![6., 8., 9., 16., 18., 19., 21., 23., 24.]);
    }
}
