//! [`NhwcNets`]: MTCNN's P-, R- and O-net on the CPU's NHWC kernels (`crate::nhwc`),
//! each convolution one im2col matrix product per output row with its bias and
//! PReLU fused, and each net's two heads (face score, box offsets) merged into
//! one six-output layer.

use std::collections::HashMap;

use candle_core::Tensor;

use super::cascade::StageOut;
use crate::nhwc::{
    conv, conv_weights, max_pool_ceil, pointwise, Activation, ConvLayer, Padding, Planes,
};

/// A valid (unpadded) stride-1 convolution with PReLU.
struct ConvPrelu {
    weights: Vec<f32>,
    bias: Vec<f32>,
    slopes: Vec<f32>,
    k: usize,
}

impl ConvPrelu {
    /// Applies the layer to `x` (`shape`); returns the output and its shape.
    fn forward(&self, x: &[f32], shape: Planes) -> (Vec<f32>, Planes) {
        let layer = ConvLayer {
            weights: &self.weights,
            bias: &self.bias,
            k: self.k,
            stride: 1,
            padding: Padding::Valid,
        };
        let (_, _, oh, ow) = layer.geometry(shape.h, shape.w);
        let mut out = vec![0f32; shape.images * oh * ow * self.bias.len()];
        conv(x, shape, layer, Activation::PRelu(&self.slopes), &mut out);
        let shape = Planes {
            h: oh,
            w: ow,
            channels: self.bias.len(),
            ..shape
        };
        (out, shape)
    }
}

/// A fully connected layer: `weights_t` is `inputs x outputs`.
struct Dense {
    weights_t: Vec<f32>,
    bias: Vec<f32>,
    /// PReLU slopes, if the layer has one.
    slopes: Option<Vec<f32>>,
}

impl Dense {
    fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut out = vec![0f32; rows * self.bias.len()];
        let act = self
            .slopes
            .as_deref()
            .map_or(Activation::Linear, Activation::PRelu);
        pointwise(x, rows, &self.weights_t, &self.bias, None, act, &mut out);
        out
    }
}

/// Reads and reorders the checkpoint's tensors, with errors naming the tensor.
struct Reader<'a>(&'a HashMap<String, Tensor>);

impl Reader<'_> {
    fn values(&self, name: &str) -> candle_core::Result<(Vec<f32>, Vec<usize>)> {
        let t = self
            .0
            .get(name)
            .ok_or_else(|| candle_core::Error::Msg(format!("the weights have no tensor {name}")))?;
        Ok((t.flatten_all()?.to_vec1()?, t.dims().to_vec()))
    }

    fn conv_prelu(&self, net: &str, i: usize) -> candle_core::Result<ConvPrelu> {
        let name = format!("{net}.conv{i}");
        let (w, dims) = self.values(&format!("{name}.weight"))?;
        if dims.len() != 4 || dims[2] != dims[3] {
            candle_core::bail!("{name}.weight is {dims:?}, expected [out, in, k, k]");
        }
        let (slopes, _) = self.values(&format!("{net}.prelu{i}.weight"))?;
        let (bias, _) = self.values(&format!("{name}.bias"))?;
        if slopes.len() != dims[0] || bias.len() != dims[0] {
            candle_core::bail!("{name}: {} outputs, bias or PReLU differ", dims[0]);
        }
        Ok(ConvPrelu {
            weights: conv_weights(&w, dims[0], dims[1], dims[2]),
            bias,
            slopes,
            k: dims[2],
        })
    }

    /// The `(out, in)` layers (or 1x1 convolutions) `names` stacked into one `in x (sum of out)` layer
    /// (their outputs side by side); `in` is read as `side x side x channels` laid
    /// out as facenet-pytorch flattens (width, height, channel) when `flattened`
    /// is `Some(channels)`, and reordered to NHWC's (height, width, channel).
    fn dense(
        &self,
        names: &[&str],
        slopes: Option<&str>,
        flattened: Option<usize>,
    ) -> candle_core::Result<Dense> {
        let mut layers = Vec::new();
        for name in names {
            let (w, dims) = self.values(&format!("{name}.weight"))?;
            let (b, _) = self.values(&format!("{name}.bias"))?;
            // A dense layer `(out, in)`, or a 1x1 convolution `(out, in, 1, 1)`.
            let shape_ok = dims.len() == 2 || (dims.len() == 4 && dims[2] == 1 && dims[3] == 1);
            if !shape_ok || b.len() != dims[0] {
                candle_core::bail!("{name}.weight is {dims:?} with {} biases", b.len());
            }
            layers.push((w, dims[0], dims[1], b));
        }
        let inputs = layers.first().map_or(0, |l| l.2);
        if layers.iter().any(|l| l.2 != inputs) {
            candle_core::bail!("{names:?} take different input sizes");
        }
        let total: usize = layers.iter().map(|l| l.1).sum();
        // Position in facenet's (w, h, c) flattening of each NHWC input position.
        let source: Vec<usize> = match flattened {
            Some(c) => {
                let side = ((inputs / c.max(1)) as f64).sqrt().round() as usize;
                if side * side * c != inputs {
                    candle_core::bail!(
                        "{names:?}: {inputs} inputs are not a square of {c} channels"
                    );
                }
                (0..inputs)
                    .map(|i| {
                        let (hw, ch) = (i / c, i % c);
                        let (y, x) = (hw / side, hw % side);
                        (x * side + y) * c + ch
                    })
                    .collect()
            }
            None => (0..inputs).collect(),
        };
        let mut weights_t = vec![0f32; inputs * total];
        let mut bias = Vec::with_capacity(total);
        let mut first = 0;
        for (w, out, _, b) in &layers {
            for o in 0..*out {
                for (i, &src) in source.iter().enumerate() {
                    weights_t[i * total + first + o] = w[o * inputs + src];
                }
            }
            bias.extend_from_slice(b);
            first += out;
        }
        let slopes = match slopes {
            Some(name) => {
                let (s, _) = self.values(&format!("{name}.weight"))?;
                if s.len() != total {
                    candle_core::bail!("{name} has {} slopes for {total} outputs", s.len());
                }
                Some(s)
            }
            None => None,
        };
        Ok(Dense {
            weights_t,
            bias,
            slopes,
        })
    }
}

/// The three networks' layers in the layouts the NHWC kernels read.
pub struct NhwcNets {
    pnet: [ConvPrelu; 3],
    /// conv4_1 (2 face logits) and conv4_2 (4 offsets) side by side.
    pnet_out: Dense,
    rnet: [ConvPrelu; 3],
    rnet_dense: Dense,
    rnet_out: Dense,
    onet: [ConvPrelu; 4],
    onet_dense: Dense,
    onet_out: Dense,
}

/// Face probability (the second of a two-way softmax) and box offsets of rows
/// laid out `[logit 0, logit 1, dx1, dy1, dx2, dy2]`.
fn split_heads(rows: &[f32]) -> StageOut {
    let mut out = StageOut::default();
    for r in rows.chunks_exact(6) {
        out.prob.push(1.0 / (1.0 + (r[0] - r[1]).exp()));
        out.reg.extend_from_slice(&r[2..6]);
    }
    out
}

impl NhwcNets {
    /// Builds the networks from `pnet.*`, `rnet.*` and `onet.*` tensors.
    pub fn new(tensors: &HashMap<String, Tensor>) -> candle_core::Result<Self> {
        let r = Reader(tensors);
        let rnet = [
            r.conv_prelu("rnet", 1)?,
            r.conv_prelu("rnet", 2)?,
            r.conv_prelu("rnet", 3)?,
        ];
        let onet = [
            r.conv_prelu("onet", 1)?,
            r.conv_prelu("onet", 2)?,
            r.conv_prelu("onet", 3)?,
            r.conv_prelu("onet", 4)?,
        ];
        let rnet_c = rnet[2].bias.len();
        let onet_c = onet[3].bias.len();
        Ok(Self {
            pnet: [
                r.conv_prelu("pnet", 1)?,
                r.conv_prelu("pnet", 2)?,
                r.conv_prelu("pnet", 3)?,
            ],
            pnet_out: r.dense(&["pnet.conv4_1", "pnet.conv4_2"], None, None)?,
            rnet_dense: r.dense(&["rnet.dense4"], Some("rnet.prelu4"), Some(rnet_c))?,
            rnet_out: r.dense(&["rnet.dense5_1", "rnet.dense5_2"], None, None)?,
            rnet,
            onet_dense: r.dense(&["onet.dense5"], Some("onet.prelu5"), Some(onet_c))?,
            onet_out: r.dense(&["onet.dense6_1", "onet.dense6_2"], None, None)?,
            onet,
        })
    }

    /// P-net over one `h x w` RGB image (`h x w x 3`, normalised): the output
    /// grid's size, and per cell the face probability and four offsets.
    pub fn pnet(&self, hwc: &[f32], h: usize, w: usize) -> (usize, usize, StageOut) {
        let shape = Planes {
            images: 1,
            h,
            w,
            channels: 3,
        };
        let (x, shape) = self.pnet[0].forward(hwc, shape);
        let (x, ph, pw) = max_pool_ceil(&x, shape, 2, 2);
        let shape = Planes {
            h: ph,
            w: pw,
            ..shape
        };
        let (x, shape) = self.pnet[1].forward(&x, shape);
        let (x, shape) = self.pnet[2].forward(&x, shape);
        let cells = shape.h * shape.w;
        (
            shape.h,
            shape.w,
            split_heads(&self.pnet_out.forward(&x, cells)),
        )
    }

    /// R-net over `n` 24 x 24 crops (`n x 24 x 24 x 3`).
    pub fn rnet(&self, hwc: &[f32], n: usize) -> StageOut {
        let shape = Planes {
            images: n,
            h: 24,
            w: 24,
            channels: 3,
        };
        let (x, shape) = self.rnet[0].forward(hwc, shape);
        let (x, h, w) = max_pool_ceil(&x, shape, 3, 2);
        let (x, shape) = self.rnet[1].forward(&x, Planes { h, w, ..shape });
        let (x, h, w) = max_pool_ceil(&x, shape, 3, 2);
        let (x, _) = self.rnet[2].forward(&x, Planes { h, w, ..shape });
        let x = self.rnet_dense.forward(&x, n);
        split_heads(&self.rnet_out.forward(&x, n))
    }

    /// O-net over `n` 48 x 48 crops (`n x 48 x 48 x 3`).
    pub fn onet(&self, hwc: &[f32], n: usize) -> StageOut {
        let shape = Planes {
            images: n,
            h: 48,
            w: 48,
            channels: 3,
        };
        let (x, shape) = self.onet[0].forward(hwc, shape);
        let (x, h, w) = max_pool_ceil(&x, shape, 3, 2);
        let (x, shape) = self.onet[1].forward(&x, Planes { h, w, ..shape });
        let (x, h, w) = max_pool_ceil(&x, shape, 3, 2);
        let (x, shape) = self.onet[2].forward(&x, Planes { h, w, ..shape });
        let (x, h, w) = max_pool_ceil(&x, shape, 2, 2);
        let (x, _) = self.onet[3].forward(&x, Planes { h, w, ..shape });
        let x = self.onet_dense.forward(&x, n);
        split_heads(&self.onet_out.forward(&x, n))
    }
}
