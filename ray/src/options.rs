//! [`RayOptions`]: how the adapter launches workers, from the `[ray]` section.

use std::path::PathBuf;
use std::time::Duration;

use regatta_cluster_config::RayConfig;

/// How workers are started on Ray.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchMode {
    /// One job whose bootstrap places a worker actor on every node.
    Bootstrap,
    /// One job per node running the worker binary.
    JobPerNode,
}

/// The adapter's settings.
#[derive(Debug, Clone)]
pub struct RayOptions {
    /// The dashboard, `http://host:8265`.
    pub address: String,
    /// Ray's auth token; empty sends none.
    pub token: String,
    pub launch: LaunchMode,
    /// CPUs, GPUs and memory (bytes, 0 = none) each worker reserves; `None`
    /// takes all of its node's.
    pub worker_cpus: Option<f64>,
    pub worker_gpus: Option<f64>,
    pub worker_memory: u64,
    /// The Python with `ray` on the nodes.
    pub python: String,
    /// How long to wait for a worker on every node.
    pub startup_timeout: Duration,
    /// The regatta binary shipped to the nodes (this one, normally).
    pub binary: PathBuf,
    /// How often joins are looked for.
    pub poll_interval: Duration,
}

impl RayOptions {
    /// The options of `ray`, shipping `binary`.
    pub fn from_config(ray: &RayConfig, binary: PathBuf) -> Self {
        Self {
            address: ray.address.clone(),
            token: ray.token.clone(),
            launch: if ray.launch == "job-per-node" {
                LaunchMode::JobPerNode
            } else {
                LaunchMode::Bootstrap
            },
            worker_cpus: ray.worker_cpus,
            worker_gpus: ray.worker_gpus,
            worker_memory: ray.worker_memory_bytes(),
            python: ray.python.clone(),
            startup_timeout: Duration::from_secs(ray.startup_timeout_s),
            binary,
            poll_interval: Duration::from_secs(1),
        }
    }
}
