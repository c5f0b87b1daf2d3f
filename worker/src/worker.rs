//! [`Worker`]: one per node. Registers with the driver, runs the tasks it is sent on
//! the local engine, hosts the model actor pools and serves its shuffle files.

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
    worker_order, AuthChannel, HeartbeatRequest, OrdersRequest, RegisterRequest, Resources,
    TaskReport, TokenInterceptor,
};
use regatta_shuffle::{ShuffleFetcher, ShuffleFlightService, ShuffleLayout};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_stream::wrappers::TcpListenerStream;

use crate::task_runner::TaskRunner;
use crate::{Result, WorkerError, WorkerOptions};

/// A running worker. Dropping it stops everything it runs.
pub struct Worker {
    pub id: u64,
    pub shuffle_address: SocketAddr,
    pub layout: ShuffleLayout,
    tasks: JoinSet<Result<()>>,
    _task_runtime: TaskRuntime,
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

/// A task on the task runtime, aborted when its relay on the control runtime is
/// (a job's end aborts the relays).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Worker {
    /// Starts the shuffle server, registers with the driver and starts taking tasks.
    pub async fn start(options: WorkerOptions) -> Result<Self> {
        let spill_root = options
            .spill_dirs
            .first()
            .cloned()
            .unwrap_or_else(|| std::env::temp_dir().join("regatta-spill"));
        let layout = ShuffleLayout::new(spill_root.join("shuffle"));
        let leftovers = layout.clear()?;
        if leftovers > 0 {
            log::info!(
                "removed {leftovers} leftover shuffle directories under {}",
                layout.root().display()
            );
        }
        let resources = NodeResources::detect(ResourceOverrides {
            cpus: options.cpus.map(f64::from),
            memory: Some(options.memory_limit),
            gpus: options.gpus,
        });
        let total = resources.total();
        let cpus = (total.cpus.round() as usize).max(1);
        let engine = Engine::new(EngineOptions {
            memory_limit: Some(options.memory_limit as usize),
            spill_dirs: options
                .spill_dirs
                .iter()
                .map(|d| d.join("operators"))
                .collect(),
            cpu_concurrency: cpus,
            target_partitions: cpus,
            scan_work_sharing: false,
            ..EngineOptions::default()
        })?;
        let task_runtime = TaskRuntime::new(cpus)?;
        let task_handle = task_runtime
            .handle()
            .ok_or_else(|| WorkerError::Stopped("the task runtime is gone".into()))?;
        let actors = ActorRuntime::new(resources);
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
        let flight = FlightServiceServer::new(ShuffleFlightService::new(
            layout.clone(),
            options.token.clone(),
        ))
        .max_encoding_message_size(usize::MAX);
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
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await
                .map_err(|e| {
                    WorkerError::Stopped(format!("shuffle server on {shuffle_address}: {e}"))
                })
        });

        let mut client = connect(&options).await?;
        let refused = |s: tonic::Status| WorkerError::Refused {
            address: options.driver.clone(),
            message: s.message().to_string(),
        };
        let registered = client
            .register(RegisterRequest {
                flight_address: shuffle_address.to_string(),
                host: shuffle_address.ip().to_string(),
                resources: Some(Resources {
                    cpus: cpus as u32,
                    gpus: total.gpus as u32,
                    memory_bytes: total.memory,
                }),
                ..Default::default()
            })
            .await
            .map_err(refused)?
            .into_inner();
        let id = registered.worker_id;
        let mut orders = client
            .orders(OrdersRequest { worker_id: id })
            .await
            .map_err(refused)?
            .into_inner();
        log::info!(
            "worker-{id} registered with {} ({cpus} CPUs, shuffle on {shuffle_address})",
            options.driver
        );

        let interval = Duration::from_millis(u64::from(registered.heartbeat_interval_ms.max(50)));
        let running = Arc::new(AtomicU32::new(0));
        let hb_running = running.clone();
        let mut hb_client = client.clone();
        let hb_actors = actors.clone();
        let driver = options.driver.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                let reply = hb_client
                    .heartbeat(HeartbeatRequest {
                        worker_id: id,
                        running_tasks: hb_running.load(Ordering::Relaxed),
                        model_builds: hb_actors.model_builds(),
                    })
                    .await;
                match reply {
                    Ok(r) if r.get_ref().known => {}
                    Ok(_) => {
                        return Err(WorkerError::LostDriver {
                            address: driver,
                            message: "the driver declared this worker lost".into(),
                        })
                    }
                    Err(s) => {
                        return Err(WorkerError::LostDriver {
                            address: driver,
                            message: s.message().to_string(),
                        })
                    }
                }
            }
        });

        let runner = Arc::new(TaskRunner {
            worker: id,
            engine,
            layout: layout.clone(),
            fetcher: Arc::new(
                ShuffleFetcher::new(id, layout.clone(), options.token.clone())
                    .with_tls(options.tls.as_ref().map(|t| t.client())),
            ),
        });
        let driver = options.driver.clone();
        let jobs_layout = layout.clone();
        tasks.spawn(async move {
            let mut jobs: HashMap<JobId, JoinSet<()>> = HashMap::new();
            loop {
                let order = match orders.message().await {
                    Ok(Some(o)) => o,
                    Ok(None) => {
                        return Err(WorkerError::LostDriver {
                            address: driver,
                            message: "the driver closed the order stream".into(),
                        })
                    }
                    Err(s) => {
                        return Err(WorkerError::LostDriver {
                            address: driver,
                            message: s.message().to_string(),
                        })
                    }
                };
                // Forget jobs whose tasks are all done.
                jobs.retain(|_, set| {
                    while set.try_join_next().is_some() {}
                    !set.is_empty()
                });
                match order.order {
                    Some(worker_order::Order::Task(task)) => {
                        let job = JobId(task.key.as_ref().map(|k| k.job_id).unwrap_or(0));
                        let runner = runner.clone();
                        let mut reporter = client.clone();
                        let counted = RunningTask::new(&running);
                        let key = task.key;
                        let worker = runner.worker;
                        let run = task_handle.spawn(async move {
                            // Counted until it ends or is aborted (dropped).
                            let _counted = counted;
                            runner.run(task).await
                        });
                        jobs.entry(job).or_default().spawn(async move {
                            let mut run = AbortOnDrop(run);
                            let report = match (&mut run.0).await {
                                Ok(report) => report,
                                Err(e) => TaskReport {
                                    worker_id: worker,
                                    key,
                                    ok: false,
                                    error: format!("the task stopped: {e}"),
                                    ..TaskReport::default()
                                },
                            };
                            if let Err(s) = reporter.report_task(report).await {
                                log::warn!("reporting a task: {}", s.message());
                            }
                        });
                    }
                    Some(worker_order::Order::EndJob(job)) => {
                        let job = JobId(job);
                        let started = Instant::now();
                        if let Some(mut set) = jobs.remove(&job) {
                            set.shutdown().await;
                        }
                        if let Err(e) = jobs_layout.remove_job(job) {
                            log::warn!("removing the files of {job}: {e}");
                        }
                        log::info!("{job} ended here in {:?}", started.elapsed());
                    }
                    None => {}
                }
            }
        });
        Ok(Self {
            id,
            shuffle_address,
            layout,
            tasks,
            _task_runtime: task_runtime,
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

/// Connects to the driver, retrying until the start-up timeout.
async fn connect(options: &WorkerOptions) -> Result<WorkerControlClient<AuthChannel>> {
    let unreachable = |message: String| WorkerError::Driver {
        address: options.driver.clone(),
        message,
    };
    let tls = options.tls.as_ref().map(|t| t.client());
    let endpoint = regatta_proto::endpoint(&options.driver, tls.as_ref())
        .map_err(unreachable)?
        .connect_timeout(Duration::from_secs(2))
        .http2_keep_alive_interval(Duration::from_secs(1))
        .keep_alive_timeout(Duration::from_secs(2));
    let deadline = Instant::now() + options.connect_timeout;
    loop {
        match endpoint.connect().await {
            Ok(channel) => {
                return Ok(WorkerControlClient::with_interceptor(
                    channel,
                    TokenInterceptor::new(&options.token),
                ))
            }
            Err(e) if Instant::now() >= deadline => {
                return Err(unreachable(format!(
                    "{e} (gave up after {:?})",
                    options.connect_timeout
                )))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
