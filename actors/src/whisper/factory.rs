//! [`WhisperFactory`]: builds one [`Transcriber`] per actor, on the actor's device.

use std::path::PathBuf;

use arrow::datatypes::DataType;

use super::Transcriber;
use crate::device::device_for;
use crate::model::{ActorContext, Model, ModelError, ModelFactory};
use crate::transformer::{NetworkRoute, Precision};

/// Loads Whisper from a directory, on the actor's GPU when it has one and the
/// build has the `cuda` feature, else on the CPU.
#[derive(Debug, Clone)]
pub struct WhisperFactory {
    dir: PathBuf,
    precision: Precision,
}

impl WhisperFactory {
    /// A factory reading the model from `dir`, its dense layers at `precision`
    /// on the CPU.
    pub fn new(dir: impl Into<PathBuf>, precision: Precision) -> Self {
        Self {
            dir: dir.into(),
            precision,
        }
    }
}

impl WhisperFactory {
    /// [`Self::new`], the directory's files checked now (when a query naming
    /// the model is planned) rather than when an actor first loads them.
    pub fn open(dir: impl Into<PathBuf>, precision: Precision) -> crate::Result<Self> {
        let dir = dir.into();
        Transcriber::check_files(&dir)?;
        Ok(Self::new(dir, precision))
    }
}

impl ModelFactory for WhisperFactory {
    fn output_type(&self) -> DataType {
        DataType::Utf8
    }

    fn build(&self, ctx: &ActorContext) -> std::result::Result<Box<dyn Model>, ModelError> {
        let device = device_for(ctx)?;
        let route = NetworkRoute::for_device(&device, self.precision);
        Ok(Box::new(Transcriber::load_route(&self.dir, device, route)?))
    }
}
