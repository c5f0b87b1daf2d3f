//! [`ActorRuntime`]: a session's actor system, resources and model pools.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use regatta_common::Resources;
use regatta_engine::datafusion::error::DataFusionError;
use regatta_engine::functions::{ModelPool, ModelProvider, LOGITS_POOL_SUFFIX};

use crate::efficientnet::{self, EfficientNetFactory, Output};
use crate::minilm::{self, EmbedderFactory};
use crate::model_store::{ModelKind, ModelStore, BUILTIN};
use crate::mtcnn::MtcnnFactory;
use crate::whisper::{self, WhisperFactory};
use crate::{ActorError, ActorPool, ActorSystem, ModelFactory, NodeResources, PoolConfig, Result};

/// Owns one actix system and every pool a session made. Pools stay until the
/// runtime is dropped, so a model is loaded once per actor, not once per query.
#[derive(Debug)]
pub struct ActorRuntime {
    /// Started on first use: a session that never calls a model has no actor thread.
    system: Mutex<Option<Arc<ActorSystem>>>,
    resources: Arc<NodeResources>,
    pools: Mutex<HashMap<String, Arc<ActorPool>>>,
    store: ModelStore,
}

/// What a model pool serves: the model's kind, and for the classifier which
/// of its outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Served {
    Embedding,
    Whisper,
    EfficientNet(Output),
    Mtcnn,
}

impl Served {
    fn of(kind: ModelKind, logits: bool) -> Self {
        match kind {
            ModelKind::Embedding => Self::Embedding,
            ModelKind::Whisper => Self::Whisper,
            ModelKind::EfficientNet if logits => Self::EfficientNet(Output::Logits),
            ModelKind::EfficientNet => Self::EfficientNet(Output::Top1),
            ModelKind::Mtcnn => Self::Mtcnn,
        }
    }

    /// Rows per model call, tunable by environment (benchmarks use it).
    fn batch_size(self) -> usize {
        let (var, default) = match self {
            Self::Embedding => ("REGATTA_MINILM_BATCH_SIZE", 64),
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
    /// A runtime leasing from `resources`, finding models in the default
    /// [`ModelStore`] (the user cache, the `REGATTA_*_DIR` variables, paths).
    /// The actor system starts with the first pool.
    pub fn new(resources: Arc<NodeResources>) -> Arc<Self> {
        Self::with_store(resources, ModelStore::default())
    }

    /// A runtime finding models in `store`.
    pub fn with_store(resources: Arc<NodeResources>, store: ModelStore) -> Arc<Self> {
        Arc::new(Self {
            system: Mutex::default(),
            resources,
            pools: Mutex::default(),
            store,
        })
    }

    /// Where this runtime finds models.
    pub fn store(&self) -> &ModelStore {
        &self.store
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
        self.model_pool_config(Served::Embedding, None)
    }

    /// The pool configuration a model gets: one actor per GPU when the node
    /// has GPUs, else one CPU actor (the kernels already use every core).
    fn model_pool_config(&self, served: Served, batch_size: Option<usize>) -> PoolConfig {
        let gpus = self.resources.total().gpus.floor() as usize;
        let batch_size = batch_size.unwrap_or_else(|| served.batch_size());
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
        self.model_pool(minilm::NAME)
    }

    /// The pool of the built-in speech model, made on first use.
    pub fn whisper_pool(&self) -> Result<Arc<ActorPool>> {
        self.model_pool(whisper::NAME)
    }

    /// The pool of the built-in image classifier (`classify_image`), made on first use.
    pub fn efficientnet_pool(&self) -> Result<Arc<ActorPool>> {
        self.model_pool(efficientnet::NAME)
    }

    /// The pool serving `name` (a model name, a path, or a classifier's name
    /// with the logits suffix), made on first use: the name resolves in the
    /// store, or the error says where it was looked for and how to fetch it.
    pub fn model_pool(&self, name: &str) -> Result<Arc<ActorPool>> {
        if let Some(p) = self.get_pool(name) {
            return Ok(p);
        }
        let (model, logits) = match name.strip_suffix(LOGITS_POOL_SUFFIX) {
            Some(m) => (m, true),
            None => (name, false),
        };
        let resolved = self.store.resolve(model)?;
        if logits && resolved.kind != ModelKind::EfficientNet {
            return Err(ActorError::ModelNotFound {
                model: model.to_string(),
                message: format!(
                    "is a {} model; image_logits needs an image classifier",
                    resolved.kind.as_str()
                ),
            });
        }
        let served = Served::of(resolved.kind, logits);
        let dir = resolved.dir.clone();
        let factory: Arc<dyn ModelFactory> = match served {
            Served::Embedding => Arc::new(EmbedderFactory::open(dir, resolved.precision)?),
            Served::Whisper => Arc::new(WhisperFactory::open(dir, resolved.precision)?),
            Served::EfficientNet(output) => Arc::new(EfficientNetFactory::new(dir, output)),
            Served::Mtcnn => Arc::new(MtcnnFactory::new(dir)),
        };
        self.create_pool(
            name,
            factory,
            self.model_pool_config(served, resolved.batch_size),
        )
    }
}

impl ModelProvider for ActorRuntime {
    fn pool(&self, name: &str) -> std::result::Result<Option<Arc<dyn ModelPool>>, DataFusionError> {
        match self.model_pool(name) {
            Ok(pool) => Ok(Some(pool)),
            // A model not found is the query's error: it names where the
            // model was looked for and how to get it.
            Err(e @ ActorError::ModelNotFound { .. }) | Err(e @ ActorError::ModelFiles { .. }) => {
                Err(DataFusionError::Plan(e.to_string()))
            }
            Err(e) => Err(DataFusionError::External(Box::new(e))),
        }
    }

    fn known(&self) -> Vec<String> {
        let mut names: Vec<String> = self.pools().keys().cloned().collect();
        names.extend(BUILTIN.iter().map(|m| m.name.to_string()));
        names.extend(self.store.entries().iter().map(|e| e.name.clone()));
        names.retain(|n| !n.ends_with(LOGITS_POOL_SUFFIX));
        names
    }

    fn listed_name(&self, name: &str) -> Option<String> {
        self.store
            .listed_name(name.strip_suffix(LOGITS_POOL_SUFFIX).unwrap_or(name))
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
