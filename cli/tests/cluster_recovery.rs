//! A real driver and worker processes on 127.0.0.1 under stress: a worker killed
//! mid-job, a cancelled job, many jobs in a row, and too little memory.

// Test scaffolding: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{cluster, cluster_with, local_csv, tpch_tables, WorkerSetup, Q1, Q3};

/// These tests time what workers do; run them one at a time so they do not slow
/// each other down on a small machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn a_worker_killed_in_the_middle_of_w3b_costs_retries_not_the_answer() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let tables = tpch_tables(d.path(), 150_000, 6);
    let expected = local_csv(&tables, Q3);
    let mut c = cluster(&d.path().join("spill"));

    // The client waits for the job and prints its rows, while the worker dies.
    let mut submit = c.cli();
    submit.args(["submit", "-f", "csv"]);
    common::with_tables(&mut submit, &tables);
    let mut client = submit
        .arg(Q3)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Once the first stage is done, its outputs are spread over the workers and the
    // later stages still need them.
    let at_kill = c.wait_for(1, Duration::from_secs(60), |j| j.stages_done >= 1);
    assert_eq!(
        at_kill.status, "running",
        "finished before the kill: {at_kill:?}"
    );
    c.workers[0].0.kill().unwrap(); // SIGKILL

    let mut rows = String::new();
    client
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut rows)
        .unwrap();
    assert!(client.wait().unwrap().success());
    assert_eq!(rows, expected);

    let end = c.job(1);
    assert_eq!(end.status, "succeeded", "{}", end.line);
    // The lost map outputs are recomputed. Whether a task was also running on
    // the killed worker (and so retried) depends on the moment of the kill,
    // which the test cannot pin under load; the recomputation is certain.
    assert!(end.recomputed >= 1, "no recomputed outputs: {}", end.line);
    let workers = c.workers();
    assert_eq!(
        workers.iter().filter(|w| !w.alive).count(),
        1,
        "{workers:?}"
    );
}

#[test]
fn cancelling_stops_tasks_everywhere_within_2s_and_20_jobs_leave_nothing() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let tables = tpch_tables(d.path(), 30_000, 6);
    let c = cluster(&d.path().join("spill"));

    // A join of every customer with every line: far too long to finish.
    let job = c.submit_detached(
        &tables,
        "SELECT count(*) FROM customer, lineitem WHERE c_custkey * 7 % 1000 < l_quantity",
    );
    assert_eq!(job, 1);
    // Wait until every worker says it is running some of it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let w = c.workers();
        if w.iter().all(|w| w.reported > 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tasks never ran everywhere: {w:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !c.shuffle_dirs().is_empty(),
        "the running job wrote no shuffle files"
    );

    let cancelled = Instant::now();
    let j = common::JobLine::parse(&common::ok(c.cli().args(["jobs", "cancel", "1"])));
    assert_eq!(j.status, "cancelled", "{}", j.line);
    // Every worker says it runs nothing (heartbeats come every 500 ms), and the job's
    // shuffle files are gone.
    loop {
        let w = c.workers();
        let idle = w.iter().all(|w| w.reported == 0 && w.running == 0);
        if idle && c.shuffle_dirs().is_empty() {
            eprintln!("idle everywhere {:?} after the cancel", cancelled.elapsed());
            break;
        }
        assert!(
            cancelled.elapsed() < Duration::from_secs(2),
            "still running {:?} after cancel: {w:?} {:?}",
            cancelled.elapsed(),
            c.shuffle_dirs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Twenty more jobs, each with a shuffle, and nothing stays behind.
    let expected = local_csv(&tables, Q1);
    for i in 0..20 {
        assert_eq!(c.csv(&tables, Q1), expected, "job {}", i + 2);
    }
    let jobs = common::ok(c.cli().arg("jobs"));
    assert_eq!(jobs.matches("succeeded").count(), 20, "{jobs}");
    // Their results stay on the workers until deleted; then nothing is left.
    c.delete_all_jobs();
    assert!(c.spill_files().is_empty(), "{:?}", c.spill_files());
}

#[test]
fn a_group_by_orderkey_over_a_small_memory_limit_spills_and_is_right() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let tables = tpch_tables(d.path(), 100_000, 3);
    let sql = "SELECT count(*) AS orders, sum(lines) AS lines, sum(qty) AS qty, \
               sum(length(comments)) AS comment_bytes FROM ( \
               SELECT l_orderkey, count(*) AS lines, sum(l_quantity) AS qty, \
               string_agg(l_comment, '|') AS comments FROM lineitem GROUP BY l_orderkey)";
    let expected = local_csv(&tables, sql);
    let c = cluster_with(
        &d.path().join("spill"),
        WorkerSetup {
            count: 2,
            cpus: 2,
            memory_limit: Some("8MiB"),
            ..WorkerSetup::default()
        },
    );
    assert_eq!(c.csv(&tables, sql), expected);
    let j = c.job(1);
    assert!(j.spilled_bytes > 0, "nothing spilled: {}", j.line);
}

/// A server on 127.0.0.1 that accepts connections and never answers: a
/// download from it hangs as long as its timeout allows (a stand-in for a
/// decoder stuck on a hostile file, on real sockets).
struct SilentServer {
    port: u16,
}

impl SilentServer {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming().flatten() {
                held.push(conn); // kept open, never written to
            }
        });
        Self { port }
    }
}

/// One row whose download hangs for ten minutes, in one Parquet file.
fn hanging_table(dir: &std::path::Path, server: &SilentServer) -> (String, String) {
    let url = format!("http://127.0.0.1:{}/poison.jpg", server.port);
    let table = common::table(
        dir,
        "poison",
        "id",
        1,
        &format!("SELECT 1 AS id, '{url}' AS url"),
    );
    let file = dir.join("poison/part-0.parquet").display().to_string();
    (table, file)
}

const HANG: &str =
    "SELECT id, length(url_download(url, 'raise', 600000, 0, 600000)) AS n FROM poison";

/// The worker ids of a `regatta cluster` listing's workers that run a task.
fn busy_workers(c: &common::Cluster) -> Vec<usize> {
    c.workers()
        .iter()
        .filter(|w| w.alive && w.running > 0)
        .filter_map(|w| {
            w.line
                .split_whitespace()
                .next()
                .and_then(|id| id.strip_prefix("worker-"))
                .and_then(|n| n.parse().ok())
        })
        .collect()
}

#[test]
fn a_task_whose_workers_die_under_it_fails_the_job_after_the_limit_and_spares_the_rest() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let server = SilentServer::start();
    let (table, file) = hanging_table(d.path(), &server);
    let mut c = cluster_with(
        &d.path().join("spill"),
        WorkerSetup {
            count: 3,
            cpus: 1,
            max_task_failures: Some(2),
            ..WorkerSetup::default()
        },
    );
    let job = c.submit_detached(std::slice::from_ref(&table), HANG);
    // Each worker that takes the task dies (as one would on an input that
    // aborts its process): after two, the job fails instead of taking the third.
    let mut killed = Vec::new();
    while killed.len() < 2 {
        let mut busy = Vec::new();
        common::wait_until("a worker runs the task", Duration::from_secs(60), || {
            busy = busy_workers(&c)
                .into_iter()
                .filter(|w| !killed.contains(w))
                .collect();
            !busy.is_empty()
        });
        let id = busy[0];
        c.workers[id - 1].0.kill().unwrap();
        c.workers[id - 1].0.wait().unwrap();
        killed.push(id);
    }
    let end = c.wait_for(job, Duration::from_secs(60), common::JobLine::finished);
    assert_eq!(end.status, "failed", "{}", end.line);
    let said = end.line.clone();
    assert!(said.contains("worker lost"), "{said}");
    let alive: Vec<_> = c.workers().into_iter().filter(|w| w.alive).collect();
    assert_eq!(alive.len(), 1, "only the worker it never reached is left");
    assert_eq!(alive[0].running, 0);
    // The failure names what the task read.
    assert!(said.contains(&file), "{said}");
}

#[test]
fn a_stuck_task_is_ended_by_the_task_timeout_and_fails_its_job_naming_it() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let server = SilentServer::start();
    let (table, _) = hanging_table(d.path(), &server);
    let c = cluster_with(
        &d.path().join("spill"),
        WorkerSetup {
            count: 1,
            cpus: 1,
            max_task_failures: Some(2),
            task_timeout_secs: Some(2),
            ..WorkerSetup::default()
        },
    );
    let started = Instant::now();
    let job = c.submit_detached(std::slice::from_ref(&table), HANG);
    let end = c.wait_for(job, Duration::from_secs(90), common::JobLine::finished);
    assert_eq!(end.status, "failed", "{}", end.line);
    assert!(
        started.elapsed() < Duration::from_secs(80),
        "two 2-second attempts took {:?}",
        started.elapsed()
    );
    let said = &end.line;
    assert!(
        said.contains("timed out") && said.contains("task_timeout_secs"),
        "{said}"
    );
    // The worker is still there, idle, for the next job.
    let w = &c.workers()[0];
    assert!(w.alive && w.running == 0, "{}", w.line);
}
