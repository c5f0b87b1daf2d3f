//! How one model's actor pool runs.

use std::time::Duration;

use regatta_common::Resources;
use regatta_engine::functions::OnError;

use crate::{ActorError, Result};

/// Size, resources and failure handling of one actor pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// Actors kept alive once the pool has been used.
    pub min_actors: usize,
    /// Most actors; the pool grows towards it while batches wait for an actor.
    pub max_actors: usize,
    /// Rows per model call.
    pub batch_size: usize,
    /// What each actor holds while alive.
    pub resources: Resources,
    /// Further attempts for a failed batch (on the same or a fresh actor).
    pub max_retries: u32,
    /// What a batch that fails every attempt becomes: an error, or null rows.
    pub on_error: OnError,
    /// An actor idle this long is stopped (while more than `min_actors` live).
    pub idle_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            min_actors: 1,
            max_actors: 1,
            batch_size: 32,
            resources: Resources {
                cpus: 1.0,
                gpus: 0.0,
                memory: 0,
            },
            max_retries: 2,
            on_error: OnError::Raise,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl PoolConfig {
    /// Checks the numbers; errors name the model and the field at fault.
    pub fn validate(&self, model: &str) -> Result<()> {
        let bad = |message: String| {
            Err(ActorError::PoolConfig {
                model: model.to_string(),
                message,
            })
        };
        if self.max_actors == 0 {
            return bad("max_actors must be at least 1".into());
        }
        if self.min_actors > self.max_actors {
            return bad(format!(
                "min_actors ({}) is above max_actors ({})",
                self.min_actors, self.max_actors
            ));
        }
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1".into());
        }
        if self.idle_timeout.is_zero() {
            return bad("idle_timeout must be above zero".into());
        }
        Ok(())
    }
}
