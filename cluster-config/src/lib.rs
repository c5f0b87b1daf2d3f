//! The cluster file: one TOML document describing drivers, workers and their limits.
//!
//! Unknown keys and bad values are refused with the key named. The full set of keys
//! (TLS, Ray, environment overrides) grows with the cluster issue; these are the ones
//! the local engine and a single worker already use.

mod config;
mod error;

pub use config::{ClusterConfig, DriverConfig, SharedConfig, WorkerConfig};
pub use error::{ConfigError, Result};
