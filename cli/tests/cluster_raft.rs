//! Three real driver processes replicating through Raft, two workers, all on
//! 127.0.0.1: a leader killed with SIGKILL mid-job loses no job and no row, all
//! three restarted keep every job, and a replica of another cluster is refused.

// Test scaffolding: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{local_csv, ok, output, regatta, start, tpch_tables, JobLine, Proc, Q1, Q3};

/// The tests start many processes; one at a time keeps them fast on 2 cores.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Three driver replicas and two workers sharing one cluster file.
struct Replicated {
    config: PathBuf,
    addresses: Vec<String>,
    drivers: Vec<Option<Proc>>,
    workers: Vec<Proc>,
}

fn write_config(dir: &Path, id: &str, token_note: &str, addresses: &[String]) -> PathBuf {
    let list = addresses
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let path = dir.join(format!("cluster-{id}{token_note}.toml"));
    std::fs::write(
        &path,
        format!(
            "[cluster]\nid = \"{id}\"\n\n[driver]\naddresses = [{list}]\ndata_dir = \"{}\"\n\
             raft_heartbeat_ms = 100\nworker_timeout_ms = 4000\n\n[worker]\ncpus = 2\n",
            dir.join("raft").display()
        ),
    )
    .unwrap();
    path
}

impl Replicated {
    fn start(dir: &Path) -> Self {
        let addresses: Vec<String> = (0..3)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let config = write_config(dir, "test", "", &addresses);
        let mut c = Self {
            config,
            addresses,
            drivers: vec![None, None, None],
            workers: Vec::new(),
        };
        for i in 0..3 {
            c.start_driver(i);
        }
        for i in 0..2 {
            let spill = dir.join(format!("w{i}"));
            std::fs::create_dir_all(&spill).unwrap();
            let mut cmd = regatta();
            cmd.args(["worker", "-c"])
                .arg(&c.config)
                .arg("--spill-dir")
                .arg(&spill);
            c.workers.push(start(cmd, "serving shuffle data").0);
        }
        c
    }

    fn start_driver(&mut self, i: usize) {
        let mut cmd = regatta();
        cmd.args(["driver", "-c"]).arg(&self.config).args([
            "--node-id",
            &(i + 1).to_string(),
            "--bind",
            &self.addresses[i],
        ]);
        self.drivers[i] = Some(start(cmd, "listening on").0);
    }

    /// `regatta ARGS -c <cluster file>`.
    fn cli(&self, args: &[&str]) -> Command {
        let mut c = regatta();
        c.args(args).arg("-c").arg(&self.config);
        c
    }

    /// `regatta drivers`, as (node, role, term) rows; None while it fails.
    fn drivers_now(&self) -> Option<Vec<(usize, String, u64)>> {
        let (ok, out, _) = output(&mut self.cli(&["drivers"]));
        ok.then(|| {
            out.lines()
                .skip(1)
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    let node = f.first()?.strip_prefix("node-")?.parse().ok()?;
                    Some((node, f.get(2)?.to_string(), f.get(3)?.parse().ok()?))
                })
                .collect()
        })
    }

    fn drivers(&self) -> Vec<(usize, String, u64)> {
        self.drivers_now().expect("regatta drivers failed")
    }

    /// The leader's index (0-based), waiting for one to be elected.
    fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let leader = self
                .drivers_now()
                .and_then(|rows| rows.into_iter().find(|r| r.1 == "leader"));
            if let Some((node, _, _)) = leader {
                return node - 1;
            }
            assert!(Instant::now() < deadline, "no leader elected");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill_driver(&mut self, i: usize) {
        if let Some(mut p) = self.drivers[i].take() {
            p.0.kill().unwrap(); // SIGKILL
            let _ = p.0.wait();
        }
    }

    fn job(&self, job: u64) -> JobLine {
        JobLine::parse(&ok(&mut self.cli(&["jobs", "status", &job.to_string()])))
    }

    fn wait_for(&self, job: u64, timeout: Duration, done: impl Fn(&JobLine) -> bool) -> JobLine {
        let status = || self.cli(&["jobs", "status", &job.to_string()]);
        common::poll_job(status, timeout, done, true)
    }

    fn submit(&self, tables: &[String], sql: &str, extra: &[&str]) -> Command {
        let mut cmd = self.cli(&["submit"]);
        cmd.args(extra);
        common::with_tables(&mut cmd, tables).arg(sql);
        cmd
    }
}

#[test]
fn a_leader_killed_in_the_middle_of_w3b_loses_no_job() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let tables = tpch_tables(d.path(), 150_000, 6);
    let expected = local_csv(&tables, Q3);
    let expected_q1 = local_csv(&tables, Q1);
    let mut c = Replicated::start(d.path());
    let first = c.leader();

    // The client follows the job while its leader dies.
    let mut client = c
        .submit(&tables, Q3, &["-f", "csv"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(d.path().join("client.err")).unwrap())
        .spawn()
        .unwrap();
    // The job's id is the one the client was given: a submit retried across a
    // leader change may skip an id.
    let submitted = Instant::now();
    let err_path = d.path().join("client.err");
    let job = loop {
        let err = std::fs::read_to_string(&err_path).unwrap_or_default();
        let id = err
            .split("submitted job-")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|id| id.parse::<u64>().ok());
        if let Some(id) = id {
            break id;
        }
        if let Some(status) = client.try_wait().unwrap() {
            panic!("the W3b client ended ({status}) before its job existed: {err}");
        }
        assert!(
            submitted.elapsed() < Duration::from_secs(60),
            "no job 60 s after the submit; the client says: {err}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let at_kill = c.wait_for(job, Duration::from_secs(60), |j| j.stages_done >= 1);
    assert_eq!(
        at_kill.status, "running",
        "finished before the kill: {at_kill:?}"
    );
    // A job acknowledged just before the leader dies.
    let acked: u64 = ok(&mut c.submit(&tables, Q1, &["--detach"]))
        .trim()
        .parse()
        .unwrap();
    let killed_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    c.kill_driver(first);
    let killed_at = Instant::now();

    let mut rows = String::new();
    client
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut rows)
        .unwrap();
    assert!(client.wait().unwrap().success(), "the client failed");
    assert_eq!(rows, expected, "W3b's rows after the failover");

    let second = c.leader();
    assert_ne!(second, first);
    eprintln!("failover and job done in {:?}", killed_at.elapsed());
    let end = c.wait_for(acked, Duration::from_secs(60), JobLine::finished);
    assert_eq!(end.status, "succeeded", "{}", end.line);
    let (_, q1_rows, _) = output(&mut c.cli(&["jobs", "results", &acked.to_string(), "-f", "csv"]));
    assert_eq!(q1_rows, expected_q1, "the acknowledged job's rows");
    // Every driver still up agrees on the jobs.
    let roles = c.drivers();
    assert_eq!(
        roles.iter().filter(|r| r.1 == "leader").count(),
        1,
        "{roles:?}"
    );
    assert_eq!(
        roles.iter().filter(|r| r.1 == "unreachable").count(),
        1,
        "{roles:?}"
    );
    // The new leader says when it first placed tasks: after the kill (what
    // benches/raft_failover.py measures the failover by).
    let (_, table, _) = output(&mut c.cli(&["drivers"]));
    let placed: u64 = table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(2) == Some(&"leader"))
        .and_then(|f| f.get(7)?.parse().ok())
        .unwrap_or_else(|| panic!("no leader's first_placed_ms in {table}"));
    assert!(
        placed >= killed_unix_ms,
        "the new leader placed first at {placed}, before the kill at {killed_unix_ms}: {table}"
    );
}

#[test]
fn all_three_drivers_restarted_keep_finished_jobs_and_resume_running_ones() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let tables = tpch_tables(d.path(), 150_000, 6);
    let expected_q1 = local_csv(&tables, Q1);
    let expected_q3 = local_csv(&tables, Q3);
    let mut c = Replicated::start(d.path());
    c.leader();
    let done: u64 = ok(&mut c.submit(&tables, Q1, &["--detach"]))
        .trim()
        .parse()
        .unwrap();
    c.wait_for(done, Duration::from_secs(60), JobLine::finished);
    let running: u64 = ok(&mut c.submit(&tables, Q3, &["--detach"]))
        .trim()
        .parse()
        .unwrap();
    let at_kill = c.wait_for(running, Duration::from_secs(60), |j| j.tasks_done >= 1);
    assert_eq!(
        at_kill.status, "running",
        "finished before the kill: {at_kill:?}"
    );
    for i in 0..3 {
        c.kill_driver(i);
    }
    // An outage longer than a worker's 10 s start-up wait for a driver: workers
    // keep their tasks and shuffle files and look for a leader meanwhile, for
    // `worker.driver_patience_secs` (60 s by default). Watched until it has
    // lasted 11 s, every worker still running throughout.
    let down = Instant::now();
    common::wait_until("an 11 s outage", Duration::from_secs(30), || {
        for w in &mut c.workers {
            assert!(
                w.0.try_wait().unwrap().is_none(),
                "a worker ended in the outage"
            );
        }
        down.elapsed() >= Duration::from_secs(11)
    });
    for i in 0..3 {
        c.start_driver(i);
    }
    c.leader();
    let before = c.job(done);
    assert_eq!(before.status, "succeeded", "{}", before.line);
    // A refusal through Raft keeps its type: an unknown job is NotFound, as on
    // a lone driver (not FailedPrecondition).
    let (success, _, err) = output(&mut c.cli(&["jobs", "cancel", "999"]));
    assert!(
        !success && err.contains("NotFound") && err.contains("job-999"),
        "{err}"
    );
    let (_, rows, _) = output(&mut c.cli(&["jobs", "results", &done.to_string(), "-f", "csv"]));
    assert_eq!(rows, expected_q1, "a finished job's rows after the restart");
    let end = c.wait_for(running, Duration::from_secs(90), JobLine::finished);
    assert_eq!(end.status, "succeeded", "{}", end.line);
    let (_, rows, _) = output(&mut c.cli(&["jobs", "results", &running.to_string(), "-f", "csv"]));
    assert_eq!(rows, expected_q3, "the resumed job's rows");
}

#[test]
fn a_leader_killed_while_a_job_writes_lance_writes_every_row_once() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let tables = tpch_tables(d.path(), 150_000, 6);
    let mut c = Replicated::start(d.path());
    let first = c.leader();
    let out = d.path().join("joined.lance");
    let sql = "SELECT l_orderkey, l_linenumber, o_custkey, l_extendedprice \
               FROM lineitem JOIN orders ON l_orderkey = o_orderkey";
    let expected: u64 = local_csv(
        &tables,
        "SELECT count(*) AS n FROM lineitem JOIN orders ON l_orderkey = o_orderkey",
    )
    .lines()
    .nth(1)
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    let job: u64 = ok(&mut c.submit(&tables, sql, &["--detach", "-o", out.to_str().unwrap()]))
        .trim()
        .parse()
        .unwrap();
    let at_kill = c.wait_for(job, Duration::from_secs(60), |j| j.stages_done >= 1);
    assert_eq!(
        at_kill.status, "running",
        "finished before the kill: {at_kill:?}"
    );
    c.kill_driver(first);
    let end = c.wait_for(job, Duration::from_secs(90), JobLine::finished);
    assert_eq!(end.status, "succeeded", "{}", end.line);
    assert_eq!(end.rows, expected, "{}", end.line);
    // The dataset holds each joined row once: as many rows as the join, and as
    // many distinct (order, line) keys.
    let counted = common::local_csv(
        &[format!("t={}", out.display())],
        "SELECT count(*) AS n, count(DISTINCT l_orderkey * 100 + l_linenumber) AS k FROM t",
    );
    assert_eq!(
        counted.lines().nth(1).unwrap(),
        format!("{expected},{expected}")
    );
    // Committed once by whichever leader got there: one version, and no data
    // file of an attempt that was not committed.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (versions, referenced) = rt.block_on(async {
        let ds = regatta_engine::io::lance::open(out.to_str().unwrap())
            .await
            .unwrap();
        let files: usize = ds
            .get_fragments()
            .iter()
            .map(|f| f.metadata().files.len())
            .sum();
        (ds.versions().await.unwrap().len(), files)
    });
    assert_eq!(versions, 1);
    assert_eq!(
        std::fs::read_dir(out.join("data")).unwrap().count(),
        referenced
    );
}

#[test]
fn a_driver_of_another_cluster_or_token_is_refused_and_does_not_join() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let c = Replicated::start(d.path());
    c.leader();
    // A fourth replica that names the same peers but another cluster id.
    let mut addresses = c.addresses.clone();
    addresses.push(format!("127.0.0.1:{}", free_port()));
    let other = d.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let wrong_id = write_config(&other, "another", "", &addresses);
    let (ok_, _, err) = output(regatta().args(["driver", "-c"]).arg(&wrong_id).args([
        "--node-id",
        "4",
        "--bind",
        &addresses[3],
    ]));
    assert!(!ok_, "a driver of another cluster started");
    assert!(
        err.contains("cluster.id") || err.contains("belongs to cluster"),
        "{err}"
    );
    // The same cluster id with another token.
    let same_id = write_config(&other, "test", "-token", &addresses);
    let (ok_, _, err) = output(
        regatta()
            .env("REGATTA_TOKEN", "not-the-token")
            .args(["driver", "-c"])
            .arg(&same_id)
            .args(["--node-id", "4", "--bind", &addresses[3]]),
    );
    assert!(!ok_, "a driver with another token started");
    assert!(err.contains("cluster.token"), "{err}");
    // Neither joined: still three members, one leader.
    let roles = c.drivers();
    assert_eq!(roles.len(), 3, "{roles:?}");
}

#[test]
fn a_replica_is_added_and_removed_with_regatta_drivers() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let c = Replicated::start(d.path());
    c.leader();
    let fourth = format!("127.0.0.1:{}", free_port());
    let mut cmd = regatta();
    cmd.args(["driver", "-c"])
        .arg(&c.config)
        .args(["--node-id", "4", "--join", "--bind", &fourth]);
    let _joiner = start(cmd, "listening on").0;
    ok(&mut c.cli(&["drivers", "add", "4", &fourth]));
    let roles = c.drivers();
    assert_eq!(roles.len(), 4, "{roles:?}");
    let listed = ok(&mut c.cli(&["drivers"]));
    let row = listed
        .lines()
        .find(|l| l.starts_with("node-4"))
        .unwrap_or_else(|| panic!("{listed}"));
    // A voter, caught up; under load it may already have won an election.
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert!(
        matches!(fields.get(2), Some(&"follower" | &"leader")) && fields.get(6) == Some(&"yes"),
        "{row}"
    );
    ok(&mut c.cli(&["drivers", "remove", "4"]));
    let listed = ok(&mut c.cli(&["drivers"]));
    assert!(!listed.contains("node-4"), "{listed}");
    // Removing a replica that is not a member says so.
    let (ok_, _, err) = output(&mut c.cli(&["drivers", "remove", "9"]));
    assert!(!ok_ && err.contains("not a member"), "{err}");
}

/// A worker's credential is replicated (as a digest), so a leader change opens
/// no window: the new leader refuses a forged call on a worker's id before the
/// worker has even found it (the worker is stopped, SIGSTOP, across the
/// change), and the worker, resumed, keeps working with the credential it has.
#[test]
fn a_new_leader_refuses_forged_calls_on_a_worker_that_has_not_found_it_yet() {
    use regatta::proto::worker_control_client::WorkerControlClient;
    use regatta::proto::{HeartbeatRequest, TokenInterceptor};
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let table = common::table(d.path(), "t", "id", 2, "SELECT 1 AS id UNION ALL SELECT 2");
    let mut c = Replicated::start(d.path());
    let first = c.leader();
    let listing = |c: &Replicated| common::WorkerLine::parse_all(&ok(&mut c.cli(&["cluster"])));
    common::wait_until("both workers registered", Duration::from_secs(30), || {
        listing(&c).iter().filter(|w| w.alive).count() == 2
    });
    let ids: Vec<u64> = listing(&c)
        .iter()
        .filter_map(|w| {
            w.line
                .strip_prefix("worker-")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    let signal = |sig: &str, pid: u32| {
        let s = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap();
        assert!(s.success(), "kill {sig} {pid}");
    };
    let stopped: Vec<u32> = c.workers.iter().map(|w| w.0.id()).collect();
    for pid in &stopped {
        signal("-STOP", *pid);
    }
    c.kill_driver(first);
    let mut second = first;
    common::wait_until("a new leader", Duration::from_secs(30), || {
        let elected = c.drivers_now().and_then(|rows| {
            rows.into_iter()
                .find(|r| r.1 == "leader" && r.0 != first + 1)
        });
        if let Some((node, _, _)) = elected {
            second = node - 1;
        }
        second != first
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let refused = rt.block_on(async {
        let channel = regatta::proto::endpoint(&c.addresses[second], None)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut forger =
            WorkerControlClient::with_interceptor(channel, TokenInterceptor::new(common::TOKEN));
        let mut codes = Vec::new();
        for id in &ids {
            let beat = HeartbeatRequest {
                worker_id: *id,
                ..HeartbeatRequest::default()
            };
            codes.push(
                forger
                    .heartbeat(beat)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.code()),
            );
        }
        codes
    });
    for pid in &stopped {
        signal("-CONT", *pid);
    }
    assert_eq!(
        refused,
        vec![Err(tonic::Code::PermissionDenied); 2],
        "the new leader took forged heartbeats on worker ids {ids:?}"
    );
    // The workers, resumed, find the new leader with the credentials they hold.
    let mut run = c.submit(&[table], "SELECT sum(id) AS s FROM t", &["-f", "csv"]);
    let rows = ok(&mut run);
    assert_eq!(rows.lines().nth(1), Some("3"), "{rows}");
    common::wait_until("both workers alive again", Duration::from_secs(30), || {
        listing(&c).iter().filter(|w| w.alive).count() == 2
    });
}
