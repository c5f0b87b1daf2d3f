//! The model contract: built once per actor, then fed batches.

use std::fmt;

use arrow::array::ArrayRef;
use arrow::datatypes::DataType;

/// Errors a model reports: anything printable.
pub type ModelError = Box<dyn std::error::Error + Send + Sync>;

/// Identifies one actor of a pool, for logs and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorId(pub u64);

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What an actor is given when it builds its model.
#[derive(Debug, Clone, PartialEq)]
pub struct ActorContext {
    /// The model's name.
    pub model: String,
    /// This actor.
    pub actor: ActorId,
    /// GPU ordinals leased to this actor: distinct devices for whole-GPU requests,
    /// one shared device for fractional ones; empty on CPU.
    pub gpus: Vec<u32>,
    /// The physical ids of those GPUs, as `CUDA_VISIBLE_DEVICES` names them.
    pub gpu_ids: Vec<String>,
    /// CPUs leased to this actor.
    pub cpus: f64,
}

impl ActorContext {
    /// The value a CUDA child process of this actor should get as `CUDA_VISIBLE_DEVICES`.
    pub fn cuda_visible_devices(&self) -> String {
        self.gpu_ids.join(",")
    }
}

/// A loaded model: one instance per actor, called on one thread at a time.
pub trait Model: Send + 'static {
    /// Computes one output row per input row. `inputs` are the function's arguments,
    /// all of the same length (the pool's batch size, or fewer for the last batch).
    fn process(&mut self, inputs: &[ArrayRef]) -> std::result::Result<ArrayRef, ModelError>;
}

/// Builds a [`Model`] for each actor of a pool.
pub trait ModelFactory: Send + Sync + 'static {
    /// The type of the column [`Model::process`] returns.
    fn output_type(&self) -> DataType;
    /// Loads the model (weights, tokenizer...) for one actor. Runs on the actor's own
    /// thread, once per actor.
    fn build(&self, ctx: &ActorContext) -> std::result::Result<Box<dyn Model>, ModelError>;
}
