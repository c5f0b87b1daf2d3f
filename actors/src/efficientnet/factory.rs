//! [`EfficientNetFactory`]: builds one [`Classifier`] per actor, on the actor's device.

use std::path::PathBuf;

use arrow::datatypes::DataType;

use super::{Classifier, Output};
use crate::device::device_for;
use crate::model::{ActorContext, Model, ModelError, ModelFactory};

/// Loads EfficientNet-Lite0 from a directory, on the actor's GPU when it has one
/// and the build has the `cuda` feature, else on the CPU.
#[derive(Debug, Clone)]
pub struct EfficientNetFactory {
    dir: PathBuf,
    output: Output,
}

impl EfficientNetFactory {
    /// A factory reading the model from `dir`, its pools answering with `output`.
    pub fn new(dir: impl Into<PathBuf>, output: Output) -> Self {
        Self {
            dir: dir.into(),
            output,
        }
    }
}

impl ModelFactory for EfficientNetFactory {
    fn output_type(&self) -> DataType {
        Classifier::output_type(self.output)
    }

    fn build(&self, ctx: &ActorContext) -> std::result::Result<Box<dyn Model>, ModelError> {
        Ok(Box::new(Classifier::load(
            &self.dir,
            device_for(ctx)?,
            self.output,
        )?))
    }
}
