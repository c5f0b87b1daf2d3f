//! [`WhisperFactory`]: builds one [`Transcriber`] per actor, on the actor's device.

use std::path::PathBuf;

use arrow::datatypes::DataType;

use super::Transcriber;
use crate::device::device_for;
use crate::model::{ActorContext, Model, ModelError, ModelFactory};

/// Loads Whisper from a directory, on the actor's GPU when it has one and the
/// build has the `cuda` feature, else on the CPU.
#[derive(Debug, Clone)]
pub struct WhisperFactory {
    dir: PathBuf,
}

impl WhisperFactory {
    /// A factory reading the model from `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

impl ModelFactory for WhisperFactory {
    fn output_type(&self) -> DataType {
        DataType::Utf8
    }

    fn build(&self, ctx: &ActorContext) -> std::result::Result<Box<dyn Model>, ModelError> {
        Ok(Box::new(Transcriber::load(&self.dir, device_for(ctx)?)?))
    }
}
