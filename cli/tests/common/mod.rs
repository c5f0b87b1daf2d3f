//! Shared by the cluster tests: real driver and worker processes on 127.0.0.1, and
//! small data sets written by the local engine.

#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod data;
pub mod prometheus;
pub use data::*;

pub const TOKEN: &str = "test-token";

/// The `regatta` binary with the test token and no driver from the environment.
/// Its drivers let jobs read the tests' data: files under the temp directory
/// and servers on loopback (a cluster's default policy refuses both; the
/// access tests start theirs with [`regatta_strict`]).
pub fn regatta() -> Command {
    let mut c = regatta_strict();
    c.env("REGATTA_ACCESS_ALLOW_NETWORKS", "127.0.0.0/8")
        .env("REGATTA_ACCESS_LOCAL_ROOTS", test_data_roots());
    c
}

/// Where the tests' jobs read files: the temp directory, the fetched sample
/// data under `models/` (or where `REGATTA_PHOTOS_DIR` says).
fn test_data_roots() -> std::ffi::OsString {
    let mut roots = vec![
        std::env::temp_dir(),
        regatta_common::manifest_dir!().join("../models"),
    ];
    roots.extend(std::env::var_os("REGATTA_PHOTOS_DIR").map(PathBuf::from));
    std::env::join_paths(roots).unwrap()
}

/// [`regatta`] without the test's widening of the access policy.
pub fn regatta_strict() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_regatta"));
    c.env("REGATTA_TOKEN", TOKEN)
        .env_remove("REGATTA_DRIVER")
        .env_remove("REGATTA_RAY_ADDRESS")
        .env_remove("REGATTA_ACCESS_ALLOW_NETWORKS")
        .env_remove("REGATTA_ACCESS_LOCAL_ROOTS");
    c
}

/// A child process killed when the test ends, pass or fail.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a process and returns it with the first stdout line containing `marker`.
pub fn start(cmd: Command, marker: &str) -> (Proc, String) {
    let (proc, mut lines) = start_lines(cmd, marker);
    let last = lines.pop().unwrap_or_default();
    (proc, last)
}

/// Starts a process and returns it with its stdout lines up to and including
/// the first containing `marker`.
pub fn start_lines(mut cmd: Command, marker: &str) -> (Proc, Vec<String>) {
    // REGATTA_TEST_LOG_DIR keeps every process's log, to read after a failure;
    // else it goes to an unnamed file, shown if the process dies before ready.
    let log = match std::env::var_os("REGATTA_TEST_LOG_DIR") {
        Some(dir) => {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let name = format!("{}-{n:03}.log", std::process::id());
            std::fs::File::create(Path::new(&dir).join(name)).unwrap()
        }
        None => tempfile::tempfile().unwrap(),
    };
    let stderr = Stdio::from(log.try_clone().unwrap());
    let mut child = cmd.stdout(Stdio::piped()).stderr(stderr).spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    let proc = Proc(child);
    let mut seen = Vec::new();
    loop {
        let Some(line) = lines.next() else {
            use std::io::{Read, Seek};
            let mut log = log;
            let mut text = String::new();
            let _ = log.seek(std::io::SeekFrom::Start(0));
            let _ = log.read_to_string(&mut text);
            let tail: String = text
                .chars()
                .rev()
                .take(3000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            panic!("process exited before it was ready; stdout {seen:?}; stderr ends:\n{tail}");
        };
        let line = line.unwrap();
        let done = line.contains(marker);
        seen.push(line);
        if done {
            return (proc, seen);
        }
    }
}

/// A driver and its workers, stopped when dropped.
pub struct Cluster {
    pub driver: String,
    pub spill: PathBuf,
    pub driver_proc: Proc,
    pub workers: Vec<Proc>,
}

/// Worker settings for [`cluster_with`].
#[derive(Clone)]
pub struct WorkerSetup {
    pub count: usize,
    pub cpus: u32,
    /// `worker.memory_limit` (e.g. "256MiB"); the default when None.
    pub memory_limit: Option<&'static str>,
    /// The driver's `driver.result_retention_secs`; the default when None.
    pub result_retention_secs: Option<u64>,
    /// The driver's `driver.task_memory` (e.g. "256MiB"); the default when None.
    pub task_memory: Option<&'static str>,
    /// The driver's `driver.max_task_failures`; the default when None.
    pub max_task_failures: Option<u32>,
    /// The driver's `driver.task_timeout_secs`; none when None.
    pub task_timeout_secs: Option<u64>,
}

impl Default for WorkerSetup {
    fn default() -> Self {
        Self {
            count: 3,
            cpus: 2,
            memory_limit: None,
            result_retention_secs: None,
            task_memory: None,
            max_task_failures: None,
            task_timeout_secs: None,
        }
    }
}

/// A driver and three workers with 2 CPUs each, spilling under `spill/w<i>`.
pub fn cluster(spill: &Path) -> Cluster {
    cluster_with(spill, WorkerSetup::default())
}

pub fn cluster_with(spill: &Path, setup: WorkerSetup) -> Cluster {
    let mut cmd = regatta();
    cmd.args(["driver", "--bind", "127.0.0.1:0"]);
    let mut driver_toml = String::new();
    if let Some(secs) = setup.result_retention_secs {
        driver_toml.push_str(&format!("result_retention_secs = {secs}\n"));
    }
    if let Some(memory) = setup.task_memory {
        driver_toml.push_str(&format!("task_memory = \"{memory}\"\n"));
    }
    if let Some(n) = setup.max_task_failures {
        driver_toml.push_str(&format!("max_task_failures = {n}\n"));
    }
    if let Some(secs) = setup.task_timeout_secs {
        driver_toml.push_str(&format!("task_timeout_secs = {secs}\n"));
    }
    if !driver_toml.is_empty() {
        std::fs::create_dir_all(spill).unwrap();
        let config = spill.join("driver.toml");
        std::fs::write(&config, format!("[driver]\n{driver_toml}")).unwrap();
        cmd.arg("-c").arg(config);
    }
    let (driver_proc, line) = start(cmd, "listening on");
    let address = line.rsplit(' ').next().unwrap().to_string();
    let mut workers = Vec::new();
    for i in 0..setup.count {
        let dir = spill.join(format!("w{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.with_extension("toml");
        let mut toml = format!("[worker]\ncpus = {}\n", setup.cpus);
        if let Some(limit) = setup.memory_limit {
            toml.push_str(&format!("memory_limit = \"{limit}\"\n"));
        }
        std::fs::write(&config, toml).unwrap();
        let mut cmd = regatta();
        cmd.args(["worker", "-c"])
            .arg(&config)
            .args(["--driver", &address, "--spill-dir"])
            .arg(&dir);
        workers.push(start(cmd, "serving shuffle data").0);
    }
    Cluster {
        driver: address,
        spill: spill.to_path_buf(),
        driver_proc,
        workers,
    }
}

impl Cluster {
    /// `regatta` aimed at this cluster's driver.
    pub fn cli(&self) -> Command {
        let mut c = regatta();
        c.env("REGATTA_DRIVER", &self.driver);
        c
    }

    /// Submits `sql` without waiting; returns the job number.
    pub fn submit_detached(&self, tables: &[String], sql: &str) -> u64 {
        let mut cmd = self.cli();
        cmd.args(["submit", "--detach"]);
        ok(with_tables(&mut cmd, tables).arg(sql))
            .trim()
            .parse()
            .unwrap()
    }

    /// `regatta jobs status N`, parsed.
    pub fn job(&self, job: u64) -> JobLine {
        JobLine::parse(&ok(self.cli().args(["jobs", "status", &job.to_string()])))
    }

    /// Polls job `job` (which may not be submitted yet) until `done` holds of it, or
    /// panics after `timeout`.
    pub fn wait_for(
        &self,
        job: u64,
        timeout: Duration,
        done: impl Fn(&JobLine) -> bool,
    ) -> JobLine {
        let status = || {
            let mut c = self.cli();
            c.args(["jobs", "status", &job.to_string()]);
            c
        };
        poll_job(status, timeout, done, false)
    }

    /// `regatta cluster`, parsed: one entry per worker.
    pub fn workers(&self) -> Vec<WorkerLine> {
        WorkerLine::parse_all(&ok(self.cli().arg("cluster")))
    }

    /// Drops every job's kept results (`regatta jobs delete`), then waits until
    /// the workers have removed their files.
    pub fn delete_all_jobs(&self) {
        let listing = ok(self.cli().arg("jobs"));
        for line in listing.lines().filter(|l| l.starts_with("job-")) {
            let id = line
                .split_whitespace()
                .next()
                .unwrap()
                .trim_start_matches("job-");
            ok(self.cli().args(["jobs", "delete", id]));
        }
        // Files go first, then their job directories: wait for both.
        wait_until(
            "the workers remove every file and job directory after the jobs are deleted",
            Duration::from_secs(10),
            || self.spill_files().is_empty() && self.shuffle_dirs().is_empty(),
        );
    }

    /// Files (not directories) left under the workers' spill directories,
    /// but for each worker's owner token and directory lock.
    pub fn spill_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![self.spill.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_none_or(|x| x != "toml")
                    && !p.ends_with("driver.toml")
                    && !p.ends_with(".owner-token")
                    && !p.ends_with(".lock")
                {
                    out.push(p);
                }
            }
        }
        out
    }

    /// Job directories left under the workers' shuffle roots
    /// (`<spill>/w<i>/worker-<random>/shuffle/<job>`).
    pub fn shuffle_dirs(&self) -> Vec<PathBuf> {
        let entries = |d: &Path| {
            std::fs::read_dir(d)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .collect::<Vec<_>>()
        };
        let mut out = Vec::new();
        for own in entries(&self.spill).iter().flat_map(|w| entries(w)) {
            let shuffle = own.join("shuffle");
            out.extend(
                std::fs::read_dir(&shuffle)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir()),
            );
        }
        out
    }
}

/// Polls `cond` every 50 ms until it holds, or panics naming `what` once
/// `limit` has passed.
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not after {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One `regatta jobs` line: `job-N STATUS NAME tasks a/b stages c/d retried r
/// recomputed m rows n spilled s B 1.23s`.
#[derive(Debug, Clone)]
pub struct JobLine {
    pub line: String,
    pub status: String,
    pub tasks_done: u32,
    pub stages_done: u32,
    pub retried: u32,
    pub recomputed: u32,
    pub rows: u64,
    pub spilled_bytes: u64,
}

/// The number after `key` in `line` (`a/b` gives a).
fn after(line: &str, key: &str) -> u64 {
    let words: Vec<&str> = line.split_whitespace().collect();
    let i = words
        .iter()
        .position(|w| *w == key)
        .unwrap_or_else(|| panic!("no {key} in {line}"));
    words[i + 1].split('/').next().unwrap().parse().unwrap()
}

impl JobLine {
    pub fn parse(line: &str) -> Self {
        let line = line.trim().to_string();
        let status = line.split_whitespace().nth(1).unwrap().to_string();
        Self {
            status,
            tasks_done: after(&line, "tasks") as u32,
            stages_done: after(&line, "stages") as u32,
            retried: after(&line, "retried") as u32,
            recomputed: after(&line, "recomputed") as u32,
            rows: after(&line, "rows"),
            spilled_bytes: after(&line, "spilled"),
            line,
        }
    }

    pub fn finished(&self) -> bool {
        !matches!(self.status.as_str(), "queued" | "running")
    }

    /// The status as the protocol's enum.
    pub fn state(&self) -> regatta::proto::JobStatus {
        regatta::proto::JobStatus::from_word(&self.status)
    }
}

/// One `regatta cluster` line.
#[derive(Debug, Clone)]
pub struct WorkerLine {
    pub line: String,
    pub alive: bool,
    /// Tasks the driver has placed there.
    pub running: u32,
    /// Tasks the worker says it runs.
    pub reported: u32,
    /// Tasks it finished.
    pub tasks_done: u64,
    pub models_loaded: u64,
    /// Where a launcher started it (`ray:<node id>`), from its `node` line.
    pub node_label: String,
    /// Its GPUs' physical ids, from its `gpus` line.
    pub gpu_ids: Vec<String>,
    /// `model actor N: GPU x` for each model actor holding GPUs.
    pub actor_devices: Vec<String>,
}

impl WorkerLine {
    pub fn parse(line: &str) -> Self {
        Self {
            alive: line.split_whitespace().nth(1) == Some("alive"),
            running: after(line, "running") as u32,
            reported: after(line, "reported") as u32,
            tasks_done: after(line, "done"),
            models_loaded: after(line, "loaded"),
            line: line.to_string(),
            node_label: String::new(),
            gpu_ids: Vec::new(),
            actor_devices: Vec::new(),
        }
    }

    /// Every worker of a `regatta cluster` listing, with its indented lines.
    pub fn parse_all(listing: &str) -> Vec<Self> {
        let mut all: Vec<Self> = Vec::new();
        for line in listing.lines() {
            let detail = line.trim_start();
            match (line.starts_with("    "), all.last_mut()) {
                (true, Some(w)) => {
                    if let Some(l) = detail.strip_prefix("node ") {
                        w.node_label = l.to_string();
                    } else if let Some(g) = detail.strip_prefix("gpus ") {
                        w.gpu_ids = g.split(',').map(String::from).collect();
                    } else if let Some(a) = detail.strip_prefix("actor ") {
                        w.actor_devices.push(a.to_string());
                    }
                }
                _ if line.starts_with("worker-") => all.push(Self::parse(line)),
                _ => {}
            }
        }
        all
    }
}

/// Runs `status` (a `regatta jobs status N`) until `done` holds of its line, or
/// panics after `timeout`. A failed call must be NotFound (not submitted yet)
/// unless `any_error_is_transient` (drivers changing leader).
pub fn poll_job(
    status: impl Fn() -> Command,
    timeout: Duration,
    done: impl Fn(&JobLine) -> bool,
    any_error_is_transient: bool,
) -> JobLine {
    let deadline = Instant::now() + timeout;
    loop {
        let (success, out, err) = output(&mut status());
        let seen = if success {
            let j = JobLine::parse(&out);
            if done(&j) {
                return j;
            }
            j.line
        } else {
            assert!(any_error_is_transient || err.contains("NotFound"), "{err}");
            err
        };
        assert!(Instant::now() < deadline, "timed out waiting on {seen}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn output(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

pub fn ok(cmd: &mut Command) -> String {
    let (success, out, err) = output(cmd);
    assert!(success, "{out}\n{err}");
    out
}

/// Runs `cmd` to its end, failing the test if it takes over `limit`; returns
/// (success, stderr, time taken).
pub fn run_within(mut cmd: Command, limit: Duration) -> (bool, String, Duration) {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return (status.success(), err, started.elapsed());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("still running after {limit:?}: it should have ended by then");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Pids of live (not zombie) processes whose arguments satisfy `args`.
pub fn processes_where(args: impl Fn(&[String]) -> bool) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let zombie = std::fs::read_to_string(e.path().join("stat"))
            .map(|s| s.rsplit(") ").next().unwrap_or("").starts_with('Z'))
            .unwrap_or(true);
        let argv: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).to_string())
            .collect();
        if !zombie && args(&argv) {
            pids.push(pid);
        }
    }
    pids
}

/// Saves the browser's screenshot as `name` under
/// `target/tmp/dashboard-screenshots` (not committed), checking it is a PNG.
pub fn save_screenshot(b: &regatta_tests::webdriver::Browser, name: &str) {
    let png = b.screenshot().unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
}
