//! [`Cascade`]: MTCNN's three networks on one device, behind one interface: the
//! CPU's NHWC kernels ([`NhwcNets`]) or candle tensor operations ([`Nets`]) on
//! other devices.

use std::collections::HashMap;

use candle_core::{Device, Tensor};

use super::nhwc_nets::NhwcNets;
use super::Nets;

/// One stage's answer per candidate (or per P-net cell): the face probability and
/// four box offsets (`x1, y1, x2, y2`, in box sizes).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct StageOut {
    pub prob: Vec<f32>,
    /// Four per candidate.
    pub reg: Vec<f32>,
}

/// The networks, on the CPU or on a device.
pub enum Cascade {
    Nhwc(Box<NhwcNets>),
    Tensor { nets: Nets, device: Device },
}

impl Cascade {
    /// Builds the networks from the checkpoint's tensors: on the CPU as NHWC
    /// kernels, on other devices as candle tensors.
    pub fn new(tensors: HashMap<String, Tensor>, device: &Device) -> candle_core::Result<Self> {
        if device.is_cpu() {
            Ok(Self::Nhwc(Box::new(NhwcNets::new(&tensors)?)))
        } else {
            Self::with_tensor_ops(tensors, device)
        }
    }

    /// The networks as candle tensor operations even on the CPU: the device path,
    /// for checking it where no GPU is.
    pub fn with_tensor_ops(
        tensors: HashMap<String, Tensor>,
        device: &Device,
    ) -> candle_core::Result<Self> {
        Ok(Self::Tensor {
            nets: Nets::new(tensors, device)?,
            device: device.clone(),
        })
    }

    /// The device the networks run on.
    pub fn device(&self) -> Device {
        match self {
            Self::Nhwc(_) => Device::Cpu,
            Self::Tensor { device, .. } => device.clone(),
        }
    }

    /// `n` normalised RGB images `n x h x w x 3` as a `(n, 3, h, w)` tensor.
    fn nchw(
        hwc: &[f32],
        n: usize,
        h: usize,
        w: usize,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        Tensor::from_slice(hwc, (n, h, w, 3), device)?
            .permute((0, 3, 1, 2))?
            .contiguous()
    }

    fn stage(reg: &Tensor, prob: &Tensor) -> candle_core::Result<StageOut> {
        Ok(StageOut {
            prob: prob.to_device(&Device::Cpu)?.flatten_all()?.to_vec1()?,
            reg: reg.to_device(&Device::Cpu)?.flatten_all()?.to_vec1()?,
        })
    }

    /// P-net over one normalised RGB image (`h x w x 3`): the output grid's
    /// `(height, width)` and per cell (row-major) the probability and offsets.
    pub fn pnet(
        &self,
        hwc: &[f32],
        h: usize,
        w: usize,
    ) -> candle_core::Result<(usize, usize, StageOut)> {
        match self {
            Self::Nhwc(nets) => Ok(nets.pnet(hwc, h, w)),
            Self::Tensor { nets, device } => {
                let (reg, prob) = nets.pnet(&Self::nchw(hwc, 1, h, w, device)?)?;
                let (_, _, ph, pw) = reg.dims4()?;
                let reg = reg.permute((0, 2, 3, 1))?.contiguous()?;
                Ok((ph, pw, Self::stage(&reg, &prob)?))
            }
        }
    }

    /// R-net over `n` normalised 24 x 24 crops (`n x 24 x 24 x 3`).
    pub fn rnet(&self, hwc: &[f32], n: usize) -> candle_core::Result<StageOut> {
        match self {
            Self::Nhwc(nets) => Ok(nets.rnet(hwc, n)),
            Self::Tensor { nets, device } => {
                let (reg, prob) = nets.rnet(&Self::nchw(hwc, n, 24, 24, device)?)?;
                Self::stage(&reg, &prob)
            }
        }
    }

    /// O-net over `n` normalised 48 x 48 crops (`n x 48 x 48 x 3`).
    pub fn onet(&self, hwc: &[f32], n: usize) -> candle_core::Result<StageOut> {
        match self {
            Self::Nhwc(nets) => Ok(nets.onet(hwc, n)),
            Self::Tensor { nets, device } => {
                let (reg, prob) = nets.onet(&Self::nchw(hwc, n, 48, 48, device)?)?;
                Self::stage(&reg, &prob)
            }
        }
    }
}
