//! regatta on a real local Ray 2.60 cluster (a head with 2 CPUs, a node with 1
//! CPU and two fake GPUs, ids 3 and 5; token auth). `scripts/test` starts it in a
//! network namespace with `scripts/ray-cluster.sh run` and runs these ignored
//! tests there; they read REGATTA_RAY_ADDRESS, REGATTA_RAY_TOKEN and
//! REGATTA_RAY_CLUSTER (the script, to kill and add nodes).

// Test scaffolding: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{
    images, local_csv, ok, output, regatta, start, tpch_tables, with_tables, JobLine, Proc,
    WorkerLine, Q3, TOKEN, W1,
};

/// The tests share one Ray cluster: one at a time.
static RAY: Mutex<()> = Mutex::new(());

struct RayCluster {
    address: String,
    token: String,
    script: String,
}

fn ray_cluster() -> RayCluster {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run these tests through scripts/test (or scripts/ray-cluster.sh run)")
        })
    };
    RayCluster {
        address: var("REGATTA_RAY_ADDRESS"),
        token: var("REGATTA_RAY_TOKEN"),
        script: var("REGATTA_RAY_CLUSTER"),
    }
}

impl RayCluster {
    /// `regatta` with Ray's address and token.
    fn regatta(&self) -> Command {
        let mut c = regatta();
        c.env("REGATTA_RAY_TOKEN", &self.token);
        c
    }

    /// A driver whose workers Ray launches; returns it once they registered.
    fn driver(&self, extra: &[&str]) -> RayDriver {
        let mut cmd = self.regatta();
        cmd.args(["driver", "--bind", "127.0.0.1:0", "--ray", &self.address])
            .args(extra);
        let (proc, line) = start(cmd, "listening on");
        RayDriver {
            address: line.rsplit(' ').next().unwrap().to_string(),
            proc,
        }
    }

    /// `GET /api/jobs/`, as anyone allowed to list jobs sees it.
    fn jobs_listing(&self) -> serde_json::Value {
        let out = ok(Command::new("curl")
            .args(["-sS", "--max-time", "10", "-H"])
            .arg(format!("Authorization: Bearer {}", self.token))
            .arg(format!("{}/api/jobs/", self.address)));
        serde_json::from_str(&out).unwrap()
    }

    /// `GET /api/jobs/`: (submission id, status) of every job.
    fn jobs(&self) -> Vec<(String, String)> {
        let v = self.jobs_listing();
        v.as_array()
            .unwrap()
            .iter()
            .map(|j| {
                (
                    j["submission_id"].as_str().unwrap_or("").to_string(),
                    j["status"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    fn script(&self, args: &[&str]) {
        ok(Command::new(&self.script).args(args));
    }
}

/// A driver process whose workers run on Ray.
struct RayDriver {
    address: String,
    proc: Proc,
}

impl RayDriver {
    fn cli(&self) -> Command {
        let mut c = regatta();
        c.env("REGATTA_DRIVER", &self.address);
        c
    }

    fn workers(&self) -> Vec<WorkerLine> {
        WorkerLine::parse_all(&ok(self.cli().arg("cluster")))
    }

    fn csv(&self, tables: &[String], sql: &str) -> String {
        let mut cmd = self.cli();
        cmd.args(["submit", "-f", "csv"]);
        ok(with_tables(&mut cmd, tables).arg(sql))
    }

    /// Ends the driver as an operator would (SIGTERM) and waits for it; returns
    /// the prefix of its Ray jobs' ids.
    fn stop(mut self) -> String {
        let pid = self.proc.0.id();
        ok(Command::new("kill").args(["-TERM", &pid.to_string()]));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.proc.0.try_wait().unwrap() {
                assert!(status.success(), "the driver exited with {status}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the driver did not stop within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        format!("regatta-{pid}-")
    }
}

/// Pids of Ray-launched regatta workers still running (their command line
/// names a `ray:` node label).
fn ray_worker_processes() -> Vec<u32> {
    common::processes_where(|args| {
        args.iter().any(|a| a == "worker") && args.iter().any(|a| a.starts_with("ray:"))
    })
}

/// After a driver stopped: none of its Ray jobs is left running (each is
/// stopped or deleted), and no Ray-launched worker process remains.
fn assert_cleaned_up(ray: &RayCluster, prefix: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let running: Vec<(String, String)> = ray
            .jobs()
            .into_iter()
            .filter(|(id, status)| {
                id.starts_with(prefix)
                    && !matches!(status.as_str(), "STOPPED" | "SUCCEEDED" | "FAILED")
            })
            .collect();
        let workers = ray_worker_processes();
        if running.is_empty() && workers.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "20 s after the driver stopped: jobs {running:?}, worker processes {workers:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Both Ray nodes have a worker: the head's (2 CPUs) and the GPU node's.
/// Neither the cluster token nor Ray's own is in what Ray lists of the running
/// regatta jobs; their runtime_env names the secrets package instead.
fn assert_no_secret_listed(ray: &RayCluster) {
    let listing = ray.jobs_listing();
    let running: Vec<&serde_json::Value> = listing
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| {
            j["submission_id"]
                .as_str()
                .unwrap_or("")
                .starts_with("regatta-")
                && j["status"] == "RUNNING"
        })
        .collect();
    assert!(!running.is_empty(), "no running regatta job: {listing}");
    for job in running {
        let text = job.to_string();
        assert!(!text.contains(TOKEN), "the cluster token is listed: {text}");
        assert!(!text.contains(&ray.token), "Ray's token is listed: {text}");
        let modules = &job["runtime_env"]["py_modules"];
        assert!(
            modules.as_array().is_some_and(|m| m.len() == 1),
            "no secrets package: {text}"
        );
    }
}

fn assert_one_worker_per_node(driver: &RayDriver) -> Vec<WorkerLine> {
    let workers: Vec<WorkerLine> = driver.workers().into_iter().filter(|w| w.alive).collect();
    assert_eq!(workers.len(), 2, "{workers:?}");
    let labels: std::collections::BTreeSet<&str> =
        workers.iter().map(|w| w.node_label.as_str()).collect();
    assert_eq!(labels.len(), 2, "{workers:?}");
    assert!(labels.iter().all(|l| l.starts_with("ray:")), "{workers:?}");
    workers
}

#[test]
#[ignore = "needs a Ray cluster: scripts/test runs it"]
fn w3b_and_w1_through_ray_launched_workers_match_the_local_engine() {
    let _one = RAY.lock().unwrap_or_else(|p| p.into_inner());
    let ray = ray_cluster();
    let d = tempfile::tempdir().unwrap();
    let tpch = tpch_tables(d.path(), 20_000, 3);
    let pictures = vec![images(d.path(), 30)];
    let (q3_local, w1_local) = (local_csv(&tpch, Q3), local_csv(&pictures, W1));
    let driver = ray.driver(&[]);
    assert_one_worker_per_node(&driver);
    // The workers registered: they read the token from the secrets package.
    assert_no_secret_listed(&ray);
    assert_eq!(driver.csv(&tpch, Q3), q3_local);
    assert_eq!(driver.csv(&pictures, W1), w1_local);
    // Both workers took part.
    let busy = driver
        .workers()
        .iter()
        .filter(|w| !w.line.contains("done 0 "))
        .count();
    assert_eq!(busy, 2, "{:?}", driver.workers());
    let prefix = driver.stop();
    assert_cleaned_up(&ray, &prefix);
}

#[test]
#[ignore = "needs a Ray cluster: scripts/test runs it"]
fn job_per_node_mode_runs_w3b_and_stops_every_job() {
    let _one = RAY.lock().unwrap_or_else(|p| p.into_inner());
    let ray = ray_cluster();
    let d = tempfile::tempdir().unwrap();
    let tpch = tpch_tables(d.path(), 20_000, 3);
    let local = local_csv(&tpch, Q3);
    let driver = ray.driver(&["--ray-launch", "job-per-node"]);
    assert_one_worker_per_node(&driver);
    assert_no_secret_listed(&ray);
    assert_eq!(driver.csv(&tpch, Q3), local);
    let prefix = driver.stop();
    assert_cleaned_up(&ray, &prefix);
}

#[test]
#[ignore = "needs a Ray cluster: scripts/test runs it"]
fn fake_gpus_reach_the_workers_and_their_model_actors_as_distinct_devices() {
    let _one = RAY.lock().unwrap_or_else(|p| p.into_inner());
    let ray = ray_cluster();
    let d = tempfile::tempdir().unwrap();
    let texts: Vec<String> = (0..48)
        .map(|i| format!("a small boat number {i} at sunset"))
        .collect();
    let docs = common::docs_table(d.path(), &texts, 4);
    let sql = common::EMBED_SQL;
    let local = ok(regatta().args(["sql", "-f", "json", "-t", &docs, sql]));
    let driver = ray.driver(&[]);
    let workers = assert_one_worker_per_node(&driver);
    // Ray reserved both GPUs of the GPU node for its worker and told it which
    // (CUDA_VISIBLE_DEVICES); the head's worker holds none.
    let mut gpus: Vec<Vec<String>> = workers.iter().map(|w| w.gpu_ids.clone()).collect();
    gpus.sort();
    let mut on_gpu_node = gpus[1].clone();
    on_gpu_node.sort();
    assert_eq!(gpus[0], Vec::<String>::new(), "{workers:?}");
    assert_eq!(on_gpu_node, vec!["3", "5"], "{workers:?}");
    // Until every model actor on the GPU worker ran, embed (the results agree
    // with the local engine's each time).
    let deadline = Instant::now() + Duration::from_secs(120);
    let devices = loop {
        let mut cmd = driver.cli();
        let remote = ok(cmd.args(["submit", "-f", "json", "-t", &docs, sql]));
        common::assert_same_embeddings(&local, &remote, 48, "");
        std::thread::sleep(Duration::from_millis(700));
        let gpu_worker = driver
            .workers()
            .into_iter()
            .find(|w| !w.gpu_ids.is_empty())
            .unwrap();
        if gpu_worker.actor_devices.len() >= 2 || Instant::now() > deadline {
            break gpu_worker.actor_devices;
        }
    };
    // One actor per GPU, each on its own device, named by physical id.
    let mut held: Vec<String> = devices
        .iter()
        .map(|d| d.rsplit("GPU ").next().unwrap().to_string())
        .collect();
    held.sort();
    assert_eq!(held, vec!["3", "5"], "{devices:?}");
    let prefix = driver.stop();
    assert_cleaned_up(&ray, &prefix);
}

#[test]
#[ignore = "needs a Ray cluster: scripts/test runs it"]
fn node_loss_during_w3b_still_gives_the_right_answer_and_a_new_node_gets_a_worker() {
    let _one = RAY.lock().unwrap_or_else(|p| p.into_inner());
    let ray = ray_cluster();
    let d = tempfile::tempdir().unwrap();
    let tpch = tpch_tables(d.path(), 150_000, 6);
    let local = local_csv(&tpch, Q3);
    let driver = ray.driver(&[]);
    let before = assert_one_worker_per_node(&driver);
    let mut cmd = driver.cli();
    cmd.args(["submit", "--detach"]);
    let job: u64 = ok(with_tables(&mut cmd, &tpch).arg(Q3))
        .trim()
        .parse()
        .unwrap();
    // Once the GPU node's worker runs tasks, that machine goes.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let busy = driver
            .workers()
            .iter()
            .any(|w| !w.gpu_ids.is_empty() && w.running > 0);
        if busy {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the GPU node's worker never ran a task"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    ray.script(&["kill-node", "1"]);
    let end = common::poll_job(
        || {
            let mut c = driver.cli();
            c.args(["jobs", "status", &job.to_string()]);
            c
        },
        Duration::from_secs(240),
        JobLine::finished,
        false,
    );
    assert_eq!(end.status, "succeeded", "{}", end.line);
    let mut cmd = driver.cli();
    let rows = ok(cmd.args(["jobs", "results", &job.to_string(), "-f", "csv"]));
    assert_eq!(rows, local);
    let lost = driver.workers();
    assert_eq!(lost.iter().filter(|w| !w.alive).count(), 1, "{lost:?}");
    // A node that joins gets a worker within seconds.
    ray.script(&["add-node", "1", "3,5"]);
    let joined = Instant::now();
    loop {
        let alive: Vec<WorkerLine> = driver.workers().into_iter().filter(|w| w.alive).collect();
        let new = alive
            .iter()
            .any(|w| before.iter().all(|b| b.node_label != w.node_label));
        if new && alive.len() == 2 {
            break;
        }
        assert!(
            joined.elapsed() < Duration::from_secs(60),
            "no worker on the new node after 60 s: {alive:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "a worker registered from the new node {:?} after it joined",
        joined.elapsed()
    );
    let prefix = driver.stop();
    assert_cleaned_up(&ray, &prefix);
}

#[test]
#[ignore = "needs a Ray cluster: scripts/test runs it"]
fn submit_ray_runs_the_driver_as_a_ray_job_and_prints_the_rows() {
    let _one = RAY.lock().unwrap_or_else(|p| p.into_inner());
    let ray = ray_cluster();
    let d = tempfile::tempdir().unwrap();
    let tpch = tpch_tables(d.path(), 20_000, 3);
    let local = local_csv(&tpch, Q3);
    let mut cmd = ray.regatta();
    cmd.args(["submit", "--ray", &ray.address, "-f", "csv"]);
    let (success, out, err) = output(with_tables(&mut cmd, &tpch).arg(Q3));
    assert!(success, "{err}");
    assert_eq!(out, local, "{err}");
    assert!(err.contains("submitted Ray job regatta-"), "{err}");
    // The driver job stopped its workers' jobs; its own was deleted.
    let left: Vec<(String, String)> = ray
        .jobs()
        .into_iter()
        .filter(|(id, s)| {
            id.starts_with("regatta-") && !matches!(s.as_str(), "STOPPED" | "SUCCEEDED" | "FAILED")
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(ray_worker_processes().is_empty());
}

#[test]
#[ignore = "needs a Ray cluster: scripts/test runs it"]
fn a_wrong_token_and_a_request_no_node_can_hold_fail_clearly_and_soon() {
    let _one = RAY.lock().unwrap_or_else(|p| p.into_inner());
    let ray = ray_cluster();
    let mut cmd = regatta();
    cmd.env("REGATTA_RAY_TOKEN", "not-the-token").args([
        "driver",
        "--bind",
        "127.0.0.1:0",
        "--ray",
        &ray.address,
    ]);
    let (success, err, _) = common::run_within(cmd, Duration::from_secs(30));
    assert!(!success);
    assert!(
        err.contains("refused the token (403)") && err.contains(&ray.address),
        "{err}"
    );
    // Eight GPUs per worker: no node has them, and Ray would wait forever.
    let d = tempfile::tempdir().unwrap();
    let config = d.path().join("ray.toml");
    std::fs::write(&config, "[ray]\nworker_gpus = 8\n").unwrap();
    let mut cmd = ray.regatta();
    cmd.args(["driver", "-c"])
        .arg(&config)
        .args(["--bind", "127.0.0.1:0", "--ray", &ray.address]);
    let (success, err, took) = common::run_within(cmd, Duration::from_secs(30));
    assert!(!success);
    assert!(
        err.contains("can ever hold a worker reserving CPU all of the node's, GPU 8")
            && err.contains("ray.worker_gpus"),
        "{err}"
    );
    eprintln!("refused in {took:?}");
    // Nothing was submitted for either.
    assert!(ray_worker_processes().is_empty());
}
