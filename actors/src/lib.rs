//! Model actors and the resources they run on.
//!
//! A model is built once per actor ([`ModelFactory::build`]) and then fed batches
//! ([`Model::process`]). Each actor is an actix actor on a thread of its own, so
//! blocking inference never stalls an async runtime. An [`ActorPool`] keeps
//! `min..max` actors of one model: it grows while batches wait, shrinks when actors
//! idle, retries failed batches and replaces actors whose model panicked. Actors
//! lease CPUs, memory and GPUs from the node's [`NodeResources`]: GPU requests get
//! distinct devices, fractional ones share a device, and a request that can never fit
//! fails at once. [`ActorRuntime`] ties these to a session and serves the built-in
//! models ([`minilm`], [`whisper`], ...) to the engine, found by name or path in
//! a [`ModelStore`].

mod actor_pool;
mod actor_system;
mod column_pieces;
mod device;
pub mod efficientnet;
mod error;
mod gpu_probe;
mod ledger;
pub mod minilm;
mod model;
mod model_actor;
mod model_files;
pub mod model_pull;
pub mod model_store;
pub mod mtcnn;
mod nhwc;
mod node_resources;
mod pool_config;
mod product;
mod runtime;
mod transformer;
mod weights_file;
pub mod whisper;

pub use actor_pool::ActorPool;
pub use actor_system::ActorSystem;
pub use error::{ActorError, Result};
pub use gpu_probe::nvml_gpu_count;
pub use ledger::{Lease, ResourceLedger};
pub use model::{ActorContext, ActorId, Model, ModelError, ModelFactory};
pub use model_store::{ModelEntry, ModelKind, ModelStore, ResolvedModel};
pub use node_resources::{NodeResources, ResourceOverrides};
pub use pool_config::PoolConfig;
pub use runtime::ActorRuntime;
pub use transformer::{NetworkRoute, Precision};
