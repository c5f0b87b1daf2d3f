//! A network partition, in-process: three driver replicas whose Raft links go
//! through a switch that can cut them, two real workers, real gRPC on 127.0.0.1.
//! The leader cut off from the majority stops scheduling, the majority elects a
//! new one, the job finishes right, and no task is placed twice.

// Test scaffolding: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{local_csv, tpch_tables, Q3, TOKEN};
use regatta_scheduler::driver::{DriverHandle, DriverOptions, Planner, ReplicationOptions};
use regatta_scheduler::raft::LinkCuts;
use regatta_scheduler::TaskStatus;
use regatta_worker::{Worker, WorkerOptions};

async fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_cut_off_from_the_majority_stops_and_the_majority_goes_on() {
    let d = tempfile::tempdir().unwrap();
    let tables = tpch_tables(d.path(), 150_000, 6);
    let expected = local_csv(&tables, Q3);

    // Three distinct ports: each listener is held until all are picked (a
    // port freed at once may be handed out again).
    let held: Vec<std::net::TcpListener> = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let members: BTreeMap<u64, String> = (1..=3)
        .zip(&held)
        .map(|(i, l)| (i, l.local_addr().unwrap().to_string()))
        .collect();
    drop(held);
    let cuts = Arc::new(LinkCuts::default());
    let mut drivers = Vec::new();
    for (id, address) in &members {
        let options = DriverOptions {
            token: TOKEN.into(),
            replication: Some(ReplicationOptions {
                node_id: *id,
                members: members.clone(),
                advertise: String::new(),
                data_dir: d.path().join(format!("node-{id}")),
                cluster_id: "partition".into(),
                heartbeat: Duration::from_millis(50),
                cuts: cuts.clone(),
            }),
            // The job reads its tables from the temp directory.
            access: regatta_common::AccessPolicy {
                local_roots: Some(vec![std::env::temp_dir()]),
                ..regatta_common::AccessPolicy::cluster()
            },
            ..DriverOptions::default()
        };
        drivers.push(
            DriverHandle::start(address, options, Planner::default())
                .await
                .unwrap(),
        );
    }
    let all = members.values().cloned().collect::<Vec<_>>().join(",");
    let mut workers = Vec::new();
    for i in 0..2 {
        workers.push(
            Worker::start(WorkerOptions {
                driver: all.clone(),
                token: TOKEN.into(),
                cpus: Some(2),
                spill_dirs: vec![d.path().join(format!("w{i}"))],
                ..WorkerOptions::default()
            })
            .await
            .unwrap(),
        );
    }
    wait_until("a leader", Duration::from_secs(10), || {
        drivers.iter().any(|h| h.driver.is_leader())
    })
    .await;

    let client = regatta::ClusterClient::connect(&all, TOKEN).await.unwrap();
    let named: Vec<(&str, &str)> = tables.iter().map(|t| t.split_once('=').unwrap()).collect();
    let job = client.submit_sql("q3", Q3, &named).await.unwrap().job_id;
    let old = drivers.iter().position(|h| h.driver.is_leader()).unwrap();
    let old_id = old as u64 + 1;
    wait_until("the first stage", Duration::from_secs(60), || {
        drivers[old].driver.with_state(|s| {
            s.job(regatta_common::JobId(job))
                .is_some_and(|j| j.tasks_done() >= 1)
        })
    })
    .await;

    // Cut the leader off from both peers (workers and clients still reach it).
    let others: Vec<u64> = (1..=3).filter(|i| *i != old_id).collect();
    cuts.isolate(old_id, &others);
    let cut_at = Instant::now();
    wait_until("the cut-off leader to stop", Duration::from_secs(3), || {
        !drivers[old].driver.is_leader()
    })
    .await;
    wait_until(
        "a new leader in the majority",
        Duration::from_secs(5),
        || {
            drivers
                .iter()
                .enumerate()
                .any(|(i, h)| i != old && h.driver.is_leader())
        },
    )
    .await;
    eprintln!("new leader after {:?}", cut_at.elapsed());
    // Nothing the cut-off replica holds gets committed while it is cut off.
    let frozen = drivers[old].driver.with_state(|s| s.applied());
    let end = client.watch(job, |_| {}).await.unwrap();
    assert_eq!(end.status().word(), "succeeded", "{end:?}");
    let rows = client.results(job).await.unwrap();
    assert_eq!(
        drivers[old].driver.with_state(|s| s.applied()),
        frozen,
        "the cut-off replica applied commands"
    );
    let mut csv = Vec::new();
    regatta_cli::write_batches(&mut csv, &rows, regatta_cli::PrintFormat::Csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert_eq!(csv, expected, "Q3's rows across the partition");

    // Healed, the old leader catches up and agrees; every task ran once.
    cuts.heal();
    let new = drivers.iter().position(|h| h.driver.is_leader()).unwrap();
    let target = drivers[new].driver.with_state(|s| s.applied());
    wait_until(
        "the old leader to catch up",
        Duration::from_secs(10),
        || drivers[old].driver.with_state(|s| s.applied()) >= target,
    )
    .await;
    for h in &drivers {
        h.driver.with_state(|s| {
            let j = s.job(regatta_common::JobId(job)).unwrap();
            assert_eq!(j.status.word(), "succeeded");
            for st in j.stages.values() {
                for t in &st.tasks {
                    assert!(matches!(t.status, TaskStatus::Done { .. }));
                    assert_eq!(
                        t.launches,
                        1 + t.failures + t.input_failures,
                        "a task was placed twice: {t:?}"
                    );
                }
            }
        });
    }
    drop(workers);
}
