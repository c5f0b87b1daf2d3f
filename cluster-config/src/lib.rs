//! The cluster file: one TOML document describing drivers, workers and their limits.
//!
//! Unknown keys and bad values are refused with the key named. Every key is listed,
//! with its default, in `docs/config.md`, generated from [`reference`].

mod config;
mod error;
mod ray;
pub mod reference;
mod security;
mod storage;

pub use config::{
    ClusterConfig, DriverConfig, ModelConfig, SharedConfig, TlsFiles, WorkerConfig,
    DEFAULT_DASHBOARD_BIND,
};
pub use error::{ConfigError, Result};
pub use ray::{RayConfig, RAY_LAUNCH_MODES};
pub use security::SecurityConfig;
pub use storage::{BucketConfig, StorageConfig};
