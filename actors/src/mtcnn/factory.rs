//! [`MtcnnFactory`]: builds one [`FaceDetector`] per actor, on the actor's device.

use std::path::PathBuf;

use arrow::datatypes::DataType;

use super::{faces_type, FaceDetector};
use crate::device::device_for;
use crate::model::{ActorContext, Model, ModelError, ModelFactory};

/// Loads MTCNN from a directory, on the actor's GPU when it has one and the build
/// has the `cuda` feature, else on the CPU.
#[derive(Debug, Clone)]
pub struct MtcnnFactory {
    dir: PathBuf,
}

impl MtcnnFactory {
    /// A factory reading the model from `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

impl ModelFactory for MtcnnFactory {
    fn output_type(&self) -> DataType {
        faces_type()
    }

    fn build(&self, ctx: &ActorContext) -> std::result::Result<Box<dyn Model>, ModelError> {
        Ok(Box::new(FaceDetector::load(&self.dir, device_for(ctx)?)?))
    }
}
