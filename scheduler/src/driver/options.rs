//! How a driver runs.

use std::time::Duration;

/// The driver's settings (the CLI fills them from the cluster file).
#[derive(Debug, Clone)]
pub struct DriverOptions {
    /// The cluster token every client and worker must present.
    pub token: String,
    /// How often workers say they are alive.
    pub heartbeat_interval: Duration,
    /// Silence after which a worker is declared lost.
    pub worker_timeout: Duration,
    /// Attempts a task may fail by its own fault before its job fails.
    pub max_task_failures: u32,
    /// Memory one task reserves on its worker, in bytes.
    pub task_memory: u64,
    /// TLS for the driver's services and its calls to workers.
    pub tls: Option<regatta_proto::ClusterTls>,
}

impl Default for DriverOptions {
    fn default() -> Self {
        Self {
            token: String::new(),
            heartbeat_interval: Duration::from_millis(500),
            worker_timeout: Duration::from_secs(3),
            max_task_failures: crate::DEFAULT_MAX_TASK_FAILURES,
            task_memory: 64 << 20,
            tls: None,
        }
    }
}
