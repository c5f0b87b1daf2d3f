//! The engine's view of a model served by a pool of actors.
//!
//! The engine sends batches and reads numbers; how actors are started, fed, retried
//! and placed on CPUs or GPUs is the `actors` crate's business (the engine knows
//! nothing of actix).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;

/// A model behind a pool of actors: batches in, one column out.
#[async_trait]
pub trait ModelPool: Send + Sync + fmt::Debug {
    /// The model's name, which is also its function name in SQL.
    fn name(&self) -> &str;
    /// The type of the column the model returns.
    fn output_type(&self) -> DataType;
    /// Rows the model wants per call.
    fn batch_size(&self) -> usize;
    /// The most actors the pool may run at once.
    fn max_actors(&self) -> usize;
    /// Runs the model over `rows` rows of `inputs`. Batches larger than
    /// [`batch_size`](Self::batch_size) are split; the output keeps row order.
    async fn infer(&self, inputs: Vec<ArrayRef>, rows: usize) -> Result<ArrayRef>;
    /// The pool's numbers so far.
    fn stats(&self) -> ModelPoolStats;
}

/// What a pool has done since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelPoolStats {
    /// Actors alive now (started, building or serving).
    pub actors: usize,
    /// The most actors alive at once.
    pub actors_peak: usize,
    /// Batches waiting for an actor now.
    pub queue_depth: usize,
    /// The most batches that waited at once.
    pub queue_depth_peak: usize,
    /// Times a model was built (weights loaded).
    pub builds: u64,
    /// Batches answered by a model (retries count once each).
    pub batches: u64,
    /// Batch attempts that failed (an error, a panic or a lost actor).
    pub failed_attempts: u64,
    /// Actors replaced after a panic or a crash.
    pub replaced_actors: u64,
    /// Nanoseconds actors spent inside the model, summed over actors.
    pub busy_nanos: u64,
}

/// Supplies pools for models the session did not register by hand (the built-in
/// embedding model, for one) the first time a query names them.
pub trait ModelProvider: Send + Sync + fmt::Debug {
    /// The pool serving `name`, made on first use; `Ok(None)` if the name is unknown.
    fn pool(&self, name: &str) -> Result<Option<Arc<dyn ModelPool>>>;
    /// Names this provider serves, for error messages.
    fn known(&self) -> Vec<String>;
    /// The name a node lists the model `name` under (`regatta models list`),
    /// so a cluster can check each worker has it; `None` for a model given by
    /// its path, which only a worker's own disk can answer for.
    fn listed_name(&self, name: &str) -> Option<String> {
        Some(name.to_string())
    }
}
