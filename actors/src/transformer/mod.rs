//! regatta's CPU kernels for transformer encoders (BERT-family sentence
//! embedders, Whisper's audio encoder), as EfficientNet and MTCNN have theirs
//! in [`crate::nhwc`]: the sequences of a batch packed one after another with
//! no padding, dense projections as gemm over row pieces with bias, GELU and
//! residual fused in, one fused attention kernel, and vectorised GELU, softmax
//! and layer norm. A model's network is written once over [`layers::Block`];
//! candle's tensor path stays for GPUs.

pub(crate) mod attention;
pub(crate) mod elementwise;
pub(crate) mod half_keys;
pub(crate) mod int8;
pub(crate) mod layers;

pub use elementwise::Gelu;
pub use regatta_common::Precision;

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

/// Which implementation of a transformer network runs (encoder and decoder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkRoute {
    /// regatta's CPU kernels (packed sequences, fused attention, a key/value
    /// cache) with dense layers at this precision: the CPU default.
    Kernels(Precision),
    /// candle's tensors: GPUs, and the reference the kernels are checked against.
    Candle,
}

impl NetworkRoute {
    /// The kernels at `precision` on a CPU, candle elsewhere (in f32: int8 is
    /// a CPU kernel, so a GPU actor runs the model in f32 and says so).
    pub fn for_device(device: &candle_core::Device, precision: Precision) -> Self {
        if device.is_cpu() {
            return Self::Kernels(precision);
        }
        if precision != Precision::F32 {
            log::warn!(
                "precision {precision} runs on the CPU kernels only; this GPU actor runs the model in f32"
            );
        }
        Self::Candle
    }

    /// The precision of the dense layers on this route.
    pub fn precision(self) -> Precision {
        match self {
            Self::Kernels(p) => p,
            Self::Candle => Precision::F32,
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
