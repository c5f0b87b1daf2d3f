//! [`EmbedderFactory`]: builds one [`SentenceEmbedder`] per actor, on the actor's device.

use std::path::PathBuf;

use arrow::datatypes::DataType;

use super::{EmbedderLayout, SentenceEmbedder};
use crate::device::device_for;
use crate::model::{ActorContext, Model, ModelError, ModelFactory};
use crate::transformer::{NetworkRoute, Precision};
use crate::Result;

/// Loads a sentence embedding model from a directory, on the actor's GPU when it
/// has one and the build has the `cuda` feature, else on the CPU.
#[derive(Debug, Clone)]
pub struct EmbedderFactory {
    dir: PathBuf,
    layout: EmbedderLayout,
    precision: Precision,
}

impl EmbedderFactory {
    /// A factory for the model in `dir`; its layout (width above all) is read
    /// now, so a query over a model that is not there fails when planned.
    pub fn open(dir: impl Into<PathBuf>, precision: Precision) -> Result<Self> {
        let dir = dir.into();
        let layout = EmbedderLayout::read(&dir)?;
        Ok(Self {
            dir,
            layout,
            precision,
        })
    }
}

impl ModelFactory for EmbedderFactory {
    fn output_type(&self) -> DataType {
        self.layout.output_type()
    }

    fn build(&self, ctx: &ActorContext) -> std::result::Result<Box<dyn Model>, ModelError> {
        let device = device_for(ctx)?;
        let route = NetworkRoute::for_device(&device, self.precision);
        Ok(Box::new(SentenceEmbedder::load_route(
            &self.dir, device, route,
        )?))
    }
}
