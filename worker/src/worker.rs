//! [`Worker`]: one per node. Registers with the driver, runs the tasks it is sent on
//! the local engine, hosts the model actor pools and serves its shuffle files.

use regatta_common::AbortOnDrop;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_flight::flight_service_server::FlightServiceServer;
use regatta_actors::{ActorRuntime, NodeResources, ResourceOverrides};
use regatta_common::JobId;
use regatta_engine::{Engine, EngineOptions};
use regatta_proto::worker_control_client::WorkerControlClient;
use regatta_proto::{
    worker_order, Drivers, HeartbeatRequest, OrdersRequest, Resources, TaskReport,
};
use regatta_shuffle::{ShuffleFetcher, ShuffleFlightService, ShuffleLayout};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::driver_link::DriverLink;
use crate::task_runner::TaskRunner;
use crate::work_dirs::WorkDirs;
use crate::worker_stats::WorkerStats;
use crate::{Result, WorkerError, WorkerOptions};
use regatta_proto::HttpServer;

/// A running worker. Dropping it stops everything it runs.
pub struct Worker {
    pub id: u64,
    pub shuffle_address: SocketAddr,
    pub layout: ShuffleLayout,
    /// Its Prometheus endpoint, when it serves one.
    pub metrics_address: Option<SocketAddr>,
    tasks: JoinSet<Result<()>>,
    _metrics: Option<HttpServer>,
    _task_runtime: TaskRuntime,
    /// Dropped last: its directories go once nothing writes there.
    _dirs: WorkDirs,
}

/// The runtime tasks run on, apart from the one serving heartbeats, orders and
/// shuffle reads: a CPU-bound operator that rarely yields must not starve the
/// heartbeat (the driver would declare the worker lost).
struct TaskRuntime(Option<tokio::runtime::Runtime>);

impl TaskRuntime {
    fn new(threads: usize) -> Result<Self> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("regatta-task")
            .enable_all()
            .build()
            .map(|rt| Self(Some(rt)))
            .map_err(|e| WorkerError::Stopped(format!("cannot start the task runtime: {e}")))
    }

    fn handle(&self) -> Option<tokio::runtime::Handle> {
        self.0.as_ref().map(|rt| rt.handle().clone())
    }
}

impl Drop for TaskRuntime {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which async code may not do; let it wind down.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl Worker {
    /// Starts the shuffle server, registers with the driver and starts taking tasks.
    pub async fn start(options: WorkerOptions) -> Result<Self> {
        if options.die_with_parent {
            die_with_parent()?;
        }
        // Refused before anything starts: whatever set the address (the file, a
        // flag, a launcher), beyond loopback needs the token.
        regatta_common::check_listener(
            "worker's shuffle (Arrow Flight) server",
            &options.bind,
            "worker.bind",
            &options.token,
        )?;
        if let Some(bind) = &options.metrics_bind {
            regatta_common::check_listener(
                "worker's metrics endpoint",
                bind,
                "worker.metrics_bind",
                &options.token,
            )?;
        }
        let dirs = WorkDirs::create(&options.spill_dirs)?;
        let layout = ShuffleLayout::new(dirs.shuffle());
        // Processes on this machine read this worker's files directly when
        // they find this token in the directory.
        let shuffle_token = layout.claim()?;
        let shuffle_root = std::fs::canonicalize(layout.root())
            .unwrap_or_else(|_| layout.root().to_path_buf())
            .to_string_lossy()
            .to_string();
        let resources = NodeResources::detect(ResourceOverrides {
            cpus: options.cpus.map(f64::from),
            memory: Some(options.memory_limit),
            gpus: options.gpus,
        });
        let total = resources.total();
        let cpus = (total.cpus.round() as usize).max(1);
        let engine = Engine::new(EngineOptions {
            memory_limit: Some(options.memory_limit as usize),
            spill_dirs: dirs.operators(),
            cpu_concurrency: cpus,
            target_partitions: cpus,
            scan_work_sharing: false,
            // Until the driver sends the cluster's own.
            access: regatta_common::AccessPolicy::cluster(),
            ..EngineOptions::default()
        })?;
        let task_runtime = TaskRuntime::new(cpus)?;
        let task_handle = task_runtime
            .handle()
            .ok_or_else(|| WorkerError::Stopped("the task runtime is gone".into()))?;
        let actors = ActorRuntime::with_store(resources, options.models.clone());
        engine.set_model_provider(actors.clone());

        let listener =
            TcpListener::bind(&options.bind)
                .await
                .map_err(|source| WorkerError::Bind {
                    address: options.bind.clone(),
                    source,
                })?;
        let shuffle_address = listener.local_addr().map_err(|source| WorkerError::Bind {
            address: options.bind.clone(),
            source,
        })?;
        let mut tasks = JoinSet::new();
        let flight_service = ShuffleFlightService::new(layout.clone(), options.token.clone());
        let stats = Arc::new(WorkerStats::new(
            engine.clone(),
            actors.clone(),
            flight_service.served_bytes(),
            options.memory_limit,
        ));
        let flight = FlightServiceServer::new(flight_service).max_encoding_message_size(usize::MAX);
        let metrics = match &options.metrics_bind {
            None => None,
            Some(bind) => {
                let s = stats.clone();
                let router = regatta_proto::axum::Router::new().route(
                    "/metrics",
                    regatta_proto::axum::routing::get(move || {
                        let s = s.clone();
                        async move {
                            (
                                [(
                                    regatta_proto::axum::http::header::CONTENT_TYPE,
                                    regatta_common::prometheus::CONTENT_TYPE,
                                )],
                                s.prometheus(),
                            )
                        }
                    }),
                );
                let server = HttpServer::start(
                    "worker's metrics endpoint",
                    "worker.metrics_bind",
                    bind,
                    &options.token,
                    options.tls.as_ref(),
                    router,
                )
                .await
                .map_err(WorkerError::Metrics)?;
                log::info!("metrics at {}/metrics", server.url());
                Some(server)
            }
        };
        let metrics_address = metrics.as_ref().map(|m| m.address);
        let mut server = tonic::transport::Server::builder();
        if let Some(tls) = &options.tls {
            server = server.tls_config(tls.server()).map_err(|e| {
                WorkerError::Stopped(format!(
                    "shuffle server TLS (cluster.tls_cert/tls_key): {e}"
                ))
            })?;
        }
        tasks.spawn(async move {
            server
                .add_service(flight)
                .serve_with_incoming(regatta_proto::incoming(listener))
                .await
                .map_err(|e| {
                    WorkerError::Stopped(format!("shuffle server on {shuffle_address}: {e}"))
                })
        });

        let tls = options.tls.as_ref().map(|t| t.client());
        let mut drivers = Drivers::new(Drivers::split(&options.driver), &options.token, tls)
            .map_err(|message| WorkerError::Driver {
                address: options.driver.clone(),
                message,
            })?;
        drivers.patience = options.connect_timeout;
        let link = Arc::new(DriverLink::new(
            drivers,
            regatta_proto::RegisterRequest {
                flight_address: shuffle_address.to_string(),
                resources: Some(Resources {
                    cpus: cpus as u32,
                    gpus: total.gpus as u32,
                    memory_bytes: total.memory,
                }),
                node_label: options.node_label.clone(),
                gpu_ids: actors.resources().gpu_ids().to_vec(),
                shuffle_root,
                shuffle_token,
                metrics_address: metrics_address.map(|a| a.to_string()).unwrap_or_default(),
                // The driver refuses jobs calling a model this node lacks.
                models: options.models.found_names(),
                ..regatta_proto::RegisterRequest::default()
            },
        ));
        let registered = link.register(options.connect_timeout).await?;
        take_access(&engine, &registered, &link)?;
        let id = registered.worker_id;
        log::info!(
            "worker-{id} registered with {} ({cpus} CPUs, shuffle on {shuffle_address})",
            link.drivers.current()
        );
        let runner = Arc::new(TaskRunner {
            worker: id,
            engine,
            layout: layout.clone(),
            fetcher: Arc::new(
                ShuffleFetcher::new(id, layout.clone(), options.token.clone())
                    .with_tls(options.tls.as_ref().map(|t| t.client())),
            ),
        });
        let session = Session {
            link,
            runner,
            task_handle,
            layout: layout.clone(),
            running: stats.running.clone(),
            stats,
            actors,
            jobs: HashMap::new(),
            reconnect_timeout: options.reconnect_timeout,
        };
        let interval = Duration::from_millis(u64::from(registered.heartbeat_interval_ms.max(50)));
        tasks.spawn(session.serve(interval));
        Ok(Self {
            id,
            shuffle_address,
            layout,
            metrics_address,
            tasks,
            _metrics: metrics,
            _task_runtime: task_runtime,
            _dirs: dirs,
        })
    }

    /// Runs until the driver is lost or a service fails; returns why.
    pub async fn wait(mut self) -> Result<()> {
        match self.tasks.join_next().await {
            Some(Ok(r)) => r,
            Some(Err(e)) => Err(WorkerError::Stopped(format!("a worker task ended: {e}"))),
            None => Ok(()),
        }
    }
}

/// Asks the kernel to kill this process when its parent ends: a launcher's host
/// process (a Ray actor) may be killed without a chance to stop its children.
fn die_with_parent() -> Result<()> {
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and reads no memory.
    let r = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    if r != 0 {
        return Err(WorkerError::Stopped(format!(
            "cannot tie the worker to its parent (prctl PR_SET_PDEATHSIG): {}",
            std::io::Error::last_os_error()
        )));
    }
    // The parent may already be gone; then init adopted us.
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } == 1 {
        return Err(WorkerError::Stopped(
            "the process that started this worker is already gone".into(),
        ));
    }
    Ok(())
}

/// One task in the worker's running count, for as long as it lives.
struct RunningTask(Arc<AtomicU32>);

impl RunningTask {
    fn new(count: &Arc<AtomicU32>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count.clone())
    }
}

impl Drop for RunningTask {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The worker's side of its driver: orders in, heartbeats and reports out,
/// registering again with each new leader.
/// Enforces the cluster's access policy the driver sent. Without one (a driver
/// from before policies) the strict cluster default stays.
fn take_access(
    engine: &Engine,
    registered: &regatta_proto::RegisterResponse,
    link: &DriverLink,
) -> Result<()> {
    if let Some(wire) = &registered.access {
        let policy = regatta_common::AccessPolicy::try_from(wire).map_err(|message| {
            WorkerError::Refused {
                address: link.drivers.current(),
                message,
            }
        })?;
        engine.set_access(policy);
    }
    Ok(())
}

struct Session {
    link: Arc<DriverLink>,
    runner: Arc<TaskRunner>,
    task_handle: tokio::runtime::Handle,
    layout: ShuffleLayout,
    running: Arc<AtomicU32>,
    stats: Arc<WorkerStats>,
    actors: Arc<ActorRuntime>,
    /// Tasks by job; they outlive a leader change.
    jobs: HashMap<JobId, JoinSet<()>>,
    /// How long to look for a new leader after losing one.
    reconnect_timeout: Duration,
}

impl Session {
    async fn serve(mut self, mut interval: Duration) -> Result<()> {
        loop {
            let why = self.follow_leader(interval).await;
            log::warn!(
                "worker-{}: lost the leading driver ({why}); looking for the leader",
                self.link.id()
            );
            let again = self
                .link
                .register(self.reconnect_timeout)
                .await
                .map_err(|e| WorkerError::LostDriver {
                    address: self.link.drivers.addresses().join(","),
                    message: e.to_string(),
                })?;
            take_access(&self.runner.engine, &again, &self.link)?;
            interval = Duration::from_millis(u64::from(again.heartbeat_interval_ms.max(50)));
            log::info!(
                "worker-{} registered with {} in term {}",
                again.worker_id,
                self.link.drivers.current(),
                again.term
            );
        }
    }

    /// Takes orders from the current leader until it stops answering; says why.
    async fn follow_leader(&mut self, interval: Duration) -> String {
        let address = self.link.drivers.current();
        let channel = match self.link.drivers.channel(&address) {
            Ok(c) => c,
            Err(s) => return s.message().to_string(),
        };
        let mut client = WorkerControlClient::new(channel);
        let id = self.link.id();
        let secret = self.link.secret();
        let ask = regatta_proto::with_worker_secret(OrdersRequest { worker_id: id }, &secret);
        let mut orders = match client.orders(ask).await {
            Ok(o) => o.into_inner(),
            Err(s) => {
                self.link.drivers.follow(&s);
                return s.message().to_string();
            }
        };
        let mut tick = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let beat = HeartbeatRequest {
                        worker_id: id,
                        running_tasks: self.running.load(Ordering::Relaxed),
                        model_builds: self.actors.model_builds(),
                        actor_devices: self.actors.actor_devices(),
                        usage: Some(self.stats.usage()),
                    };
                    let reply = client
                        .heartbeat(regatta_proto::with_worker_secret(beat, &secret))
                        .await;
                    match reply {
                        Ok(r) if r.get_ref().known => {}
                        Ok(_) => return "the driver declared this worker lost".into(),
                        Err(s) => {
                            self.link.drivers.follow(&s);
                            return s.message().to_string();
                        }
                    }
                }
                order = orders.message() => match order {
                    Ok(Some(o)) => self.take(o).await,
                    Ok(None) => return "the driver closed the order stream".into(),
                    Err(s) => {
                        self.link.drivers.follow(&s);
                        return s.message().to_string();
                    }
                }
            }
        }
    }

    async fn take(&mut self, order: regatta_proto::WorkerOrder) {
        // Forget jobs whose tasks are all done.
        self.jobs.retain(|_, set| {
            while set.try_join_next().is_some() {}
            !set.is_empty()
        });
        match order.order {
            Some(worker_order::Order::Task(task)) => {
                let Some(key) = task.key else {
                    log::warn!("an order without a task key was ignored");
                    return;
                };
                if !self.link.accept(&key, task.term) {
                    log::warn!(
                        "refused job-{}/stage-{}/partition-{} from a deposed leader (term {})",
                        key.job_id,
                        key.stage_id,
                        key.partition,
                        task.term
                    );
                    return;
                }
                let job = JobId(key.job_id);
                let runner = self.runner.clone();
                let link = self.link.clone();
                let stats = self.stats.clone();
                let counted = RunningTask::new(&self.running);
                let worker = runner.worker;
                let run = self.task_handle.spawn(async move {
                    // Counted until it ends or is aborted (dropped).
                    let _counted = counted;
                    runner.run(task).await
                });
                self.jobs.entry(job).or_default().spawn(async move {
                    let mut run = AbortOnDrop(run);
                    let report = match (&mut run.0).await {
                        Ok(report) => report,
                        Err(e) => TaskReport {
                            worker_id: worker,
                            key: Some(key),
                            ok: false,
                            error: format!("the task stopped: {e}"),
                            // A panic on this input would panic again.
                            failure_class: regatta_proto::FailureClass::Data.into(),
                            ..TaskReport::default()
                        },
                    };
                    stats.record(&report);
                    link.report(report).await;
                });
            }
            Some(worker_order::Order::EndJob(job)) => {
                self.link.forget_job(job);
                let job = JobId(job);
                let started = Instant::now();
                if let Some(mut set) = self.jobs.remove(&job) {
                    set.shutdown().await;
                }
                if let Err(e) = self.layout.remove_job(job) {
                    log::warn!("removing the files of {job}: {e}");
                }
                log::info!("{job} ended here in {:?}", started.elapsed());
            }
            None => {}
        }
    }
}
