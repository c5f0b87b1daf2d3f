//! [`ActorRuntime`]: a session's actor system, resources and model pools.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use regatta_common::Resources;
use regatta_engine::datafusion::error::DataFusionError;
use regatta_engine::functions::{ModelPool, ModelProvider};

use crate::minilm::{self, MiniLmFactory};
use crate::{ActorPool, ActorSystem, ModelFactory, NodeResources, PoolConfig, Result};

/// Owns one actix system and every pool a session made. Pools stay until the
/// runtime is dropped, so a model is loaded once per actor, not once per query.
#[derive(Debug)]
pub struct ActorRuntime {
    /// Started on first use: a session that never calls a model has no actor thread.
    system: Mutex<Option<Arc<ActorSystem>>>,
    resources: Arc<NodeResources>,
    pools: Mutex<HashMap<String, Arc<ActorPool>>>,
    minilm_dir: PathBuf,
}

impl ActorRuntime {
    /// A runtime leasing from `resources`; the built-in embedding model is read
    /// from [`minilm::default_dir`]. The actor system starts with the first pool.
    pub fn new(resources: Arc<NodeResources>) -> Arc<Self> {
        Self::with_model_dir(resources, minilm::default_dir())
    }

    /// Like [`new`](Self::new), reading all-MiniLM-L6-v2 from `minilm_dir`.
    pub fn with_model_dir(
        resources: Arc<NodeResources>,
        minilm_dir: impl Into<PathBuf>,
    ) -> Arc<Self> {
        Arc::new(Self {
            system: Mutex::default(),
            resources,
            pools: Mutex::default(),
            minilm_dir: minilm_dir.into(),
        })
    }

    fn system(&self) -> Result<Arc<ActorSystem>> {
        let mut system = self.system.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = system.as_ref() {
            return Ok(s.clone());
        }
        let started = Arc::new(ActorSystem::start()?);
        *system = Some(started.clone());
        Ok(started)
    }

    /// Models built (weights loaded) by every pool of this runtime, over its life.
    pub fn model_builds(&self) -> u64 {
        self.pools().values().map(|p| p.stats().builds).sum()
    }

    /// The GPU devices the latest actors of every pool hold.
    pub fn actor_devices(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .pools()
            .values()
            .flat_map(|p| p.actor_devices())
            .collect();
        all.sort();
        all
    }

    fn pools(&self) -> MutexGuard<'_, HashMap<String, Arc<ActorPool>>> {
        self.pools.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The node's resources the pools lease from.
    pub fn resources(&self) -> &Arc<NodeResources> {
        &self.resources
    }

    /// Makes a pool for `factory`'s model under `name`, replacing any pool of that
    /// name. Fails at once on a bad configuration or a request that can never fit.
    pub fn create_pool(
        &self,
        name: &str,
        factory: Arc<dyn ModelFactory>,
        config: PoolConfig,
    ) -> Result<Arc<ActorPool>> {
        let pool = ActorPool::new(
            name,
            factory,
            config,
            self.resources.clone(),
            self.system()?,
        )?;
        self.pools().insert(name.to_string(), pool.clone());
        Ok(pool)
    }

    /// The pool named `name`, if there is one.
    pub fn get_pool(&self, name: &str) -> Option<Arc<ActorPool>> {
        self.pools().get(name).cloned()
    }

    /// The pool configuration the built-in embedding model gets: one actor per GPU
    /// when the node has GPUs, else one CPU actor (candle already uses every core).
    pub fn minilm_pool_config(&self) -> PoolConfig {
        let gpus = self.resources.total().gpus.floor() as usize;
        // REGATTA_MINILM_BATCH_SIZE tunes rows per model call (benchmarks use it).
        let batch_size = std::env::var("REGATTA_MINILM_BATCH_SIZE")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or(64);
        // One actor per GPU from the start: each holds its own device.
        let mut config = PoolConfig {
            min_actors: gpus.max(1),
            max_actors: gpus.max(1),
            batch_size,
            ..PoolConfig::default()
        };
        if gpus > 0 {
            // A node may have fewer CPUs than GPUs: every GPU still gets its actor.
            let total = self.resources.total().cpus;
            config.resources = Resources {
                cpus: (total / gpus as f64).min(1.0),
                gpus: 1.0,
                memory: 0,
            };
        }
        config
    }

    /// The pool of the built-in embedding model, made on first use.
    pub fn minilm_pool(&self) -> Result<Arc<ActorPool>> {
        if let Some(p) = self.get_pool(minilm::NAME) {
            return Ok(p);
        }
        let factory = Arc::new(MiniLmFactory::new(self.minilm_dir.clone()));
        self.create_pool(minilm::NAME, factory, self.minilm_pool_config())
    }
}

impl ModelProvider for ActorRuntime {
    fn pool(&self, name: &str) -> std::result::Result<Option<Arc<dyn ModelPool>>, DataFusionError> {
        if let Some(p) = self.get_pool(name) {
            return Ok(Some(p));
        }
        if minilm::is_name(name) {
            let pool = self
                .minilm_pool()
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            return Ok(Some(pool));
        }
        Ok(None)
    }

    fn known(&self) -> Vec<String> {
        let mut names: Vec<String> = self.pools().keys().cloned().collect();
        names.push(minilm::NAME.to_string());
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedding_pool_puts_an_actor_on_every_gpu_even_with_fewer_cpus() {
        let runtime = ActorRuntime::new(NodeResources::new(1.0, 1 << 30, 2));
        let config = runtime.minilm_pool_config();
        assert_eq!((config.min_actors, config.max_actors), (2, 2));
        assert_eq!(config.resources.gpus, 1.0);
        // Two actors' CPU shares fit the node's one CPU.
        assert!(config.resources.cpus * 2.0 <= 1.0, "{config:?}");
        let cpu_only = ActorRuntime::new(NodeResources::new(4.0, 1 << 30, 0)).minilm_pool_config();
        assert_eq!((cpu_only.min_actors, cpu_only.max_actors), (1, 1));
        assert_eq!(cpu_only.resources.gpus, 0.0);
    }
}
