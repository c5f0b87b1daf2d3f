//! `regatta driver | worker | submit | jobs | cluster`: running and using a
//! self-hosted cluster.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use regatta::proto::{JobInfo, JobStatus, SubmitRequest, TableSource};
use regatta::ClusterClient;
use regatta_cluster_config::ClusterConfig;
use regatta_scheduler::driver::{
    DashboardBind, DriverHandle, DriverOptions, Planner, ReplicationOptions,
};
use regatta_worker::{Worker, WorkerOptions};

use crate::{CliError, Result};

/// Options every cluster command takes.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// The cluster file (TOML); defaults plus REGATTA_TOKEN / REGATTA_DRIVER without one.
    #[arg(long, short = 'c', global = true)]
    pub config: Option<PathBuf>,
}

impl ClusterArgs {
    pub(crate) fn load(&self) -> Result<ClusterConfig> {
        let cfg = match &self.config {
            Some(p) => ClusterConfig::load(p),
            None => ClusterConfig::from_env(),
        };
        let cfg = cfg.map_err(CliError::from)?;
        crate::storage_setup::install_storage(&cfg.storage);
        Ok(cfg)
    }
}

#[derive(Debug, Args)]
pub struct DriverArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Listen here instead of `driver.bind`.
    #[arg(long)]
    pub bind: Option<String>,
    /// This replica's Raft id: its position (from 1) in `driver.addresses`
    /// (default: the position of the bind address there, else 1).
    #[arg(long)]
    pub node_id: Option<u64>,
    /// Keep the Raft log and snapshots here instead of `driver.data_dir`/node-N.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Start as a new replica that waits to be added with `regatta drivers add`
    /// instead of as one of `driver.addresses`.
    #[arg(long)]
    pub join: bool,
    #[command(flatten)]
    pub launch: crate::ray_cmds::LaunchArgs,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// The driver to join instead of the first of `driver.addresses`.
    #[arg(long)]
    pub driver: Option<String>,
    /// Where the shuffle server listens instead of `worker.bind`.
    #[arg(long)]
    pub bind: Option<String>,
    /// Spill directory instead of `worker.spill_dirs`.
    #[arg(long)]
    pub spill_dir: Option<PathBuf>,
    /// CPUs to offer instead of `worker.cpus`.
    #[arg(long)]
    pub cpus: Option<u32>,
    /// GPUs to offer instead of `worker.gpus` (their ids come from
    /// CUDA_VISIBLE_DEVICES when it is set).
    #[arg(long)]
    pub gpus: Option<u32>,
    /// Memory budget instead of `worker.memory_limit`, e.g. `8GiB`.
    #[arg(long)]
    pub memory_limit: Option<String>,
    /// Where a launcher started this worker (`ray:<node id>`); set by launchers.
    #[arg(long, default_value = "")]
    pub node_label: String,
    /// Exit when the parent process exits (launchers set it).
    #[arg(long)]
    pub die_with_parent: bool,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// The SQL to run.
    pub sql: String,
    /// Tables the SQL names: NAME=PATH (repeatable).
    #[arg(long = "table", short = 't')]
    pub tables: Vec<String>,
    /// A name for the job.
    #[arg(long, default_value = "")]
    pub name: String,
    /// Return once the job is accepted instead of waiting for its rows.
    #[arg(long)]
    pub detach: bool,
    /// Output format for the rows.
    #[arg(long, short = 'f', value_enum, default_value_t = crate::PrintFormat::Table)]
    pub format: crate::PrintFormat,
    #[command(flatten)]
    pub out: crate::output_args::OutputArgs,
    /// Run the driver itself as a job on the Ray cluster with this dashboard
    /// (`http://host:8265`), with workers on every Ray node, and follow its log.
    #[arg(long)]
    pub ray: Option<String>,
    /// Set by `--ray` inside the Ray job: start a driver here and submit to it.
    #[arg(long, hide = true)]
    pub ray_inside: bool,
}

/// Every driver replica, comma-separated: clients and workers follow the leader.
pub(crate) fn driver_url(cfg: &ClusterConfig) -> String {
    if cfg.driver.addresses.is_empty() {
        return "127.0.0.1:7700".into();
    }
    cfg.driver.addresses.join(",")
}

/// How `regatta driver` replicates, from its flags and the cluster file; `None`
/// for a lone driver without a data dir.
fn replication(
    args: &DriverArgs,
    cfg: &ClusterConfig,
    bind: &str,
) -> Result<Option<ReplicationOptions>> {
    let addresses = &cfg.driver.addresses;
    let replicated = addresses.len() > 1
        || args.data_dir.is_some()
        || cfg.driver.data_dir.is_some()
        || args.join;
    if !replicated {
        return Ok(None);
    }
    let node_id = match args.node_id {
        Some(0) => return Err(CliError::Usage("--node-id counts from 1".into())),
        Some(n) => n,
        None => addresses
            .iter()
            .position(|a| a == bind)
            .map_or(1, |i| i as u64 + 1),
    };
    let members = if args.join {
        Default::default()
    } else {
        addresses
            .iter()
            .enumerate()
            .map(|(i, a)| (i as u64 + 1, a.clone()))
            .collect()
    };
    let data_dir = match (&args.data_dir, &cfg.driver.data_dir) {
        (Some(d), _) => d.clone(),
        (None, Some(d)) => d.join(format!("node-{node_id}")),
        (None, None) => {
            return Err(CliError::Usage(
                "a replicated driver needs driver.data_dir or --data-dir".into(),
            ))
        }
    };
    Ok(Some(ReplicationOptions {
        node_id,
        members,
        advertise: if args.join {
            bind.to_string()
        } else {
            String::new()
        },
        data_dir,
        cluster_id: cfg.cluster.id.clone(),
        heartbeat: Duration::from_millis(cfg.driver.raft_heartbeat_ms),
        ..ReplicationOptions::default()
    }))
}

pub(crate) async fn client(args: &ClusterArgs) -> Result<ClusterClient> {
    let cfg = args.load()?;
    let tls = cfg.tls().map_err(CliError::from)?;
    Ok(match tls {
        Some(tls) => {
            ClusterClient::connect_with_ca(&driver_url(&cfg), &cfg.cluster.token, Some(&tls.ca))
                .await?
        }
        None => ClusterClient::connect(&driver_url(&cfg), &cfg.cluster.token).await?,
    })
}

/// The cluster's TLS, when its file sets it.
fn cluster_tls(cfg: &ClusterConfig) -> Result<Option<regatta::proto::ClusterTls>> {
    let tls = cfg.tls().map_err(CliError::from)?;
    Ok(tls.map(|t| regatta::proto::ClusterTls {
        cert_pem: t.cert,
        key_pem: t.key,
        ca_pem: t.ca,
    }))
}

/// The driver's options from the cluster file and `regatta driver`'s flags.
pub(crate) fn driver_options(
    cfg: &ClusterConfig,
    replication: Option<ReplicationOptions>,
) -> Result<DriverOptions> {
    let tls = cluster_tls(cfg)?;
    if cfg.security.verify_worker_certs && tls.is_none() {
        return Err(CliError::from(
            regatta_cluster_config::ConfigError::Invalid {
                path: "cluster file".into(),
                key: "security.verify_worker_certs".into(),
                value: "true".into(),
                allowed: "needs TLS: set cluster.tls_cert, tls_key and tls_ca".into(),
            },
        ));
    }
    Ok(DriverOptions {
        token: cfg.cluster.token.clone(),
        heartbeat_interval: Duration::from_millis(cfg.driver.heartbeat_interval_ms),
        worker_timeout: Duration::from_millis(cfg.driver.worker_timeout_ms),
        max_task_failures: cfg.driver.max_task_failures,
        task_timeout: (cfg.driver.task_timeout_secs > 0)
            .then(|| Duration::from_secs(cfg.driver.task_timeout_secs)),
        task_memory: cfg.task_memory_bytes(),
        result_retention: Duration::from_secs(cfg.driver.result_retention_secs),
        tls,
        verify_worker_certs: cfg.security.verify_worker_certs,
        replication,
        launcher: None,
        control_host: cfg.ray.control_host.clone(),
        history_jobs: cfg.driver.history_jobs,
        dashboard: (!cfg.driver.dashboard_bind.is_empty()).then(|| DashboardBind {
            address: cfg.driver.dashboard_bind.clone(),
            any_port_if_taken: cfg.driver.dashboard_bind
                == regatta_cluster_config::DEFAULT_DASHBOARD_BIND,
        }),
        access: cfg.access.clone(),
    })
}

/// Where this process finds models: the cluster file's `[models]`, then the
/// built-in models' variables and the user cache.
pub(crate) fn model_store(cfg: &ClusterConfig) -> regatta::models::ModelStore {
    cfg.models.iter().fold(
        regatta::models::ModelStore::default(),
        |store, (name, m)| {
            store.with_entry(regatta::models::ModelEntry {
                name: name.clone(),
                dir: m.dir.clone(),
                kind: m.kind,
                batch_size: m.batch_size,
                precision: m.precision,
            })
        },
    )
}

/// Starts a driver on `bind`, planning with the models `store` finds.
pub(crate) async fn start_driver(
    bind: &str,
    options: DriverOptions,
    store: regatta::models::ModelStore,
) -> Result<DriverHandle> {
    let models = regatta::models::ActorRuntime::with_store(
        regatta::models::NodeResources::detect(regatta::models::ResourceOverrides::default()),
        store,
    );
    let planner = Planner {
        models: Some(models),
    };
    DriverHandle::start(bind, options, planner)
        .await
        .map_err(CliError::from)
}

/// Serves until the driver stops or the process is told to (Ctrl-C, SIGTERM),
/// then stops what its launcher started.
pub(crate) async fn serve_until_stopped(mut handle: DriverHandle) -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| CliError::Runtime(format!("cannot watch for SIGTERM: {e}")))?;
    tokio::select! {
        _ = handle.wait() => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("regatta driver: stopping");
    handle.shutdown().await.map_err(CliError::from)
}

/// `regatta driver`: serves until killed.
pub async fn run_driver(args: DriverArgs) -> Result<()> {
    let mut cfg = args.cluster.load()?;
    let bind = args.bind.clone().unwrap_or_else(|| cfg.driver.bind.clone());
    let replication = replication(&args, &cfg, &bind)?;
    let replicated = replication.as_ref().map(|r| r.node_id);
    cfg.check_plain_text("driver", &[&bind])
        .map_err(CliError::from)?;
    let mut options = driver_options(&cfg, replication)?;
    options.launcher = args.launch.launcher(&mut cfg)?;
    if options.launcher.is_some() && replicated.is_some() {
        return Err(CliError::Usage(
            "launching workers (ray.address, --ray, --workers) works with a lone driver, \
             not with replicated ones"
                .into(),
        ));
    }
    let handle = start_driver(&bind, options, model_store(&cfg)).await?;
    if let Some(d) = &handle.dashboard {
        println!("regatta dashboard at {}/", d.url());
    }
    // Tests and scripts read this line (the last word) to learn the port.
    match replicated {
        Some(id) => println!("regatta driver {id} listening on {}", handle.address),
        None => println!("regatta driver listening on {}", handle.address),
    }
    serve_until_stopped(handle).await
}

/// `regatta worker`: runs until the driver is lost.
pub async fn run_worker(args: WorkerArgs) -> Result<()> {
    let cfg = args.cluster.load()?;
    let memory_limit = match &args.memory_limit {
        Some(m) => {
            regatta_common::ByteSize::parse(m)
                .map_err(|e| CliError::Usage(format!("--memory-limit {m:?}: {e}")))?
                .0
        }
        None => cfg.memory_limit_bytes(),
    };
    let options = WorkerOptions {
        driver: args.driver.unwrap_or_else(|| driver_url(&cfg)),
        token: cfg.cluster.token.clone(),
        bind: args.bind.unwrap_or_else(|| cfg.worker.bind.clone()),
        metrics_bind: (!cfg.worker.metrics_bind.is_empty())
            .then(|| cfg.worker.metrics_bind.clone()),
        cpus: args
            .cpus
            .or((cfg.worker.cpus > 0).then_some(cfg.worker.cpus)),
        gpus: args.gpus.or(cfg.worker.gpus),
        memory_limit,
        spill_dirs: match args.spill_dir {
            Some(d) => vec![d],
            None => cfg.worker.spill_dirs.clone(),
        },
        connect_timeout: Duration::from_secs(10),
        reconnect_timeout: Duration::from_secs(cfg.worker.driver_patience_secs),
        tls: cluster_tls(&cfg)?,
        node_label: args.node_label.clone(),
        die_with_parent: args.die_with_parent,
        models: model_store(&cfg),
    };
    cfg.check_plain_text("worker", &[&options.bind, &options.driver])
        .map_err(CliError::from)?;
    let worker = Worker::start(options).await.map_err(CliError::from)?;
    println!(
        "regatta worker-{} serving shuffle data on {}",
        worker.id, worker.shuffle_address
    );
    worker.wait().await.map_err(CliError::from)
}

/// `regatta submit`: runs SQL on the cluster and prints the rows.
pub async fn run_submit(args: SubmitArgs) -> Result<()> {
    if args.ray_inside {
        return crate::ray_cmds::run_inside_ray(args).await;
    }
    if let Some(url) = &args.ray {
        return crate::ray_cmds::submit_to_ray(&args, url).await;
    }
    let client = client(&args.cluster).await?;
    submit_with(&client, &args).await
}

/// Submits `args`' SQL through `client`, waits and prints the rows.
pub(crate) async fn submit_with(client: &ClusterClient, args: &SubmitArgs) -> Result<()> {
    let tables = args
        .tables
        .iter()
        .map(|t| {
            let (name, path) = t
                .split_once('=')
                .ok_or_else(|| CliError::Usage(format!("--table {t:?}: use NAME=PATH")))?;
            Ok(TableSource {
                name: name.to_string(),
                path: path.to_string(),
                format: regatta::proto::FileFormat::Unspecified as i32,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let policy = args.out.row_error_policy()?;
    let job = client
        .submit(SubmitRequest {
            name: args.name.clone(),
            plan: Some(regatta::proto::submit_request::Plan::Sql(args.sql.clone())),
            tables,
            output_path: args.out.output.clone().unwrap_or_default(),
            output_format: args
                .out
                .output_format
                .map_or(regatta::proto::FileFormat::Unspecified, Into::into)
                as i32,
            output_mode: regatta::proto::WriteMode::from(args.out.output_mode) as i32,
            errors_url: policy.errors_url.clone().unwrap_or_default(),
            failure_budget: Some(regatta::proto::FailureBudget {
                max_failed_rows: policy.budget.max_failed_rows,
                max_failed_fraction: policy.budget.max_failed_fraction,
            }),
            resume_key: args.out.resume_key.clone().unwrap_or_default(),
            ..Default::default()
        })
        .await?;
    if !args.ray_inside {
        eprintln!("submitted job-{}", job.job_id);
    }
    if args.detach {
        println!("{}", job.job_id);
        return Ok(());
    }
    // Rows printed as a stream (not as a table, which needs them all) go out
    // as their partitions finish, while the job still runs; a failed job ends
    // the stream with its error.
    let streams = args.out.output.is_none()
        && !args.ray_inside
        && !matches!(args.format, crate::PrintFormat::Table);
    if streams {
        let rows = client.result_stream(job.job_id);
        return crate::output::write_stream(&mut std::io::stdout().lock(), rows, args.format).await;
    }
    let end = watch(client, job.job_id).await?;
    if end.status() != JobStatus::Succeeded {
        return Err(CliError::Usage(format!(
            "job-{} {}: {}",
            end.job_id,
            end.status().word(),
            end.error
        )));
    }
    if let Some(path) = &args.out.output {
        eprintln!("job-{} wrote {} rows to {path}", end.job_id, end.rows_out);
        return Ok(());
    }
    let rows = client.result_stream(job.job_id);
    if !args.ray_inside {
        return crate::output::write_stream(&mut std::io::stdout().lock(), rows, args.format).await;
    }
    let batches: Vec<_> = futures::TryStreamExt::try_collect(rows).await?;
    let mut out = std::io::stdout().lock();
    // Framed: the client reads the rows out of a log Ray adds lines to.
    use std::io::Write;
    let framed = writeln!(out, "{}", crate::ray_cmds::ROWS_BEGIN)
        .and_then(|()| out.flush())
        .map_err(|e| CliError::Runtime(format!("writing the rows: {e}")));
    framed?;
    crate::output::write_batches(&mut out, &batches, args.format)?;
    writeln!(out, "{}", crate::ray_cmds::ROWS_END)
        .and_then(|()| out.flush())
        .map_err(|e| CliError::Runtime(format!("writing the rows: {e}")))
}

pub(crate) async fn watch(client: &ClusterClient, job: u64) -> Result<JobInfo> {
    let bar = crate::progress::steps_bar(0, &format!("job-{job}"));
    let end = client
        .watch(job, |i| {
            bar.set_length(u64::from(i.tasks));
            bar.set_position(u64::from(i.tasks_done));
            bar.set_message(format!(
                "stage {}/{} · {} running · {} retried · {} recomputed",
                i.stages_done, i.stages, i.tasks_running, i.retried_tasks, i.recomputed_outputs
            ));
        })
        .await?;
    bar.finish_and_clear();
    Ok(end)
}

pub(crate) fn print_job(i: &JobInfo) {
    println!(
        "job-{:<5} {:<10} {:<24} tasks {}/{} stages {}/{} retried {} recomputed {} rows {} failed-rows {}/{} spilled {} B {:.2}s{}{}",
        i.job_id,
        i.status().word(),
        i.name,
        i.tasks_done,
        i.tasks,
        i.stages_done,
        i.stages,
        i.retried_tasks,
        i.recomputed_outputs,
        i.rows_out,
        i.failed_rows,
        i.checked_rows,
        i.spilled_bytes,
        i.elapsed_seconds,
        if i.errors_url.is_empty() || i.failed_rows == 0 {
            String::new()
        } else {
            format!("  errors in {}", i.errors_url)
        },
        if i.error.is_empty() {
            String::new()
        } else {
            format!("  error: {}", i.error)
        }
    );
}

pub(crate) fn print_stages(i: &JobInfo) {
    println!(
        "job-{} {}: {:.3} s in all, planning {:.3} s",
        i.job_id,
        i.status().word(),
        i.elapsed_seconds,
        i.planning_seconds
    );
    println!("stage  tasks   start     end   task-s   read-s  compute-s  write-s");
    for s in &i.stage_timings {
        let compute = (s.task_seconds - s.read_seconds - s.write_seconds).max(0.0);
        println!(
            "{:>5} {:>6} {:>7.3} {:>7.3} {:>8.3} {:>8.3} {:>10.3} {:>8.3}",
            s.stage_id,
            s.tasks,
            s.started_seconds,
            s.ended_seconds,
            s.task_seconds,
            s.read_seconds,
            compute,
            s.write_seconds
        );
    }
    if i.operators.is_empty() {
        return;
    }
    println!();
    // Each operator summed over its stage's finished tasks; indented by depth.
    println!("stage  operator                                      rows-in     rows-out  compute-s  waited-s");
    for o in &i.operators {
        let name = format!("{}{}", "  ".repeat(o.depth as usize), o.name);
        println!(
            "{:>5}  {:<40} {:>12} {:>12} {:>10.3} {:>9.3}",
            o.stage_id,
            name,
            o.rows_in,
            o.rows_out,
            o.compute_nanos as f64 / 1e9,
            o.backpressure_nanos as f64 / 1e9
        );
    }
}

/// `regatta cluster`: the workers and their resources.
pub async fn run_cluster(args: ClusterArgs) -> Result<()> {
    let client = client(&args).await?;
    for w in client.workers().await? {
        let t = w.total.unwrap_or_default();
        let u = w.used.unwrap_or_default();
        println!(
            "worker-{:<4} {:<6} {:<22} cpus {}/{} gpus {}/{} memory {}/{} MiB tasks running {} reported {} done {} models loaded {}",
            w.worker_id,
            if w.alive { "alive" } else { "lost" },
            w.flight_address,
            u.cpus,
            t.cpus,
            u.gpus,
            t.gpus,
            u.memory_bytes >> 20,
            t.memory_bytes >> 20,
            w.running_tasks,
            w.reported_running,
            w.tasks_done,
            w.model_builds
        );
        // Launched workers say where; GPU workers which devices they and their
        // model actors hold.
        if !w.node_label.is_empty() {
            println!("    node {}", w.node_label);
        }
        if !w.gpu_ids.is_empty() {
            println!("    gpus {}", w.gpu_ids.join(","));
        }
        for d in &w.actor_devices {
            println!("    actor {d}");
        }
    }
    Ok(())
}
