//! [`ActorRuntime`]: a session's actor system, resources and model pools.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use regatta_common::Resources;
use regatta_engine::datafusion::error::DataFusionError;
use regatta_engine::functions::{ModelPool, ModelProvider, LOGITS_POOL_SUFFIX};

use crate::efficientnet::{self, EfficientNetFactory, Output};
use crate::minilm::{self, MiniLmFactory};
use crate::mtcnn::{self, MtcnnFactory};
use crate::whisper::{self, WhisperFactory};
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
    whisper_dir: PathBuf,
    efficientnet_dir: PathBuf,
    mtcnn_dir: PathBuf,
}

/// A built-in model: its name and how its pool is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BuiltinModel {
    MiniLm,
    Whisper,
    EfficientNet(Output),
    Mtcnn,
}

impl BuiltinModel {
    /// The models a user names (the logits pool is reached through `image_logits`).
    const NAMED: [BuiltinModel; 3] = [
        Self::MiniLm,
        Self::Whisper,
        Self::EfficientNet(Output::Top1),
    ];

    /// The pool's name: the model's, with the engine's logits suffix for the
    /// pool answering `image_logits`.
    fn pool_name(self) -> String {
        match self {
            Self::MiniLm => minilm::NAME.to_string(),
            Self::Whisper => whisper::NAME.to_string(),
            Self::EfficientNet(Output::Top1) => efficientnet::NAME.to_string(),
            Self::EfficientNet(Output::Logits) => {
                format!("{}{LOGITS_POOL_SUFFIX}", efficientnet::NAME)
            }
            Self::Mtcnn => mtcnn::NAME.to_string(),
        }
    }

    fn find(name: &str) -> Option<Self> {
        if let Some(model) = name.strip_suffix(LOGITS_POOL_SUFFIX) {
            return efficientnet::is_name(model).then_some(Self::EfficientNet(Output::Logits));
        }
        if minilm::is_name(name) {
            Some(Self::MiniLm)
        } else if whisper::is_name(name) {
            Some(Self::Whisper)
        } else if efficientnet::is_name(name) {
            Some(Self::EfficientNet(Output::Top1))
        } else if mtcnn::is_name(name) {
            Some(Self::Mtcnn)
        } else {
            None
        }
    }

    /// Rows per model call, tunable by environment (benchmarks use it).
    fn batch_size(self) -> usize {
        let (var, default) = match self {
            Self::MiniLm => ("REGATTA_MINILM_BATCH_SIZE", 64),
            // A Whisper window is 30 s of audio: 8 windows keep an actor's memory
            // near 1 GiB on the CPU.
            Self::Whisper => ("REGATTA_WHISPER_BATCH_SIZE", 8),
            // About 5 MB of activations per 224x224 image at the widest layer.
            Self::EfficientNet(_) => ("REGATTA_EFFICIENTNET_BATCH_SIZE", 32),
            // Each image runs its own pyramid: batches only amortise the call.
            Self::Mtcnn => ("REGATTA_MTCNN_BATCH_SIZE", 8),
        };
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or(default)
    }
}

impl ActorRuntime {
    /// A runtime leasing from `resources`; the built-in models are read from
    /// [`minilm::default_dir`] and [`whisper::default_dir`]. The actor system
    /// starts with the first pool.
    pub fn new(resources: Arc<NodeResources>) -> Arc<Self> {
        Arc::new(Self {
            system: Mutex::default(),
            resources,
            pools: Mutex::default(),
            minilm_dir: minilm::default_dir(),
            whisper_dir: whisper::default_dir(),
            efficientnet_dir: efficientnet::default_dir(),
            mtcnn_dir: mtcnn::default_dir(),
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

    /// Every pool's numbers now, by pool name (sorted).
    pub fn pool_stats(&self) -> Vec<(String, regatta_engine::functions::ModelPoolStats)> {
        let mut all: Vec<_> = self
            .pools()
            .iter()
            .map(|(name, p)| (name.clone(), p.stats()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
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

    /// The pool configuration the built-in embedding model gets.
    pub fn minilm_pool_config(&self) -> PoolConfig {
        self.builtin_pool_config(BuiltinModel::MiniLm)
    }

    /// The pool configuration a built-in model gets: one actor per GPU when the
    /// node has GPUs, else one CPU actor (candle already uses every core).
    fn builtin_pool_config(&self, model: BuiltinModel) -> PoolConfig {
        let gpus = self.resources.total().gpus.floor() as usize;
        let batch_size = model.batch_size();
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
        self.builtin_pool(BuiltinModel::MiniLm)
    }

    /// The pool of the built-in speech model, made on first use.
    pub fn whisper_pool(&self) -> Result<Arc<ActorPool>> {
        self.builtin_pool(BuiltinModel::Whisper)
    }

    /// The pool of the built-in image classifier (`classify_image`), made on first use.
    pub fn efficientnet_pool(&self) -> Result<Arc<ActorPool>> {
        self.builtin_pool(BuiltinModel::EfficientNet(Output::Top1))
    }

    fn builtin_pool(&self, model: BuiltinModel) -> Result<Arc<ActorPool>> {
        let name = model.pool_name();
        if let Some(p) = self.get_pool(&name) {
            return Ok(p);
        }
        let factory: Arc<dyn ModelFactory> = match model {
            BuiltinModel::MiniLm => Arc::new(MiniLmFactory::new(self.minilm_dir.clone())),
            BuiltinModel::Whisper => Arc::new(WhisperFactory::new(self.whisper_dir.clone())),
            BuiltinModel::EfficientNet(output) => Arc::new(EfficientNetFactory::new(
                self.efficientnet_dir.clone(),
                output,
            )),
            BuiltinModel::Mtcnn => Arc::new(MtcnnFactory::new(self.mtcnn_dir.clone())),
        };
        self.create_pool(&name, factory, self.builtin_pool_config(model))
    }
}

impl ModelProvider for ActorRuntime {
    fn pool(&self, name: &str) -> std::result::Result<Option<Arc<dyn ModelPool>>, DataFusionError> {
        if let Some(p) = self.get_pool(name) {
            return Ok(Some(p));
        }
        match BuiltinModel::find(name) {
            Some(model) => {
                let pool = self
                    .builtin_pool(model)
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                Ok(Some(pool))
            }
            None => Ok(None),
        }
    }

    fn known(&self) -> Vec<String> {
        let mut names: Vec<String> = self.pools().keys().cloned().collect();
        names.extend(BuiltinModel::NAMED.iter().map(|m| m.pool_name()));
        names.retain(|n| !n.ends_with(LOGITS_POOL_SUFFIX));
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
