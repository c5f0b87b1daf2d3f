//! Launching workers: `regatta driver --ray URL | --workers N`, and
//! `regatta submit --ray URL`, which runs a whole driver as a Ray job.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use clap::Args;
use regatta::ClusterClient;
use regatta_cluster_config::{ClusterConfig, RayConfig, RAY_LAUNCH_MODES};
use regatta_ray::{submit_driver_job, RayClient, RayLauncher, RayOptions};
use regatta_scheduler::launcher::{LocalWorkers, WorkerLauncher};

use crate::cluster_cmds::{driver_options, model_store, start_driver, submit_with, SubmitArgs};
use crate::{CliError, Result};

/// Lines around the rows a driver job prints, so `submit --ray` can tell them
/// from the log lines Ray and the driver add.
pub(crate) const ROWS_BEGIN: &str = "--- regatta rows ---";
pub(crate) const ROWS_END: &str = "--- regatta rows end ---";

/// How `regatta driver` gets its workers.
#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// Launch the workers on the Ray cluster with this dashboard
    /// (`http://host:8265`), one per Ray node (sets `ray.address`).
    #[arg(long)]
    pub ray: Option<String>,
    /// `bootstrap` (default) or `job-per-node` (sets `ray.launch`).
    #[arg(long)]
    pub ray_launch: Option<String>,
    /// Start this many worker processes on this machine.
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
}

impl LaunchArgs {
    /// The launcher the flags and `[ray]` ask for; `None` when workers are
    /// started by hand.
    pub fn launcher(&self, cfg: &mut ClusterConfig) -> Result<Option<Arc<dyn WorkerLauncher>>> {
        if let Some(url) = &self.ray {
            cfg.ray.address = url.clone();
        }
        if let Some(mode) = &self.ray_launch {
            if !RAY_LAUNCH_MODES.contains(&mode.as_str()) {
                return Err(CliError::Usage(format!(
                    "--ray-launch {mode:?}: use bootstrap or job-per-node"
                )));
            }
            cfg.ray.launch = mode.clone();
        }
        if !cfg.ray.address.is_empty() {
            if self.workers > 0 {
                return Err(CliError::Usage(
                    "--workers and a Ray cluster (--ray, ray.address) both launch workers; pick one"
                        .into(),
                ));
            }
            return Ok(Some(Arc::new(ray_launcher(&cfg.ray)?)));
        }
        if self.workers > 0 {
            let spill = std::env::temp_dir().join(format!("regatta-local-{}", std::process::id()));
            return Ok(Some(Arc::new(LocalWorkers::new(
                current_exe()?,
                vec!["worker".into()],
                self.workers,
                spill,
            ))));
        }
        Ok(None)
    }
}

fn current_exe() -> Result<std::path::PathBuf> {
    std::env::current_exe()
        .map_err(|e| CliError::Runtime(format!("cannot find the regatta binary to ship: {e}")))
}

fn ray_launcher(ray: &RayConfig) -> Result<RayLauncher> {
    RayLauncher::new(RayOptions::from_config(ray, current_exe()?)).map_err(CliError::from)
}

/// A fresh secret for a driver that lives only as long as one Ray job.
fn random_token() -> String {
    use std::hash::BuildHasher;
    let s = std::collections::hash_map::RandomState::new();
    format!("{:016x}{:016x}", s.hash_one(1u8), s.hash_one(2u8))
}

/// `regatta submit --ray URL`: ships regatta to Ray, runs a driver there as a
/// job (which launches workers on every node, runs the SQL, prints the rows
/// and stops its workers), and follows that job's log.
pub async fn submit_to_ray(args: &SubmitArgs, url: &str) -> Result<()> {
    let mut cfg = args.cluster.load()?;
    cfg.ray.address = url.to_string();
    let options = RayOptions::from_config(&cfg.ray, current_exe()?);
    let mut inner: Vec<String> = vec![
        "submit".into(),
        "--ray-inside".into(),
        "-f".into(),
        clap::ValueEnum::to_possible_value(&args.format)
            .map(|v| v.get_name().to_string())
            .unwrap_or_else(|| "table".into()),
    ];
    if !args.name.is_empty() {
        inner.extend(["--name".into(), args.name.clone()]);
    }
    for t in &args.tables {
        let (name, path) = t
            .split_once('=')
            .ok_or_else(|| CliError::Usage(format!("--table {t:?}: use NAME=PATH")))?;
        inner.extend(["-t".into(), format!("{name}={}", absolute(path))]);
    }
    inner.extend(args.out.to_args(absolute));
    inner.push(args.sql.clone());
    // The driver job reads its [ray] settings, and what its jobs may read
    // ([access], with this environment's additions), from here: it has no
    // cluster file.
    let ray_toml = toml_of(&cfg)?;
    // It holds ray.token: a secret, not an env_var Ray would list.
    let secrets = BTreeMap::from([("REGATTA_RAY_CONFIG_TOML".to_string(), ray_toml)]);
    let job = submit_driver_job(&options, &inner, BTreeMap::new(), secrets)
        .await
        .map_err(CliError::from)?;
    eprintln!(
        "submitted Ray job {} (a regatta driver); following its log",
        job.id
    );
    let mut split = RowSplitter::default();
    let followed = tokio::select! {
        r = job.follow(|text| split.feed(text)) => r,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("stopping Ray job {}", job.id);
            job.cancel().await.map_err(CliError::from)?;
            return Err(CliError::RayJob(format!("cancelled; Ray job {} was stopped", job.id)));
        }
    };
    let end = followed.map_err(CliError::from)?;
    split.finish();
    if end.status != "SUCCEEDED" {
        return Err(CliError::RayJob(format!(
            "Ray job {} {}: {}",
            job.id,
            end.status,
            end.message.unwrap_or_default()
        )));
    }
    if let Err(e) = job.client.delete(&job.id).await {
        log::warn!("deleting the finished Ray job {}: {e}", job.id);
    }
    Ok(())
}

/// A path as the Ray nodes should see it: absolute when it exists here.
/// `path` as the Ray job (another working directory) must see it: a local
/// path made absolute whether or not it exists yet (an output usually does
/// not); a URL as given.
fn absolute(path: &str) -> String {
    if path.contains("://") {
        return path.to_string();
    }
    match std::path::absolute(Path::new(path)) {
        Ok(p) => p.display().to_string(),
        Err(_) => path.to_string(),
    }
}

fn toml_of(cfg: &ClusterConfig) -> Result<String> {
    #[derive(serde::Serialize)]
    struct Only<'a> {
        ray: &'a RayConfig,
        access: &'a regatta_common::AccessPolicy,
    }
    toml::to_string(&Only {
        ray: &cfg.ray,
        access: &cfg.access,
    })
    .map_err(|e| CliError::Runtime(format!("[ray] and [access] settings: {e}")))
}

/// Sends a driver job's rows to stdout and everything else in its log to stderr.
#[derive(Default)]
struct RowSplitter {
    partial: String,
    in_rows: bool,
}

impl RowSplitter {
    fn feed(&mut self, text: &str) {
        self.partial.push_str(text);
        while let Some(i) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=i).collect();
            self.line(line.trim_end_matches('\n'));
        }
    }

    fn line(&mut self, line: &str) {
        match line {
            ROWS_BEGIN => self.in_rows = true,
            ROWS_END => self.in_rows = false,
            _ if self.in_rows => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
            }
            _ => eprintln!("{line}"),
        }
    }

    fn finish(&mut self) {
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.line(&rest);
        }
        let _ = std::io::stdout().flush();
    }
}

/// Inside the Ray job of `submit --ray`: a driver on the head node whose workers
/// Ray launches, the SQL submitted to it, then every Ray job of it stopped.
pub async fn run_inside_ray(args: SubmitArgs) -> Result<()> {
    let mut cfg = match regatta_common::secret_var("REGATTA_RAY_CONFIG_TOML") {
        Some(text) => {
            ClusterConfig::parse(&text, "REGATTA_RAY_CONFIG_TOML").map_err(CliError::from)?
        }
        None => args.cluster.load()?,
    };
    if let Ok(a) = std::env::var("REGATTA_RAY_ADDRESS") {
        cfg.ray.address = a;
    }
    if cfg.ray.address.is_empty() {
        return Err(CliError::Usage(
            "--ray-inside runs only as the Ray job `regatta submit --ray` starts".into(),
        ));
    }
    // Workers dial the head node, where this job runs.
    let host = if cfg.ray.control_host.is_empty() {
        let ray = RayClient::new(&cfg.ray.address, &cfg.ray.token).map_err(CliError::from)?;
        let nodes = ray.nodes().await.map_err(CliError::from)?;
        nodes
            .iter()
            .find(|n| n.is_head_node && n.alive())
            .map_or_else(|| "127.0.0.1".to_string(), |n| n.node_ip.clone())
    } else {
        cfg.ray.control_host.clone()
    };
    if cfg.cluster.token.is_empty() {
        cfg.cluster.token = random_token();
    }
    let mut options = driver_options(&cfg, None)?;
    options.control_host = host.clone();
    options.launcher = Some(Arc::new(ray_launcher(&cfg.ray)?));
    let handle = start_driver(&format!("{host}:0"), options, model_store(&cfg)).await?;
    let client = ClusterClient::connect(&handle.address.to_string(), &cfg.cluster.token).await;
    let result = match client {
        Ok(c) => submit_with(&c, &args).await,
        Err(e) => Err(e.into()),
    };
    let stopped = handle.shutdown().await;
    result?;
    stopped.map_err(CliError::from)
}
