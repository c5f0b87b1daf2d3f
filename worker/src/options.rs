//! How a worker runs.

use std::path::PathBuf;
use std::time::Duration;

use regatta_proto::ClusterTls;

/// A worker's settings (the CLI fills them from the cluster file).
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The driver, `host:port`.
    pub driver: String,
    pub token: String,
    /// Where the shuffle (Arrow Flight) server listens; port 0 picks one.
    pub bind: String,
    /// Where the Prometheus endpoint listens (port 0 picks one); None: nowhere.
    pub metrics_bind: Option<String>,
    /// CPUs to offer; None detects.
    pub cpus: Option<u32>,
    /// GPUs to offer; None asks NVML.
    pub gpus: Option<u32>,
    /// Memory the spilling operators may use, in bytes; also what is offered.
    pub memory_limit: u64,
    /// Shuffle files go under the first; operators spill to all of them.
    pub spill_dirs: Vec<PathBuf>,
    /// How long to keep trying to reach the driver at start-up.
    pub connect_timeout: Duration,
    /// How long to keep looking for a leading driver after losing one.
    pub reconnect_timeout: Duration,
    /// TLS for the shuffle server and every call, when the cluster uses it.
    pub tls: Option<ClusterTls>,
    /// Where a launcher started this worker, e.g. `ray:<node id>`; empty when
    /// self-hosted. The driver's launcher counts its workers by it.
    pub node_label: String,
    /// End when the parent process ends (a launcher's host process, e.g. a Ray
    /// actor), so no worker outlives what started it.
    pub die_with_parent: bool,
    /// Where the models queries name are found (`[models]`, the user cache).
    pub models: regatta_actors::ModelStore,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            driver: "127.0.0.1:7700".into(),
            token: String::new(),
            bind: "127.0.0.1:0".into(),
            metrics_bind: Some("127.0.0.1:0".into()),
            cpus: None,
            gpus: None,
            memory_limit: 4 << 30,
            spill_dirs: vec![std::env::temp_dir().join("regatta-spill")],
            connect_timeout: Duration::from_secs(10),
            reconnect_timeout: Duration::from_secs(60),
            tls: None,
            node_label: String::new(),
            die_with_parent: false,
            models: regatta_actors::ModelStore::default(),
        }
    }
}
