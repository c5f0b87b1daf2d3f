//! [`device_for`]: the candle device an actor's model runs on.

#[cfg(not(feature = "cuda"))]
use std::sync::Once;

use candle_core::Device;

use crate::model::{ActorContext, ModelError};

#[cfg(not(feature = "cuda"))]
static CPU_FALLBACK: Once = Once::new();

/// The actor's first leased GPU when the build has the `cuda` feature, else the
/// CPU (with one warning per process when a GPU was leased but cannot be used).
pub(crate) fn device_for(ctx: &ActorContext) -> std::result::Result<Device, ModelError> {
    match ctx.gpus.first() {
        #[cfg(feature = "cuda")]
        Some(&ordinal) => Ok(Device::new_cuda(ordinal as usize)?),
        #[cfg(not(feature = "cuda"))]
        Some(_) => {
            CPU_FALLBACK.call_once(|| {
                log::warn!(
                    "a GPU was leased, but regatta was built without the cuda feature: models run on the CPU"
                )
            });
            Ok(Device::Cpu)
        }
        None => Ok(Device::Cpu),
    }
}
