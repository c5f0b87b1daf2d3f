//! regatta's CPU kernels for transformer encoders (BERT-family sentence
//! embedders, Whisper's audio encoder), as EfficientNet and MTCNN have theirs
//! in [`crate::nhwc`]: the sequences of a batch packed one after another with
//! no padding, dense projections as gemm over row pieces with bias, GELU and
//! residual fused in, one fused attention kernel, and vectorised GELU, softmax
//! and layer norm. A model's network is written once over [`layers::Block`];
//! candle's tensor path stays for GPUs.

pub(crate) mod attention;
pub(crate) mod elementwise;
pub(crate) mod layers;
pub(crate) mod product;

pub use elementwise::Gelu;

/// Refuses a width that does not split into `heads` equal heads (the
/// attention kernels' one shape rule), naming the config's `width_name`.
pub(crate) fn check_heads(width_name: &str, d: usize, heads: usize) -> Result<(), String> {
    if heads == 0 || !d.is_multiple_of(heads) {
        return Err(format!(
            "{width_name} {d} does not split into {heads} attention heads"
        ));
    }
    Ok(())
}

/// Which implementation of a transformer network runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderRoute {
    /// regatta's CPU kernels (packed sequences, fused attention): the CPU default.
    Kernels,
    /// candle's tensors: GPUs, and the reference the kernels are checked against.
    Candle,
}

impl EncoderRoute {
    /// The kernels on a CPU, candle elsewhere.
    pub fn for_device(device: &candle_core::Device) -> Self {
        if device.is_cpu() {
            Self::Kernels
        } else {
            Self::Candle
        }
    }
}

/// A network's [`layers::Scratch`], kept from call to call so its buffers
/// (tens of MB for a long batch) are not mapped and faulted in again each
/// time. A model runs on one actor's thread, so the lock is never contended.
#[derive(Debug, Default)]
pub(crate) struct SharedScratch(std::sync::Mutex<layers::Scratch>);

impl SharedScratch {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, layers::Scratch> {
        // A panic mid-pass leaves only stale numbers, which the next pass overwrites.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
