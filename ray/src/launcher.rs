//! [`RayLauncher`]: regatta's workers on an existing Ray cluster. Ray places and
//! starts them (one per node, resources reserved through Ray); they dial the
//! driver and from then on are ordinary workers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use regatta_scheduler::launcher::{LaunchContext, WorkerLauncher};
use serde_json::{json, Value};

use crate::client::{RayClient, RayNode};
use crate::options::{LaunchMode, RayOptions};
use crate::package::{ensure_package, WorkerPackage, BOOTSTRAP_NAME};
use crate::secret_package::{runtime_env, SecretPackage};
use crate::{RayError, Result};

/// Variables of the driver's environment its workers get too.
const FORWARDED_ENV: [&str; 3] = [
    "REGATTA_MINILM_DIR",
    "REGATTA_MINILM_BATCH_SIZE",
    "RUST_LOG",
];

/// The key of the bootstrap job in the job map (other keys are node ids).
const BOOTSTRAP_KEY: &str = "bootstrap";

/// What every job of a launcher runs with: the binary and the secrets.
#[derive(Debug, Clone)]
struct JobPackages {
    binary: WorkerPackage,
    secrets: SecretPackage,
}

impl JobPackages {
    async fn upload(client: &RayClient, binary: &std::path::Path, token: &str) -> Result<Self> {
        let binary = ensure_package(client, binary).await?;
        let secrets = BTreeMap::from([("REGATTA_TOKEN".to_string(), token.to_string())]);
        let secrets = SecretPackage::upload(client, &secrets).await?;
        Ok(Self { binary, secrets })
    }

    fn runtime_env(&self, env: serde_json::Map<String, Value>) -> Value {
        runtime_env(&self.binary, &self.secrets, env)
    }
}

/// Launches and stops regatta workers on a Ray cluster.
pub struct RayLauncher {
    inner: Arc<Inner>,
    /// Follows joins and the jobs' health; aborted on stop and on drop.
    watcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

struct Inner {
    client: RayClient,
    options: RayOptions,
    /// Names this driver's jobs: `regatta-<session>-...`.
    session: String,
    /// Our Ray jobs by node id (or [`BOOTSTRAP_KEY`]).
    jobs: Mutex<BTreeMap<String, String>>,
    /// The server rejected `entrypoint_label_selector` (Ray before it existed).
    pin_by_ip: AtomicBool,
}

impl fmt::Debug for RayLauncher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RayLauncher")
            .field("address", &self.inner.options.address)
            .field("launch", &self.inner.options.launch)
            .finish_non_exhaustive()
    }
}

impl Drop for RayLauncher {
    fn drop(&mut self) {
        if let Some(w) = lock(&self.watcher).take() {
            w.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Quotes `s` for the shell Ray runs entrypoints with.
pub(crate) fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

impl RayLauncher {
    pub fn new(options: RayOptions) -> Result<Self> {
        let client = RayClient::new(&options.address, &options.token)?;
        let millis = regatta_common::unix_ms_now();
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                options,
                session: format!("{}-{millis}", std::process::id()),
                jobs: Mutex::new(BTreeMap::new()),
                pin_by_ip: AtomicBool::new(false),
            }),
            watcher: Mutex::new(None),
        })
    }
}

impl Inner {
    /// What a worker on `node` reserves: (CPUs, GPUs, memory bytes).
    fn request(&self, node: &RayNode) -> (f64, f64, u64) {
        let o = &self.options;
        (
            o.worker_cpus.unwrap_or_else(|| node.total("CPU")),
            o.worker_gpus.unwrap_or_else(|| node.total("GPU")),
            o.worker_memory,
        )
    }

    fn fits(&self, node: &RayNode) -> bool {
        let (cpus, gpus, memory) = self.request(node);
        cpus <= node.total("CPU")
            && gpus <= node.total("GPU")
            && memory as f64 <= node.total("memory")
    }

    fn describe_request(&self) -> String {
        let o = &self.options;
        let all = |v: Option<f64>| v.map_or("all of the node's".to_string(), |v| v.to_string());
        format!(
            "CPU {}, GPU {}, memory {}",
            all(o.worker_cpus),
            all(o.worker_gpus),
            if o.worker_memory == 0 {
                "none".to_string()
            } else {
                format!("{} bytes", o.worker_memory)
            }
        )
    }

    /// The alive nodes that can hold a worker. A request that no node could ever
    /// hold fails at once: Ray would keep it pending forever.
    async fn eligible_nodes(&self) -> Result<Vec<RayNode>> {
        let nodes = self.client.nodes().await?;
        let alive: Vec<RayNode> = nodes
            .into_iter()
            .filter(|n| n.alive() && n.total("CPU") > 0.0)
            .collect();
        let (fit, unfit): (Vec<RayNode>, Vec<RayNode>) =
            alive.iter().cloned().partition(|n| self.fits(n));
        if fit.is_empty() {
            let listed: Vec<String> = alive
                .iter()
                .map(|n| {
                    format!(
                        "{} (CPU {}, GPU {}, memory {})",
                        n.short_id(),
                        n.total("CPU"),
                        n.total("GPU"),
                        n.total("memory") as u64
                    )
                })
                .collect();
            return Err(RayError::Infeasible(format!(
                "no Ray node at {} can ever hold a worker reserving {} (ray.worker_cpus, \
                 ray.worker_gpus, ray.worker_memory); its nodes: {}",
                self.client.address(),
                self.describe_request(),
                if listed.is_empty() {
                    "none alive with CPUs".to_string()
                } else {
                    listed.join(", ")
                }
            )));
        }
        for n in &unfit {
            log::warn!(
                "Ray node {} cannot hold a worker reserving {}; it gets none",
                n.short_id(),
                self.describe_request()
            );
        }
        Ok(fit)
    }

    /// What every worker is started with, before its node's own flags.
    fn worker_args(&self, ctx: &LaunchContext) -> Vec<String> {
        let mut args = vec![
            "worker".to_string(),
            "--driver".into(),
            ctx.control_address.clone(),
            "--die-with-parent".into(),
        ];
        if self.options.worker_memory > 0 {
            args.push("--memory-limit".into());
            args.push(format!("{}B", self.options.worker_memory));
        }
        args
    }

    /// The environment every worker gets: the driver's own settings that
    /// workers must share (where the models are, log levels). The token is in
    /// the secrets package.
    fn worker_env(&self) -> serde_json::Map<String, Value> {
        let mut env = serde_json::Map::new();
        for name in FORWARDED_ENV {
            if let Ok(v) = std::env::var(name) {
                env.insert(name.to_string(), json!(v));
            }
        }
        env
    }

    fn job_id(&self, what: &str) -> String {
        format!("regatta-{}-{what}", self.session)
    }

    fn metadata(&self, role: &str) -> Value {
        json!({"regatta": role, "regatta_session": self.session})
    }

    /// Launch mode `bootstrap`: one job placing an actor per node.
    async fn submit_bootstrap(&self, ctx: &LaunchContext, package: &JobPackages) -> Result<()> {
        let config = json!({
            "control_addr": ctx.control_address,
            "worker_args": self.worker_args(ctx),
            "cpus": self.options.worker_cpus,
            "gpus": self.options.worker_gpus,
            "memory": self.options.worker_memory,
            "session": self.session,
            "poll_s": self.options.poll_interval.as_secs_f64(),
            "driver_grace_s": 10,
            "retry_s": 5,
        });
        let id = self.job_id(BOOTSTRAP_KEY);
        let mut env = self.worker_env();
        env.insert("REGATTA_RAY_CONFIG".into(), json!(config.to_string()));
        let request = json!({
            "entrypoint": format!("{} {BOOTSTRAP_NAME}", shell_quote(&self.options.python)),
            "submission_id": id,
            "entrypoint_num_cpus": 0,
            "runtime_env": package.runtime_env(env),
            "metadata": self.metadata("bootstrap"),
        });
        let id = self.client.submit(&request).await?;
        log::info!("submitted Ray job {id} (bootstrap)");
        lock(&self.jobs).insert(BOOTSTRAP_KEY.into(), id);
        Ok(())
    }

    /// Launch mode `job-per-node`: a job running the worker on `node`, pinned
    /// there by its node id (or, on a Ray without label selectors, its IP).
    async fn submit_worker_job(
        &self,
        ctx: &LaunchContext,
        package: &JobPackages,
        node: &RayNode,
        attempt: u32,
    ) -> Result<()> {
        let (cpus, gpus, memory) = self.request(node);
        let spill = std::env::temp_dir()
            .join("regatta-ray-spill")
            .join(&self.session)
            .join(node.short_id());
        let mut argv = self.worker_args(ctx);
        argv.extend([
            "--cpus".to_string(),
            (cpus as u32).max(1).to_string(),
            "--gpus".into(),
            (gpus.floor() as u32).to_string(),
            "--node-label".into(),
            format!("ray:{}", node.node_id),
            "--bind".into(),
            format!("{}:0", node.node_ip),
            "--spill-dir".into(),
            spill.display().to_string(),
        ]);
        let entrypoint = format!(
            "exec ./regatta {}",
            argv.iter()
                .map(|a| shell_quote(a))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let id = self.job_id(&format!("node-{}-{attempt}", node.short_id()));
        let mut env = self.worker_env();
        // Without it a worker holding no GPU would see them all.
        env.insert("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO".into(), json!("1"));
        let mut request = json!({
            "entrypoint": entrypoint,
            "submission_id": id,
            "entrypoint_num_cpus": cpus,
            "entrypoint_num_gpus": gpus,
            "runtime_env": package.runtime_env(env),
            "metadata": self.metadata("worker"),
        });
        if memory > 0 {
            request["entrypoint_memory"] = json!(memory);
        }
        let by_label = |mut r: Value| {
            r["entrypoint_label_selector"] = json!({"ray.io/node-id": node.node_id});
            r
        };
        let by_ip = |mut r: Value| {
            r["entrypoint_resources"] = json!({format!("node:{}", node.node_ip): 0.001});
            r
        };
        let submitted = if self.pin_by_ip.load(Ordering::Relaxed) {
            self.client.submit(&by_ip(request)).await?
        } else {
            match self.client.submit(&by_label(request.clone())).await {
                Ok(id) => id,
                Err(RayError::Rejected {
                    status: 400, body, ..
                }) if body.contains("entrypoint_label_selector") => {
                    log::warn!(
                        "Ray at {} does not know entrypoint_label_selector ({body}); \
                         pinning workers by node IP instead",
                        self.client.address()
                    );
                    self.pin_by_ip.store(true, Ordering::Relaxed);
                    self.client.submit(&by_ip(request)).await?
                }
                Err(e) => return Err(e),
            }
        };
        log::info!(
            "submitted Ray job {submitted} (worker on node {})",
            node.short_id()
        );
        lock(&self.jobs).insert(node.node_id.clone(), submitted);
        Ok(())
    }

    /// Waits until every label has a live worker. A job that ends first, or the
    /// timeout, fails naming the nodes still missing and what Ray says.
    async fn await_workers(&self, ctx: &LaunchContext, labels: &BTreeSet<String>) -> Result<()> {
        let timeout = self.options.startup_timeout;
        let deadline = Instant::now() + timeout;
        let mut labels = labels.clone();
        loop {
            // A node that died since (Ray lists a lost node as alive for a
            // while) is not waited for.
            if let Ok(nodes) = self.client.nodes().await {
                let alive: BTreeSet<String> = nodes
                    .iter()
                    .filter(|n| n.alive())
                    .map(|n| format!("ray:{}", n.node_id))
                    .collect();
                labels.retain(|l| alive.contains(l));
            }
            let missing = match ctx.wait_for(&labels, Duration::from_millis(500)).await {
                Ok(()) => return Ok(()),
                Err(missing) => missing,
            };
            let jobs: Vec<String> = lock(&self.jobs).values().cloned().collect();
            for id in &jobs {
                if let Some(job) = self.client.job(id).await? {
                    if job.ended() {
                        return Err(RayError::JobEnded {
                            job: id.clone(),
                            status: job.status,
                            message: format!(
                                "{}; its log ends: {}",
                                job.message.unwrap_or_default(),
                                self.log_tail(id).await
                            ),
                        });
                    }
                }
            }
            if Instant::now() >= deadline {
                let mut states = Vec::new();
                for id in &jobs {
                    let status = match self.client.job(id).await {
                        Ok(Some(j)) => j.status,
                        Ok(None) => "unknown".into(),
                        Err(e) => e.to_string(),
                    };
                    states.push(format!("{id} {status}"));
                }
                return Err(RayError::Launch(format!(
                    "no worker registered from Ray node(s) {} within {timeout:?} \
                     (ray.startup_timeout_s); Ray jobs: {}; last log lines: {}. Is the \
                     driver's address {} reachable from the nodes (ray.control_host), and \
                     are the resources free?",
                    missing
                        .iter()
                        .map(|l| l
                            .trim_start_matches("ray:")
                            .chars()
                            .take(12)
                            .collect::<String>())
                        .collect::<Vec<_>>()
                        .join(", "),
                    states.join(", "),
                    match jobs.first() {
                        Some(id) => self.log_tail(id).await,
                        None => String::new(),
                    },
                    ctx.control_address
                )));
            }
        }
    }

    /// The last lines of a job's log, for errors.
    async fn log_tail(&self, id: &str) -> String {
        match self.client.logs(id).await {
            Ok(text) => {
                let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
                lines[lines.len().saturating_sub(6)..].join(" | ")
            }
            Err(e) => format!("(no log: {e})"),
        }
    }

    /// Follows the cluster after start: in `job-per-node` mode, new nodes get a
    /// worker job and ended ones a new one; in `bootstrap` mode (which follows
    /// joins itself) an ended bootstrap is reported.
    async fn watch(self: Arc<Self>, ctx: LaunchContext, package: JobPackages) {
        let mut attempts: BTreeMap<String, u32> = BTreeMap::new();
        loop {
            tokio::time::sleep(self.options.poll_interval).await;
            let result = match self.options.launch {
                LaunchMode::Bootstrap => self.check_bootstrap().await,
                LaunchMode::JobPerNode => self.follow_nodes(&ctx, &package, &mut attempts).await,
            };
            if let Err(e) = result {
                log::warn!("following the Ray cluster: {e}");
            }
        }
    }

    async fn check_bootstrap(&self) -> Result<()> {
        let Some(id) = lock(&self.jobs).get(BOOTSTRAP_KEY).cloned() else {
            return Ok(());
        };
        match self.client.job(&id).await? {
            Some(j) if !j.ended() => Ok(()),
            other => {
                let why = other.map_or("is gone".to_string(), |j| {
                    format!("{}: {}", j.status, j.message.unwrap_or_default())
                });
                lock(&self.jobs).remove(BOOTSTRAP_KEY);
                Err(RayError::Launch(format!(
                    "the Ray bootstrap job {id} ended ({why}); nodes that join get no worker"
                )))
            }
        }
    }

    async fn follow_nodes(
        &self,
        ctx: &LaunchContext,
        package: &JobPackages,
        attempts: &mut BTreeMap<String, u32>,
    ) -> Result<()> {
        let nodes = self.client.nodes().await?;
        let jobs = lock(&self.jobs).clone();
        for node in &nodes {
            let job = jobs.get(&node.node_id);
            if let Some(id) = job {
                let ended = match self.client.job(id).await? {
                    Some(j) => j.ended(),
                    None => true,
                };
                if !ended && node.alive() {
                    continue;
                }
                if ended {
                    log::warn!("Ray job {id} (node {}) ended", node.short_id());
                    lock(&self.jobs).remove(&node.node_id);
                    let _ = self.client.delete(id).await;
                }
            }
            if node.alive() && node.total("CPU") > 0.0 && self.fits(node) {
                let n = attempts.entry(node.node_id.clone()).or_insert(0);
                *n += 1;
                log::info!("Ray node {} has no worker; launching one", node.short_id());
                self.submit_worker_job(ctx, package, node, *n).await?;
            }
        }
        Ok(())
    }

    /// Stops and deletes every job of ours.
    async fn stop_all(&self) -> Result<()> {
        let jobs = std::mem::take(&mut *lock(&self.jobs));
        let mut first_error = None;
        for id in jobs.values() {
            match self
                .client
                .stop_and_delete(id, Duration::from_secs(15))
                .await
            {
                Ok(()) => log::info!("stopped and deleted Ray job {id}"),
                Err(e) => {
                    log::warn!("stopping Ray job {id}: {e}");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl WorkerLauncher for RayLauncher {
    fn describe(&self) -> String {
        format!(
            "Ray at {} ({})",
            self.inner.options.address,
            match self.inner.options.launch {
                LaunchMode::Bootstrap => "a bootstrap job placing a worker actor per node",
                LaunchMode::JobPerNode => "one job per node",
            }
        )
    }

    async fn start(&self, ctx: LaunchContext) -> regatta_scheduler::Result<()> {
        let inner = &self.inner;
        let started = Instant::now();
        let version = inner.client.version().await?;
        log::info!("Ray {} at {}", version.ray_version, inner.client.address());
        let nodes = inner.eligible_nodes().await?;
        let package = JobPackages::upload(&inner.client, &inner.options.binary, &ctx.token).await?;
        match inner.options.launch {
            LaunchMode::Bootstrap => inner.submit_bootstrap(&ctx, &package).await?,
            LaunchMode::JobPerNode => {
                for node in &nodes {
                    inner.submit_worker_job(&ctx, &package, node, 1).await?;
                }
            }
        }
        let labels: BTreeSet<String> = nodes.iter().map(|n| format!("ray:{}", n.node_id)).collect();
        inner.await_workers(&ctx, &labels).await?;
        log::info!(
            "{} Ray workers registered {:?} after the launch began",
            labels.len(),
            started.elapsed()
        );
        let watcher = tokio::spawn(inner.clone().watch(ctx, package));
        *lock(&self.watcher) = Some(watcher);
        Ok(())
    }

    async fn stop(&self) -> regatta_scheduler::Result<()> {
        if let Some(w) = lock(&self.watcher).take() {
            w.abort();
        }
        Ok(self.inner.stop_all().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entrypoint_arguments_are_quoted_for_the_shell() {
        assert_eq!(shell_quote("127.0.0.1:7700"), "127.0.0.1:7700");
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
