//! [`NhwcNetwork`]: EfficientNet-Lite0's forward pass on the CPU, activations laid
//! out NHWC so every 1x1 convolution is one row-blocked matrix product over all
//! pixels of the batch, with bias, ReLU6 and the residual fused into its output,
//! and the depthwise convolutions run along contiguous channels.

use std::sync::Mutex;

use super::weights::{Folded, Weights};
use super::CLASSES;
use crate::nhwc::{
    conv, conv_weights, depthwise, pointwise, same_padding, Activation, ConvLayer, Padding, Planes,
};

/// Images pushed through the network together: enough rows for the late 7x7
/// layers' matrix products, few enough that the early layers' activations
/// (8 x 112 x 112 x 96 floats, 38 MB) stay modest.
const SUB_BATCH: usize = 8;

/// A 1x1 convolution: `weights_t` is `inputs x outputs`.
#[derive(Debug)]
struct Dense {
    weights_t: Vec<f32>,
    bias: Vec<f32>,
}

impl Dense {
    /// From PyTorch's `(out, in)` weights (a 1x1 convolution's `(out, in, 1, 1)`).
    fn new(values: &[f32], out: usize, inp: usize, bias: Vec<f32>) -> Self {
        Self {
            weights_t: conv_weights(values, out, inp, 1),
            bias,
        }
    }

    fn folded(f: Folded) -> Self {
        Self::new(&f.values, f.dims[0], f.dims[1], f.bias)
    }

    fn outputs(&self) -> usize {
        self.bias.len()
    }
}

#[derive(Debug)]
struct Block {
    expand: Option<Dense>,
    /// `(k * k) x channels`.
    dw_weights: Vec<f32>,
    dw_bias: Vec<f32>,
    k: usize,
    stride: usize,
    project: Dense,
    residual: bool,
}

/// The network's layers in the layouts the NHWC kernels read.
#[derive(Debug)]
pub(crate) struct NhwcNetwork {
    /// `(k * k * 3) x outputs`, rows ordered (tap row, tap column, channel).
    stem_weights: Vec<f32>,
    stem_bias: Vec<f32>,
    stem_k: usize,
    blocks: Vec<Block>,
    head: Dense,
    fc: Dense,
    /// Activation buffers kept between calls: reusing them spares the kernel
    /// clearing fresh pages for every layer of every batch.
    spare: Mutex<Vec<Vec<f32>>>,
}

/// Buffers for one forward pass, drawn from the network's spares.
struct Buffers(Vec<Vec<f32>>);

impl Buffers {
    /// A buffer of `len` values, contents unspecified: every kernel writes all of
    /// its output.
    fn take(&mut self, len: usize) -> Vec<f32> {
        let at = self.0.iter().position(|b| b.capacity() >= len);
        let mut buf = match at {
            Some(i) => self.0.swap_remove(i),
            None => Vec::with_capacity(len),
        };
        buf.resize(len, 0.0);
        buf
    }

    fn give(&mut self, buf: Vec<f32>) {
        self.0.push(buf);
    }
}

impl NhwcNetwork {
    pub fn new(w: &Weights) -> candle_core::Result<Self> {
        let s = w.folded("_conv_stem", "_bn0")?;
        let (outputs, inputs, k) = (s.dims[0], s.dims[1], s.dims[2]);
        if inputs != 3 || s.dims[3] != k {
            candle_core::bail!("_conv_stem.weight is {:?}, expected [_, 3, k, k]", s.dims);
        }
        let stem_weights = conv_weights(&s.values, outputs, 3, k);
        let mut blocks = Vec::new();
        let mut channels = outputs;
        for spec in w.blocks()? {
            let p = &spec.prefix;
            let expand = if spec.has_expand {
                Some(Dense::folded(
                    w.folded(&format!("{p}_expand_conv"), &format!("{p}_bn0"))?,
                ))
            } else {
                None
            };
            let dw = w.folded(&format!("{p}_depthwise_conv"), &format!("{p}_bn1"))?;
            let (c, dk) = (dw.dims[0], dw.dims[2]);
            let inner = expand.as_ref().map_or(channels, Dense::outputs);
            if dw.dims[1] != 1 || c != inner {
                candle_core::bail!(
                    "{p}_depthwise_conv.weight is {:?} after {inner} channels",
                    dw.dims
                );
            }
            // (c, 1, ki, kj) -> ((ki, kj), c): a convolution of one input channel.
            let dw_weights = conv_weights(&dw.values, c, 1, dk);
            let project =
                Dense::folded(w.folded(&format!("{p}_project_conv"), &format!("{p}_bn2"))?);
            let out = project.outputs();
            blocks.push(Block {
                expand,
                dw_weights,
                dw_bias: dw.bias,
                k: dk,
                stride: spec.stride,
                project,
                residual: spec.stride == 1 && out == channels,
            });
            channels = out;
        }
        let head = Dense::folded(w.folded("_conv_head", "_bn1")?);
        let fc_weight = w.get("_fc.weight")?;
        if fc_weight.dims() != [CLASSES, head.outputs()] {
            candle_core::bail!(
                "_fc.weight is {:?}, expected [{CLASSES}, {}]",
                fc_weight.dims(),
                head.outputs()
            );
        }
        let fc = Dense::new(
            &fc_weight.flatten_all()?.to_vec1::<f32>()?,
            CLASSES,
            head.outputs(),
            w.vec("_fc.bias")?,
        );
        Ok(Self {
            stem_weights,
            stem_bias: s.bias,
            stem_k: k,
            blocks,
            head,
            fc,
            spare: Mutex::new(Vec::new()),
        })
    }

    /// Logits, `CLASSES` per image, of `images` normalised images laid out
    /// `images x 3 x h x w`.
    pub fn forward(&self, x: &[f32], images: usize, h: usize, w: usize) -> Vec<f32> {
        let mut bufs = Buffers(std::mem::take(
            &mut *self.spare.lock().unwrap_or_else(|e| e.into_inner()),
        ));
        let mut logits = Vec::with_capacity(images * CLASSES);
        let per_image = 3 * h * w;
        for (i, chunk) in x.chunks(SUB_BATCH * per_image).enumerate() {
            let n = chunk.len() / per_image;
            let out = self.forward_batch(chunk, n, h, w, &mut bufs);
            debug_assert_eq!(out.len(), n * CLASSES, "sub-batch {i}");
            logits.extend_from_slice(&out);
            bufs.give(out);
        }
        *self.spare.lock().unwrap_or_else(|e| e.into_inner()) = bufs.0;
        logits
    }

    fn forward_batch(
        &self,
        x: &[f32],
        images: usize,
        h: usize,
        w: usize,
        bufs: &mut Buffers,
    ) -> Vec<f32> {
        let k = self.stem_k;
        let (_, _, mut h_now) = same_padding(h, k, 2);
        let (_, _, mut w_now) = same_padding(w, k, 2);
        let mut channels = self.stem_bias.len();
        // The preprocessing hands over NCHW; the kernels read NHWC.
        let plane = h * w;
        let mut nhwc = bufs.take(x.len());
        for (src, dst) in x
            .chunks_exact(3 * plane)
            .zip(nhwc.chunks_exact_mut(3 * plane))
        {
            for (i, px) in dst.chunks_exact_mut(3).enumerate() {
                px.copy_from_slice(&[src[i], src[plane + i], src[2 * plane + i]]);
            }
        }
        let mut cur = bufs.take(images * h_now * w_now * channels);
        let stem = ConvLayer {
            weights: &self.stem_weights,
            bias: &self.stem_bias,
            k,
            stride: 2,
            padding: Padding::Same,
        };
        let shape = Planes {
            images,
            h,
            w,
            channels: 3,
        };
        conv(&nhwc, shape, stem, Activation::Relu6, &mut cur);
        bufs.give(nhwc);
        for block in &self.blocks {
            let rows = images * h_now * w_now;
            let (expanded, inner) = match &block.expand {
                Some(e) => {
                    let mut out = bufs.take(rows * e.outputs());
                    pointwise(
                        &cur,
                        rows,
                        &e.weights_t,
                        &e.bias,
                        None,
                        Activation::Relu6,
                        &mut out,
                    );
                    (Some(out), e.outputs())
                }
                None => (None, channels),
            };
            let (_, _, oh) = same_padding(h_now, block.k, block.stride);
            let (_, _, ow) = same_padding(w_now, block.k, block.stride);
            let mut dw_out = bufs.take(images * oh * ow * inner);
            let shape = Planes {
                images,
                h: h_now,
                w: w_now,
                channels: inner,
            };
            depthwise(
                expanded.as_deref().unwrap_or(&cur),
                shape,
                &block.dw_weights,
                &block.dw_bias,
                block.k,
                block.stride,
                &mut dw_out,
            );
            if let Some(e) = expanded {
                bufs.give(e);
            }
            let out_rows = images * oh * ow;
            let outputs = block.project.outputs();
            let mut projected = bufs.take(out_rows * outputs);
            pointwise(
                &dw_out,
                out_rows,
                &block.project.weights_t,
                &block.project.bias,
                block.residual.then_some(&cur[..]),
                Activation::Linear,
                &mut projected,
            );
            bufs.give(dw_out);
            bufs.give(std::mem::replace(&mut cur, projected));
            (h_now, w_now, channels) = (oh, ow, outputs);
        }
        let pixels = h_now * w_now;
        let features = self.head.outputs();
        let mut head = bufs.take(images * pixels * features);
        pointwise(
            &cur,
            images * pixels,
            &self.head.weights_t,
            &self.head.bias,
            None,
            Activation::Relu6,
            &mut head,
        );
        bufs.give(cur);
        let mut pooled = vec![0f32; images * features];
        for (p, image) in pooled
            .chunks_exact_mut(features)
            .zip(head.chunks_exact(pixels * features))
        {
            for pixel in image.chunks_exact(features) {
                p.iter_mut().zip(pixel).for_each(|(p, v)| *p += v);
            }
            p.iter_mut().for_each(|v| *v /= pixels as f32);
        }
        bufs.give(head);
        let mut logits = bufs.take(images * CLASSES);
        pointwise(
            &pooled,
            images,
            &self.fc.weights_t,
            &self.fc.bias,
            None,
            Activation::Linear,
            &mut logits,
        );
        logits
    }
}
