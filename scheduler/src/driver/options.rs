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
    /// How long a task attempt may run before its worker ends it; None: no limit.
    pub task_timeout: Option<Duration>,
    /// Memory one task reserves on its worker, in bytes.
    pub task_memory: u64,
    /// How long a succeeded job's result rows stay on its workers.
    pub result_retention: Duration,
    /// TLS for the driver's services and its calls to workers.
    pub tls: Option<regatta_proto::ClusterTls>,
    /// `security.verify_worker_certs`: ask every connection for a certificate
    /// of the cluster's CA and register only workers whose certificate names
    /// the host they register (needs `tls`).
    pub verify_worker_certs: bool,
    /// Replicate the state through Raft with other drivers; `None` runs alone.
    pub replication: Option<ReplicationOptions>,
    /// Starts the workers (local processes, Ray); `None` when they are started
    /// by hand and dial in.
    pub launcher: Option<std::sync::Arc<dyn crate::launcher::WorkerLauncher>>,
    /// The host launched workers dial; empty takes the bound address's host.
    pub control_host: String,
    /// Finished jobs kept (`driver.history_jobs`).
    pub history_jobs: u32,
    /// Where the dashboard and `/metrics` listen; None: nowhere.
    pub dashboard: Option<DashboardBind>,
    /// What jobs may read (`[access]`): checked at planning, sent to every
    /// worker when it registers.
    pub access: regatta_common::AccessPolicy,
}

/// Where the dashboard listens.
#[derive(Debug, Clone)]
pub struct DashboardBind {
    pub address: String,
    /// Take a free port when this one is taken (true for the default address,
    /// so several drivers on one machine all start; false when set by hand).
    pub any_port_if_taken: bool,
}

/// How a driver replicates its state.
#[derive(Debug, Clone, Default)]
pub struct ReplicationOptions {
    /// This replica's Raft id.
    pub node_id: u64,
    /// The first members by id (their gRPC addresses), this one included; empty
    /// for a replica that waits to be added (`regatta drivers add`).
    pub members: std::collections::BTreeMap<u64, String>,
    /// The address others reach this replica at; empty takes its member address
    /// (or the bound one).
    pub advertise: String,
    /// Where its Raft log and snapshots live.
    pub data_dir: std::path::PathBuf,
    /// Replicas of another cluster are refused.
    pub cluster_id: String,
    /// Raft's heartbeat; a leader is replaced within about 5 to 10 of them.
    pub heartbeat: Duration,
    /// Cut links, for partition tests (the `link-cuts` feature only).
    #[cfg(feature = "link-cuts")]
    pub cuts: std::sync::Arc<crate::raft::LinkCuts>,
}

impl Default for DriverOptions {
    fn default() -> Self {
        Self {
            token: String::new(),
            heartbeat_interval: Duration::from_millis(500),
            worker_timeout: Duration::from_secs(3),
            max_task_failures: crate::DEFAULT_MAX_TASK_FAILURES,
            task_timeout: None,
            task_memory: 64 << 20,
            result_retention: Duration::from_secs(3600),
            tls: None,
            verify_worker_certs: false,
            replication: None,
            launcher: None,
            control_host: String::new(),
            access: regatta_common::AccessPolicy::cluster(),
            history_jobs: crate::DEFAULT_HISTORY_JOBS,
            dashboard: None,
        }
    }
}
