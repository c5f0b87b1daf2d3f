//! The configuration types and their validation.

use std::path::{Path, PathBuf};

use regatta_common::{is_loopback, ByteSize};
use serde::{Deserialize, Serialize};

use crate::{ConfigError, RayConfig, Result};

/// The whole cluster file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// `[cluster]`: settings every process shares.
    pub cluster: SharedConfig,
    /// `[driver]`: where clients and workers reach the driver.
    pub driver: DriverConfig,
    /// `[worker]`: defaults for every worker.
    pub worker: WorkerConfig,
    /// `[ray]`: run the workers on an existing Ray cluster.
    pub ray: RayConfig,
    /// `[storage]`: how every process reaches object stores.
    pub storage: crate::StorageConfig,
    /// `[access]`: what jobs may read (the driver sends it to every worker).
    pub access: regatta_common::AccessPolicy,
    /// `[security]`: what a process demands of its connections.
    #[serde(default)]
    pub security: crate::SecurityConfig,
    /// `[models.<name>]`: models queries name, and where each process finds them.
    pub models: std::collections::BTreeMap<String, ModelConfig>,
}

/// `[models.<name>]`: one model a query may name.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Its directory (the Hugging Face layout, or CTranslate2's for Whisper),
    /// on every node that runs it.
    pub dir: PathBuf,
    /// What it is; read from its files when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<regatta_common::ModelKind>,
    /// Rows per model call; the kind's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// A transformer's dense layers on the CPU: `f32` (unset) or `int8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<regatta_common::Precision>,
}

/// `[cluster]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SharedConfig {
    /// `cluster.token`: the secret every client, worker and driver presents
    /// (`REGATTA_TOKEN` overrides it). Required when the driver binds beyond loopback.
    pub token: String,
    /// `cluster.tls_cert`: PEM certificate every driver and worker serves with.
    pub tls_cert: Option<PathBuf>,
    /// `cluster.tls_key`: its PEM private key.
    pub tls_key: Option<PathBuf>,
    /// `cluster.tls_ca`: PEM CA certificate every client trusts.
    pub tls_ca: Option<PathBuf>,
    /// `cluster.id`: the cluster's name; driver replicas of another id are refused.
    pub id: String,
}

impl Default for SharedConfig {
    fn default() -> Self {
        Self {
            token: String::new(),
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            id: "regatta".into(),
        }
    }
}

/// The PEM contents of the cluster's TLS files.
#[derive(Clone)]
pub struct TlsFiles {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    pub ca: Vec<u8>,
}

/// Where the dashboard listens unless `driver.dashboard_bind` says otherwise
/// (Ray's dashboard port, on loopback).
pub const DEFAULT_DASHBOARD_BIND: &str = "127.0.0.1:8265";

/// `[driver]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriverConfig {
    /// `driver.addresses`: every driver replica, `host:port` (`REGATTA_DRIVER`
    /// overrides it with one address).
    pub addresses: Vec<String>,
    /// `driver.bind`: address the driver listens on.
    pub bind: String,
    /// `driver.heartbeat_interval_ms`: how often workers report in.
    pub heartbeat_interval_ms: u64,
    /// `driver.worker_timeout_ms`: silence after which a worker is declared lost.
    pub worker_timeout_ms: u64,
    /// `driver.max_task_failures`: attempts a task may fail before its job fails.
    pub max_task_failures: u32,
    /// `driver.task_timeout_secs`: how long one task attempt may run before its
    /// worker ends it (a failed, retried attempt); 0: no limit.
    pub task_timeout_secs: u64,
    /// `driver.task_memory`: memory one task reserves on its worker, e.g. `64MiB`.
    pub task_memory: String,
    /// `driver.data_dir`: where replicated drivers keep their Raft log and
    /// snapshots (each under `node-N`); required with more than one address.
    pub data_dir: Option<PathBuf>,
    /// `driver.raft_heartbeat_ms`: the leader's heartbeat to its peers; a dead
    /// leader is replaced after 5 to 10 of them.
    pub raft_heartbeat_ms: u64,
    /// `driver.result_retention_secs`: how long a finished job's result rows
    /// stay on its workers for clients to read.
    pub result_retention_secs: u64,
    /// `driver.dashboard_bind`: where the web dashboard and the driver's
    /// Prometheus endpoint listen; empty turns them off.
    pub dashboard_bind: String,
    /// `driver.history_jobs`: finished jobs kept for listings and the dashboard.
    pub history_jobs: u32,
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            addresses: vec!["127.0.0.1:7700".into()],
            bind: "127.0.0.1:7700".into(),
            heartbeat_interval_ms: 500,
            worker_timeout_ms: 3000,
            max_task_failures: 4,
            task_timeout_secs: 0,
            task_memory: "64MiB".into(),
            data_dir: None,
            raft_heartbeat_ms: 100,
            result_retention_secs: 3600,
            dashboard_bind: DEFAULT_DASHBOARD_BIND.into(),
            history_jobs: 100,
        }
    }
}

/// `[worker]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// `worker.bind`: where the worker's shuffle (Arrow Flight) server listens;
    /// port 0 picks a free one.
    pub bind: String,
    /// `worker.cpus`: cores to use (0 = all).
    pub cpus: u32,
    /// `worker.memory_limit`: e.g. `4GiB`; operators that spill honour it.
    pub memory_limit: String,
    /// `worker.spill_dirs`: where shuffle and spill files go.
    pub spill_dirs: Vec<PathBuf>,
    /// `worker.gpus`: GPUs to offer actors; absent = what NVML finds. Declaring GPUs
    /// on a machine without any tests placement logic (the devices are fake).
    pub gpus: Option<u32>,
    /// `worker.driver_patience_secs`: how long a worker that lost its leading
    /// driver keeps looking for one (all replicas restarting) before it ends.
    pub driver_patience_secs: u64,
    /// `worker.metrics_bind`: where the worker's Prometheus endpoint listens
    /// (port 0 picks one); empty turns it off.
    pub metrics_bind: String,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:0".into(),
            cpus: 0,
            memory_limit: "4GiB".into(),
            spill_dirs: vec![std::env::temp_dir().join("regatta-spill")],
            gpus: None,
            driver_patience_secs: 60,
            metrics_bind: "127.0.0.1:0".into(),
        }
    }
}

impl ClusterConfig {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let mut cfg: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        cfg.apply_env()?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// The defaults with environment overrides, checked (no file given).
    pub fn from_env() -> Result<Self> {
        let mut cfg = Self::default();
        cfg.apply_env()?;
        cfg.validate("environment")?;
        Ok(cfg)
    }

    /// `REGATTA_TOKEN` and `REGATTA_DRIVER` replace the file's values;
    /// `REGATTA_ACCESS_*` add to its lists.
    fn apply_env(&mut self) -> Result<()> {
        // Under Ray the tokens come as files, not variables (see secret_var).
        if let Some(t) = regatta_common::secret_var("REGATTA_TOKEN") {
            self.cluster.token = t;
        }
        if let Ok(d) = std::env::var("REGATTA_DRIVER") {
            self.driver.addresses = vec![d];
        }
        if let Ok(a) = std::env::var("REGATTA_RAY_ADDRESS") {
            self.ray.address = a;
        }
        // Added to the file's lists: an operator (or a test harness) widens
        // what jobs may reach without rewriting the file.
        if let Ok(nets) = std::env::var("REGATTA_ACCESS_ALLOW_NETWORKS") {
            for n in nets.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                match n.parse() {
                    Ok(net) => self.access.allow_networks.push(net),
                    Err(_) => {
                        return Err(ConfigError::Invalid {
                            path: "environment".into(),
                            key: "REGATTA_ACCESS_ALLOW_NETWORKS".into(),
                            value: n.to_string(),
                            allowed: "comma-separated CIDR networks (10.1.0.0/16)".into(),
                        })
                    }
                }
            }
        }
        if let Ok(roots) = std::env::var("REGATTA_ACCESS_LOCAL_ROOTS") {
            let list = self.access.local_roots.get_or_insert_with(Vec::new);
            list.extend(std::env::split_paths(&roots).filter(|p| !p.as_os_str().is_empty()));
        }
        // Inside a Ray job Ray itself sets RAY_AUTH_TOKEN.
        if let Some(t) = regatta_common::secret_var("REGATTA_RAY_TOKEN")
            .or_else(|| std::env::var("RAY_AUTH_TOKEN").ok())
        {
            self.ray.token = t;
        }
        Ok(())
    }

    fn validate(&self, origin: &str) -> Result<()> {
        let invalid = |key: &str, value: &str, allowed: &str| ConfigError::Invalid {
            path: origin.to_string(),
            key: key.to_string(),
            value: value.to_string(),
            allowed: allowed.to_string(),
        };
        if self.driver.addresses.len() > 1 && self.driver.data_dir.is_none() {
            return Err(invalid(
                "driver.data_dir",
                "",
                "set a directory: replicated drivers keep their Raft log there",
            ));
        }
        if self.driver.result_retention_secs == 0 {
            return Err(invalid(
                "driver.result_retention_secs",
                "0",
                "an integer ≥ 1 (seconds)",
            ));
        }
        if let Some((key, value, allowed)) = self.storage.invalid() {
            return Err(invalid(&key, &value, allowed));
        }
        if let Some((key, problem)) = self.access.invalid() {
            return Err(invalid(key, &problem, "see docs/security.md"));
        }
        for (name, m) in &self.models {
            if m.dir.as_os_str().is_empty() {
                return Err(invalid(
                    &format!("models.{name}.dir"),
                    "",
                    "the model's directory",
                ));
            }
            if m.batch_size == Some(0) {
                return Err(invalid(
                    &format!("models.{name}.batch_size"),
                    "0",
                    "an integer ≥ 1",
                ));
            }
            let image_model = matches!(
                m.kind,
                Some(regatta_common::ModelKind::EfficientNet | regatta_common::ModelKind::Mtcnn)
            );
            if let (true, Some(p @ regatta_common::Precision::Int8)) = (image_model, m.precision) {
                return Err(invalid(
                    &format!("models.{name}.precision"),
                    p.as_str(),
                    "f32 (int8 is for embedding and whisper models)",
                ));
            }
        }
        if self.worker.driver_patience_secs == 0 {
            return Err(invalid(
                "worker.driver_patience_secs",
                "0",
                "an integer ≥ 1 (seconds)",
            ));
        }
        if self.driver.raft_heartbeat_ms == 0 {
            return Err(invalid("driver.raft_heartbeat_ms", "0", "an integer ≥ 1"));
        }
        if self.cluster.id.is_empty()
            || !self
                .cluster
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(invalid(
                "cluster.id",
                &self.cluster.id,
                "letters, digits, '-', '_' or '.'",
            ));
        }
        if self.driver.addresses.is_empty() {
            return Err(invalid(
                "driver.addresses",
                "[]",
                "list at least one host:port",
            ));
        }
        for a in self
            .driver
            .addresses
            .iter()
            .chain(std::iter::once(&self.driver.bind))
        {
            let ok = a
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !ok {
                return Err(invalid(
                    "driver.addresses",
                    a,
                    "use host:port with a port in 1..65535",
                ));
            }
        }
        for (key, address) in [
            ("driver.bind", &self.driver.bind),
            ("driver.dashboard_bind", &self.driver.dashboard_bind),
            ("worker.bind", &self.worker.bind),
            ("worker.metrics_bind", &self.worker.metrics_bind),
        ] {
            if self.cluster.token.is_empty() && !address.is_empty() && !is_loopback(address) {
                return Err(invalid(
                    "cluster.token",
                    "",
                    &format!("set a token: {key} = {address:?} is reachable beyond loopback"),
                ));
            }
        }
        if self.driver.history_jobs == 0 {
            return Err(invalid(
                "driver.history_jobs",
                "0",
                "keep at least 1 finished job",
            ));
        }
        if self.driver.worker_timeout_ms <= self.driver.heartbeat_interval_ms {
            return Err(invalid(
                "driver.worker_timeout_ms",
                &self.driver.worker_timeout_ms.to_string(),
                "must exceed driver.heartbeat_interval_ms",
            ));
        }
        if self.driver.heartbeat_interval_ms == 0 {
            return Err(invalid(
                "driver.heartbeat_interval_ms",
                "0",
                "must be at least 1",
            ));
        }
        if self.driver.max_task_failures == 0 {
            return Err(invalid(
                "driver.max_task_failures",
                "0",
                "must be at least 1",
            ));
        }
        ByteSize::parse(&self.driver.task_memory).map_err(|e| {
            invalid(
                "driver.task_memory",
                &self.driver.task_memory,
                &e.to_string(),
            )
        })?;
        if self
            .worker
            .bind
            .rsplit_once(':')
            .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
        {
            return Err(invalid(
                "worker.bind",
                &self.worker.bind,
                "use host:port (port 0 picks a free one)",
            ));
        }
        ByteSize::parse(&self.worker.memory_limit).map_err(|e| {
            invalid(
                "worker.memory_limit",
                &self.worker.memory_limit,
                &e.to_string(),
            )
        })?;
        let tls = [
            ("cluster.tls_cert", &self.cluster.tls_cert),
            ("cluster.tls_key", &self.cluster.tls_key),
            ("cluster.tls_ca", &self.cluster.tls_ca),
        ];
        let set = tls.iter().filter(|(_, v)| v.is_some()).count();
        if set != 0 && set != tls.len() {
            if let Some((key, _)) = tls.iter().find(|(_, v)| v.is_none()) {
                return Err(invalid(
                    key,
                    "",
                    "set all of cluster.tls_cert, tls_key and tls_ca, or none",
                ));
            }
        }
        self.ray.validate(&invalid)?;
        if self.worker.spill_dirs.is_empty() {
            return Err(invalid(
                "worker.spill_dirs",
                "[]",
                "list at least one directory",
            ));
        }
        Ok(())
    }

    /// The TLS files' contents, when the cluster uses TLS; an error names the key
    /// and file that cannot be read.
    pub fn tls(&self) -> Result<Option<TlsFiles>> {
        let (Some(cert), Some(key), Some(ca)) = (
            &self.cluster.tls_cert,
            &self.cluster.tls_key,
            &self.cluster.tls_ca,
        ) else {
            return Ok(None);
        };
        let read = |key: &str, path: &Path| {
            std::fs::read(path).map_err(|e| ConfigError::Invalid {
                path: "cluster file".into(),
                key: key.to_string(),
                value: path.display().to_string(),
                allowed: format!("a readable PEM file ({e})"),
            })
        };
        Ok(Some(TlsFiles {
            cert: read("cluster.tls_cert", cert)?,
            key: read("cluster.tls_key", key)?,
            ca: read("cluster.tls_ca", ca)?,
        }))
    }

    /// Memory one task reserves, in bytes.
    pub fn task_memory_bytes(&self) -> u64 {
        ByteSize::parse(&self.driver.task_memory)
            .map(|b| b.0)
            .unwrap_or(64 << 20)
    }

    /// The worker memory limit in bytes.
    pub fn memory_limit_bytes(&self) -> u64 {
        ByteSize::parse(&self.worker.memory_limit)
            .map(|b| b.0)
            .unwrap_or(4 << 30)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_file_parses_with_defaults_filled_in() {
        let c = ClusterConfig::parse("[worker]\nmemory_limit = \"256MiB\"\n", "c.toml").unwrap();
        assert_eq!(c.memory_limit_bytes(), 256 << 20);
        assert_eq!(c.driver.addresses, vec!["127.0.0.1:7700".to_string()]);
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = ClusterConfig::parse("[worker]\nmemroy_limit = \"1GiB\"\n", "c.toml").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("memroy_limit") && msg.contains("c.toml"),
            "{msg}"
        );
    }

    #[test]
    fn bad_values_name_key_value_and_what_is_allowed() {
        let e = ClusterConfig::parse("[worker]\nmemory_limit = \"lots\"\n", "c.toml").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("worker.memory_limit") && msg.contains("lots") && msg.contains("GiB"),
            "{msg}"
        );
        let e = ClusterConfig::parse("[driver]\naddresses = [\"nohost\"]\n", "c.toml").unwrap_err();
        assert!(e.to_string().contains("driver.addresses"), "{e}");
    }

    #[test]
    fn storage_parses_with_bucket_overrides_and_refuses_a_bad_endpoint() {
        let c = ClusterConfig::parse(
            "[storage]\nendpoint = \"http://127.0.0.1:9000\"\n\
             [storage.buckets.pub]\nanonymous = true\nregion = \"us-west-2\"\n",
            "c.toml",
        )
        .unwrap();
        assert_eq!(c.storage.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(c.storage.buckets["pub"].anonymous, Some(true));
        let e = ClusterConfig::parse(
            "[storage.buckets.b]\nendpoint = \"127.0.0.1:9000\"\n",
            "c.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("storage.buckets.b.endpoint") && e.contains("http://"),
            "{e}"
        );
        let e = ClusterConfig::parse("[storage]\nsecret = \"x\"\n", "c.toml").unwrap_err();
        assert!(e.to_string().contains("secret"), "{e}");
    }

    #[test]
    fn gpus_are_detected_unless_declared() {
        let c = ClusterConfig::parse("", "c.toml").unwrap();
        assert_eq!(c.worker.gpus, None);
        let c = ClusterConfig::parse("[worker]\ngpus = 2\n", "c.toml").unwrap();
        assert_eq!(c.worker.gpus, Some(2));
        let e = ClusterConfig::parse("[worker]\ngpus = -1\n", "c.toml").unwrap_err();
        assert!(e.to_string().contains("gpus"), "{e}");
    }

    #[test]
    fn the_ray_section_is_checked() {
        let c = ClusterConfig::parse(
            "[ray]\naddress = \"http://127.0.0.1:8265\"\nlaunch = \"job-per-node\"\nworker_gpus = 1\nworker_memory = \"1GiB\"\n",
            "c.toml",
        )
        .unwrap();
        assert_eq!(c.ray.worker_gpus, Some(1.0));
        assert_eq!(c.ray.worker_memory_bytes(), 1 << 30);
        for (text, key) in [
            ("[ray]\naddress = \"127.0.0.1:8265\"\n", "ray.address"),
            ("[ray]\nlaunch = \"actors\"\n", "ray.launch"),
            ("[ray]\nworker_cpus = 0\n", "ray.worker_cpus"),
            ("[ray]\nworker_gpus = -1\n", "ray.worker_gpus"),
            ("[ray]\nstartup_timeout_s = 0\n", "ray.startup_timeout_s"),
        ] {
            let e = ClusterConfig::parse(text, "c.toml").unwrap_err();
            assert!(e.to_string().contains(key), "{text}: {e}");
        }
    }
}
