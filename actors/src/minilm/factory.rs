//! [`MiniLmFactory`]: builds one [`MiniLm`] per actor, on the actor's device.

use std::path::PathBuf;
#[cfg(not(feature = "cuda"))]
use std::sync::Once;

use arrow::datatypes::DataType;
use candle_core::Device;

use super::MiniLm;
use crate::model::{ActorContext, Model, ModelError, ModelFactory};

/// Loads all-MiniLM-L6-v2 from a directory, on the actor's GPU when it has one and
/// the build has the `cuda` feature, else on the CPU.
#[derive(Debug, Clone)]
pub struct MiniLmFactory {
    dir: PathBuf,
}

impl MiniLmFactory {
    /// A factory reading the model from `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

#[cfg(not(feature = "cuda"))]
static CPU_FALLBACK: Once = Once::new();

fn device_for(ctx: &ActorContext) -> std::result::Result<Device, ModelError> {
    match ctx.gpus.first() {
        #[cfg(feature = "cuda")]
        Some(&ordinal) => Ok(Device::new_cuda(ordinal as usize)?),
        #[cfg(not(feature = "cuda"))]
        Some(_) => {
            CPU_FALLBACK.call_once(|| {
                log::warn!("a GPU was leased, but regatta was built without the cuda feature: embedding on the CPU")
            });
            Ok(Device::Cpu)
        }
        None => Ok(Device::Cpu),
    }
}

impl ModelFactory for MiniLmFactory {
    fn output_type(&self) -> DataType {
        MiniLm::output_type()
    }

    fn build(&self, ctx: &ActorContext) -> std::result::Result<Box<dyn Model>, ModelError> {
        Ok(Box::new(MiniLm::load(&self.dir, device_for(ctx)?)?))
    }
}
