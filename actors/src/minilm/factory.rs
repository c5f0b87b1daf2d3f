//! [`MiniLmFactory`]: builds one [`MiniLm`] per actor, on the actor's device.

use std::path::PathBuf;

use arrow::datatypes::DataType;

use super::MiniLm;
use crate::device::device_for;
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

impl ModelFactory for MiniLmFactory {
    fn output_type(&self) -> DataType {
        MiniLm::output_type()
    }

    fn build(&self, ctx: &ActorContext) -> std::result::Result<Box<dyn Model>, ModelError> {
        Ok(Box::new(MiniLm::load(&self.dir, device_for(ctx)?)?))
    }
}
