//! [`EfficientNetLite0`]: the network, with batch norm folded into its
//! convolutions, run by the NHWC kernels on the CPU and by candle's tensor
//! operations on other devices.

use std::collections::HashMap;

use candle_core::{Device, Tensor};

use super::nhwc_network::NhwcNetwork;
use super::tensor_network::TensorNetwork;
use super::weights::Weights;
use super::CLASSES;

#[derive(Debug)]
enum Path {
    Nhwc(NhwcNetwork),
    Tensor(TensorNetwork),
}

/// EfficientNet-Lite0: a 3x3 stem, 16 inverted-residual blocks (no squeeze-excite,
/// ReLU6), a 1x1 head to 1,280 channels, average pooling and a 1,000-way
/// classifier. Input: `(B, 3, H, W)`, pixels as `(x - 127) / 128`.
#[derive(Debug)]
pub struct EfficientNetLite0 {
    path: Path,
}

impl EfficientNetLite0 {
    /// Builds the network from the checkpoint's tensors (any device; they are read
    /// once on the CPU to fold the batch norms), placing it on `device`.
    pub fn new(tensors: HashMap<String, Tensor>, device: &Device) -> candle_core::Result<Self> {
        let w = Weights(tensors);
        let path = if device.is_cpu() {
            Path::Nhwc(NhwcNetwork::new(&w)?)
        } else {
            Path::Tensor(TensorNetwork::new(&w, device)?)
        };
        Ok(Self { path })
    }

    /// The network as candle tensor operations even on the CPU: the device path,
    /// for checking it where no GPU is.
    pub fn with_tensor_ops(
        tensors: HashMap<String, Tensor>,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let path = Path::Tensor(TensorNetwork::new(&Weights(tensors), device)?);
        Ok(Self { path })
    }

    /// Logits `(B, 1000)` of a batch `(B, 3, H, W)` of normalised images.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match &self.path {
            Path::Tensor(net) => net.forward(x),
            Path::Nhwc(net) => {
                let (b, c, h, w) = x.dims4()?;
                if c != 3 {
                    candle_core::bail!("EfficientNet-Lite0 takes 3 channels, got {c}");
                }
                let values: Vec<f32> = x.flatten_all()?.to_vec1()?;
                let logits = net.forward(&values, b, h, w);
                Tensor::from_vec(logits, (b, CLASSES), &Device::Cpu)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made-up tensors with a checkpoint's names, filled from a fixed sequence.
    struct Checkpoint {
        tensors: HashMap<String, Tensor>,
        state: u64,
    }

    impl Checkpoint {
        fn put(
            &mut self,
            name: String,
            dims: &[usize],
            lo: f32,
            hi: f32,
        ) -> candle_core::Result<()> {
            let n: usize = dims.iter().product();
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                self.state = self
                    .state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                v.push(lo + (hi - lo) * ((self.state >> 33) % 1000) as f32 / 1000.0);
            }
            self.tensors
                .insert(name, Tensor::from_vec(v, dims, &Device::Cpu)?);
            Ok(())
        }

        fn conv(&mut self, conv: &str, bn: &str, dims: &[usize]) -> candle_core::Result<()> {
            let fan_in: usize = dims[1..].iter().product();
            let r = 1.5 / (fan_in as f32).sqrt();
            self.put(format!("{conv}.weight"), dims, -r, r)?;
            let c = dims[0];
            self.put(format!("{bn}.weight"), &[c], 0.5, 1.5)?;
            self.put(format!("{bn}.bias"), &[c], -0.2, 0.3)?;
            self.put(format!("{bn}.running_mean"), &[c], -0.1, 0.1)?;
            self.put(format!("{bn}.running_var"), &[c], 0.5, 1.5)
        }
    }

    /// EfficientNet-Lite0's layout (16 blocks, its kernel sizes and strides) with
    /// few channels and made-up values.
    fn small_checkpoint() -> candle_core::Result<HashMap<String, Tensor>> {
        let mut ck = Checkpoint {
            tensors: HashMap::new(),
            state: 7,
        };
        let mut c = 8;
        ck.conv("_conv_stem", "_bn0", &[c, 3, 3, 3])?;
        // (expansion, kernel, outputs) per block, as Lite0 has them.
        let blocks = [
            (1, 3, 4),
            (6, 3, 6),
            (6, 3, 6),
            (6, 5, 8),
            (6, 5, 8),
            (6, 3, 10),
            (6, 3, 10),
            (6, 3, 10),
            (6, 5, 12),
            (6, 5, 12),
            (6, 5, 12),
            (6, 5, 14),
            (6, 5, 14),
            (6, 5, 14),
            (6, 5, 14),
            (6, 3, 16),
        ];
        for (b, (expansion, k, out)) in blocks.into_iter().enumerate() {
            let p = format!("_blocks.{b}.");
            let inner = c * expansion;
            if expansion != 1 {
                ck.conv(
                    &format!("{p}_expand_conv"),
                    &format!("{p}_bn0"),
                    &[inner, c, 1, 1],
                )?;
            }
            ck.conv(
                &format!("{p}_depthwise_conv"),
                &format!("{p}_bn1"),
                &[inner, 1, k, k],
            )?;
            ck.conv(
                &format!("{p}_project_conv"),
                &format!("{p}_bn2"),
                &[out, inner, 1, 1],
            )?;
            c = out;
        }
        ck.conv("_conv_head", "_bn1", &[24, c, 1, 1])?;
        ck.put("_fc.weight".into(), &[CLASSES, 24], -0.3, 0.3)?;
        ck.put("_fc.bias".into(), &[CLASSES], -0.1, 0.1)?;
        Ok(ck.tensors)
    }

    /// The CPU's NHWC kernels and the device path's tensor operations are the same
    /// network: equal logits on a batch that spans two of the CPU path's sub-batches.
    #[test]
    fn the_nhwc_path_and_the_tensor_path_give_the_same_logits() -> candle_core::Result<()> {
        let nhwc = EfficientNetLite0::new(small_checkpoint()?, &Device::Cpu)?;
        let tensor = EfficientNetLite0::with_tensor_ops(small_checkpoint()?, &Device::Cpu)?;
        assert!(matches!(nhwc.path, Path::Nhwc(_)) && matches!(tensor.path, Path::Tensor(_)));
        let (b, h, w) = (9, 45, 38);
        let x: Vec<f32> = (0..b * 3 * h * w)
            .map(|i| ((i * 7919 % 257) as f32 - 128.0) / 128.0)
            .collect();
        let x = Tensor::from_vec(x, (b, 3, h, w), &Device::Cpu)?;
        for round in 0..2 {
            let a: Vec<f32> = nhwc.forward(&x)?.flatten_all()?.to_vec1()?;
            let t: Vec<f32> = tensor.forward(&x)?.flatten_all()?.to_vec1()?;
            assert_eq!(a.len(), b * CLASSES);
            let spread = t.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(
                spread > 1e-2,
                "logits all near zero: the check would be empty"
            );
            for (i, (a, t)) in a.iter().zip(&t).enumerate() {
                assert!(
                    (a - t).abs() <= 1e-4 * spread.max(1.0),
                    "round {round}, image {}, class {}: {a} vs {t}",
                    i / CLASSES,
                    i % CLASSES
                );
            }
        }
        Ok(())
    }
}
