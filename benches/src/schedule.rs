//! `--workload schedule`: the driver's scheduling throughput with no-op tasks.
//!
//! A real driver (its gRPC services on 127.0.0.1, its scheduling loop and state
//! machine) and `--workers` workers that do nothing but answer each task order with
//! a success report over real gRPC, and heartbeat. The job is one stage of
//! `--tasks` tasks; what is timed is submission to the last task recorded done, so
//! it measures placement, order delivery and report handling, not task work.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use regatta_common::{JobId, Resources, StageId};
use regatta_proto::worker_control_client::WorkerControlClient;
use regatta_proto::{
    worker_order, AuthChannel, HeartbeatRequest, OrdersRequest, RegisterRequest, TaskReport,
    TokenInterceptor,
};
use regatta_scheduler::driver::{DriverHandle, DriverOptions, Planner, ReplicationOptions};
use regatta_scheduler::{Command, StageSpec};
use serde_json::{json, Value};
use tokio::task::JoinSet;
use tonic::transport::Endpoint;

use crate::workloads::Res;

/// Each no-op worker offers this many CPUs, so every task can be in flight.
const WORKER_CPUS: u32 = 4096;

/// Reports one no-op worker has in flight at most.
const MAX_REPORTS_IN_FLIGHT: usize = 256;

/// A lone driver, or `replicas` Raft replicas (the leader first); the temporary
/// directory holds their logs.
async fn drivers(replicas: u64) -> Res<(Vec<DriverHandle>, Option<tempfile::TempDir>)> {
    if replicas <= 1 {
        let h = DriverHandle::start("127.0.0.1:0", DriverOptions::default(), Planner::default())
            .await?;
        return Ok((vec![h], None));
    }
    let dir = tempfile::tempdir()?;
    let mut members = std::collections::BTreeMap::new();
    for id in 1..=replicas {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        members.insert(id, format!("127.0.0.1:{port}"));
    }
    let mut handles = Vec::new();
    for (id, address) in &members {
        let options = DriverOptions {
            replication: Some(ReplicationOptions {
                node_id: *id,
                members: members.clone(),
                advertise: String::new(),
                data_dir: dir.path().join(format!("node-{id}")),
                cluster_id: "bench".into(),
                heartbeat: Duration::from_millis(50),
                // No link cuts (a field only with the scheduler's test feature).
                ..ReplicationOptions::default()
            }),
            ..DriverOptions::default()
        };
        handles.push(DriverHandle::start(address, options, Planner::default()).await?);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let leader = loop {
        if let Some(i) = handles.iter().position(|h| h.driver.is_leader()) {
            break i;
        }
        if Instant::now() > deadline {
            return Err("no driver replica was elected leader within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    handles.swap(0, leader);
    Ok((handles, Some(dir)))
}

/// Raft log entries committed so far on the leader (0 for a lone driver).
fn committed(handle: &DriverHandle) -> u64 {
    handle
        .driver
        .consensus()
        .replica()
        .and_then(|r| r.raft().metrics().borrow().last_applied)
        .map_or(0, |l| l.index)
}

pub async fn schedule(tasks: u32, workers: u32, replicas: u64) -> Res<(u64, f64, Value)> {
    let (handles, _dir) = drivers(replicas).await?;
    let handle = &handles[0];
    let address = handle.address;
    // Owned here: dropping the set stops the no-op workers.
    let mut fleet = JoinSet::new();
    for _ in 0..workers {
        let mut client = connect(address).await?;
        let id = client
            .register(RegisterRequest {
                flight_address: "127.0.0.1:9".into(),
                host: "127.0.0.1".into(),
                resources: Some(regatta_proto::Resources {
                    cpus: WORKER_CPUS,
                    gpus: 0,
                    memory_bytes: u64::from(WORKER_CPUS) << 26,
                }),
                ..Default::default()
            })
            .await?
            .into_inner()
            .worker_id;
        let mut orders = client
            .orders(OrdersRequest { worker_id: id })
            .await?
            .into_inner();
        // Heartbeats on a connection of their own, so they never queue behind the
        // flood of reports (a late heartbeat would get the worker declared lost).
        let mut beat = connect(address).await?;
        fleet.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                let _ = beat
                    .heartbeat(HeartbeatRequest {
                        worker_id: id,
                        ..HeartbeatRequest::default()
                    })
                    .await;
            }
        });
        fleet.spawn(async move {
            let mut reports = JoinSet::new();
            while let Ok(Some(order)) = orders.message().await {
                if let Some(worker_order::Order::Task(task)) = order.order {
                    // Bounded, as a real worker's cores bound it: thousands of
                    // concurrent calls on one connection make HTTP/2 give up on it.
                    while reports.len() >= MAX_REPORTS_IN_FLIGHT {
                        let _ = reports.join_next().await;
                    }
                    let mut c = client.clone();
                    reports.spawn(async move {
                        let _ = c
                            .report_task(TaskReport {
                                worker_id: id,
                                key: task.key,
                                ok: true,
                                ..TaskReport::default()
                            })
                            .await;
                    });
                    while reports.try_join_next().is_some() {}
                }
            }
        });
    }
    let driver = handle.driver.clone();
    let job = driver.jobs().new_id();
    let commits_before = committed(handle);
    let t0 = Instant::now();
    driver
        .jobs()
        .submit(
            Command::SubmitJob {
                submitted_unix_ms: 0,
                row_errors: Default::default(),
                job,
                name: "no-op".into(),
                stages: vec![StageSpec {
                    stage: StageId(1),
                    tasks,
                    inputs: vec![],
                    output_partitions: 1,
                    demand: Resources {
                        cpus: 1.0,
                        gpus: 0.0,
                        memory: 64 << 20,
                    },
                    plan: Vec::new(),
                    task_inputs: Vec::new(),
                }],
                output: None,
                request_id: regatta_common::RequestId::generate(),
            },
            Duration::ZERO,
        )
        .await?;
    let done = wait_done(&driver, job, tasks).await?;
    let secs = t0.elapsed().as_secs_f64();
    let commits = committed(handle) - commits_before;
    let extra = json!({
        "tasks": tasks,
        "workers": workers,
        "replicas": replicas,
        "tasks_per_s": (f64::from(tasks) / secs).round(),
        "raft_entries_committed": commits,
        "raft_entries_per_s": (commits as f64 / secs).round(),
        "job_status": done,
    });
    drop(fleet);
    drop(handles);
    Ok((u64::from(tasks), secs, extra))
}

/// A worker-control client of the driver at `address`, on a connection of its own.
async fn connect(address: SocketAddr) -> Res<WorkerControlClient<AuthChannel>> {
    let channel = Endpoint::from_shared(format!("http://{address}"))?
        .connect()
        .await?;
    Ok(WorkerControlClient::with_interceptor(
        channel,
        TokenInterceptor::new(""),
    ))
}

/// Waits until every task of `job` is recorded done; returns the job's status.
async fn wait_done(
    driver: &regatta_scheduler::driver::Driver,
    job: JobId,
    tasks: u32,
) -> Res<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info = regatta_scheduler::driver::job_info(driver, job).ok_or("the job vanished")?;
        if info.tasks_done >= tasks {
            return Ok(info.status().word().to_string());
        }
        if !info.error.is_empty() {
            return Err(format!("the no-op job failed: {}", info.error).into());
        }
        if Instant::now() > deadline {
            let lost = driver.with_state(|s| s.workers().filter(|(_, w)| !w.alive).count());
            return Err(format!(
                "{}/{tasks} tasks done after 60 s ({lost} no-op workers declared lost)",
                info.tasks_done
            )
            .into());
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}
