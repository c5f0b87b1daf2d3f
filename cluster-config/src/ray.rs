//! `[ray]`: running workers on an existing Ray cluster.

use regatta_common::ByteSize;
use serde::{Deserialize, Serialize};

use crate::{ConfigError, Result};

/// How workers are launched on Ray: one bootstrap job placing an actor per node,
/// or one job per node.
pub const RAY_LAUNCH_MODES: [&str; 2] = ["bootstrap", "job-per-node"];

/// `[ray]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RayConfig {
    /// `ray.address`: the Ray dashboard, `http://host:8265`; empty runs without Ray.
    pub address: String,
    /// `ray.token`: Ray's auth token (sent as `Authorization: Bearer`).
    pub token: String,
    /// `ray.launch`: `bootstrap` or `job-per-node`.
    pub launch: String,
    /// `ray.worker_cpus`: CPUs each worker reserves; unset takes all of its node's.
    pub worker_cpus: Option<f64>,
    /// `ray.worker_gpus`: GPUs each worker reserves; unset takes all of its node's.
    pub worker_gpus: Option<f64>,
    /// `ray.worker_memory`: memory each worker reserves, e.g. `8GiB`; empty reserves none.
    pub worker_memory: String,
    /// `ray.python`: the Python on the Ray nodes that has `ray` installed.
    pub python: String,
    /// `ray.startup_timeout_s`: how long the driver waits for its workers.
    pub startup_timeout_s: u64,
    /// `ray.control_host`: the host Ray nodes reach the driver at; empty takes the
    /// driver's bind host.
    pub control_host: String,
}

impl Default for RayConfig {
    fn default() -> Self {
        Self {
            address: String::new(),
            token: String::new(),
            launch: "bootstrap".into(),
            worker_cpus: None,
            worker_gpus: None,
            worker_memory: String::new(),
            python: "python".into(),
            startup_timeout_s: 60,
            control_host: String::new(),
        }
    }
}

impl RayConfig {
    /// Refuses a bad `[ray]` value, naming its key.
    pub(crate) fn validate(&self, invalid: &dyn Fn(&str, &str, &str) -> ConfigError) -> Result<()> {
        let ray = self;
        let http = ray.address.starts_with("http://") || ray.address.starts_with("https://");
        if !ray.address.is_empty() && !http {
            return Err(invalid(
                "ray.address",
                &ray.address,
                "the Ray dashboard's URL, e.g. http://127.0.0.1:8265",
            ));
        }
        if !RAY_LAUNCH_MODES.contains(&ray.launch.as_str()) {
            return Err(invalid(
                "ray.launch",
                &ray.launch,
                "bootstrap or job-per-node",
            ));
        }
        for (key, v) in [
            ("ray.worker_cpus", ray.worker_cpus),
            ("ray.worker_gpus", ray.worker_gpus),
        ] {
            if let Some(v) = v {
                if !v.is_finite() || v < 0.0 || (key == "ray.worker_cpus" && v == 0.0) {
                    return Err(invalid(
                        key,
                        &v.to_string(),
                        "a positive number (unset: all of the node's)",
                    ));
                }
            }
        }
        if !ray.worker_memory.is_empty() {
            ByteSize::parse(&ray.worker_memory)
                .map_err(|e| invalid("ray.worker_memory", &ray.worker_memory, &e.to_string()))?;
        }
        if ray.startup_timeout_s == 0 {
            return Err(invalid("ray.startup_timeout_s", "0", "must be at least 1"));
        }
        if ray.python.trim().is_empty() {
            return Err(invalid(
                "ray.python",
                "",
                "a Python executable, e.g. python3",
            ));
        }
        Ok(())
    }

    /// The memory each worker reserves, in bytes (0 = none).
    pub fn worker_memory_bytes(&self) -> u64 {
        ByteSize::parse(&self.worker_memory).map_or(0, |b| b.0)
    }
}
