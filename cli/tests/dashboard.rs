//! The dashboard and the Prometheus endpoints on a real driver and worker
//! processes, looked at in real headless Chromium (Debian's chromium and
//! chromedriver, installed by scripts/test), and the listener rules: beyond
//! loopback only with a token; with a token, every request carries it.

// Test scaffolding: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::prometheus::{self, value};
use common::{
    images, ok, output, regatta, save_screenshot, start, start_lines, wait_until, Proc, W1,
};
use regatta_tests::webdriver::Browser;
use regatta_tests::{free_port, http};

/// A driver that keeps its state on disk (a one-replica Raft log, so a restart
/// keeps the jobs) with its dashboard on a known port, and its workers.
struct Watched {
    dir: PathBuf,
    grpc: String,
    dashboard: String,
    config: PathBuf,
    driver: Option<Proc>,
    workers: Vec<Proc>,
}

impl Watched {
    /// Every process gets the tests' token (`common::regatta` sets it).
    fn start(dir: &Path, workers: usize) -> Self {
        let dashboard = format!("127.0.0.1:{}", free_port());
        let config = dir.join("cluster.toml");
        let toml = format!("[driver]\ndashboard_bind = \"{dashboard}\"\n");
        std::fs::write(&config, toml).unwrap();
        let mut w = Watched {
            dir: dir.to_path_buf(),
            grpc: format!("127.0.0.1:{}", free_port()),
            dashboard,
            config,
            driver: None,
            workers: Vec::new(),
        };
        w.start_driver();
        for i in 0..workers {
            let spill = dir.join(format!("w{i}"));
            std::fs::create_dir_all(&spill).unwrap();
            let mut cmd = regatta();
            cmd.args(["worker", "-c"])
                .arg(&w.config)
                .args(["--driver", &w.grpc, "--cpus", "2", "--spill-dir"])
                .arg(&spill);
            w.workers.push(start(cmd, "serving shuffle data").0);
        }
        w
    }

    fn start_driver(&mut self) {
        let mut cmd = regatta();
        cmd.args(["driver", "-c"])
            .arg(&self.config)
            .args(["--bind", &self.grpc, "--data-dir"])
            .arg(self.dir.join("raft"));
        let (proc, lines) = start_lines(cmd, "listening on");
        let url = format!("http://{}/", self.dashboard);
        assert!(
            lines
                .iter()
                .any(|l| l == &format!("regatta dashboard at {url}")),
            "the driver did not print its dashboard URL: {lines:?}"
        );
        self.driver = Some(proc);
    }

    fn cli(&self) -> Command {
        let mut c = regatta();
        c.env("REGATTA_DRIVER", &self.grpc);
        c
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.dashboard)
    }

    /// GET `path` on the dashboard listener with the token.
    fn get(&self, path: &str) -> http::Reply {
        http::get(&self.dashboard, path, &[("Authorization", &bearer())]).unwrap()
    }
}

fn bearer() -> String {
    format!("Bearer {}", common::TOKEN)
}

fn browser() -> Browser {
    Browser::start(1400, 1000).unwrap_or_else(|e| {
        panic!("{e}: the browser tests need Debian's chromium and chromium-driver (scripts/setup.sh installs them)")
    })
}

/// `regatta jobs stages N`'s operator lines: (stage, rows in, rows out).
fn cli_operators(w: &Watched, job: u64) -> Vec<(u64, u64, u64)> {
    let text = ok(w.cli().args(["jobs", "stages", &job.to_string()]));
    let mut lines = text
        .lines()
        .skip_while(|l| !l.starts_with("stage  operator"));
    lines.next();
    lines
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let n = words.len();
            (
                words[0].parse().unwrap(),
                words[n - 4].parse().unwrap(),
                words[n - 3].parse().unwrap(),
            )
        })
        .collect()
}

/// The job page's operator rows: (stage, rows in, rows out), in page order.
fn page_operators(b: &Browser) -> Vec<(u64, u64, u64)> {
    let v = b
        .eval(
            "return [...document.querySelectorAll('#operators tr[data-operator]')].map(r => [\
               Number(r.dataset.operator.split(':')[0]),\
               Number(r.querySelector('.rows-in').dataset.value),\
               Number(r.querySelector('.rows-out').dataset.value)]);",
        )
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let r = r.as_array().unwrap();
            (
                r[0].as_u64().unwrap(),
                r[1].as_u64().unwrap(),
                r[2].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_dashboard_follows_a_w1_job_its_workers_a_lost_worker_and_a_restart() {
    let d = tempfile::tempdir().unwrap();
    let tables = [images(d.path(), 600)];
    let mut w = Watched::start(d.path(), 2);
    let b = browser();
    // The browser presents the token once; the cookie it gets does the rest.
    b.open(&w.url(&format!("/?token={}", common::TOKEN)))
        .unwrap();
    b.wait_for(
        "the jobs page",
        Duration::from_secs(20),
        "return document.getElementById('jobs') !== null;",
    )
    .unwrap();

    // A W1 job, watched from its page while it runs.
    let mut submit = w.cli();
    submit.args(["submit", "--detach", "-t", &tables[0], W1]);
    let job: u64 = ok(&mut submit).trim().parse().unwrap();
    b.open(&w.url(&format!("/jobs/{job}"))).unwrap();
    let mut seen: Vec<f64> = Vec::new();
    wait_until(
        "the job page reaches 100 %",
        Duration::from_secs(180),
        || {
            let p = b
            .eval("const e = document.getElementById('job-progress'); return e ? Number(e.dataset.value) : null;")
            .unwrap();
            if let Some(p) = p.as_f64() {
                if seen.last() != Some(&p) {
                    seen.push(p);
                }
            }
            seen.last() == Some(&1.0)
        },
    );
    assert!(
        seen.windows(2).all(|s| s[0] <= s[1]),
        "progress went back: {seen:?}"
    );
    assert!(
        seen.iter().any(|p| *p > 0.0 && *p < 1.0),
        "the page never showed the job part done: {seen:?}"
    );
    b.wait_for(
        "the job succeeded",
        Duration::from_secs(30),
        "return document.querySelector('h1 .badge.succeeded') !== null;",
    )
    .unwrap();
    // Each operator's rows on the page are the job's own (as `regatta jobs
    // stages` reads them over gRPC), and the last stage's root gave out the
    // job's result rows.
    let cli_ops = cli_operators(&w, job);
    assert!(cli_ops.len() >= 6, "{cli_ops:?}");
    b.wait_for(
        "every operator",
        Duration::from_secs(10),
        &format!(
            "return document.querySelectorAll('#operators tr[data-operator]').length === {};",
            cli_ops.len()
        ),
    )
    .unwrap();
    assert_eq!(page_operators(&b), cli_ops);
    let (_, rows, _) = output(
        w.cli()
            .args(["jobs", "results", &job.to_string(), "-f", "csv"]),
    );
    let result_rows = rows.lines().count() as u64 - 1;
    let last_stage = cli_ops.iter().map(|o| o.0).max().unwrap();
    let root = cli_ops.iter().find(|o| o.0 == last_stage).unwrap();
    assert_eq!(root.2, result_rows, "{cli_ops:?}");
    save_screenshot(&b, "job.png");

    // The workers page lists both, with their CPUs.
    b.open(&w.url("/workers")).unwrap();
    b.wait_for(
        "two live workers with 2 CPUs each",
        Duration::from_secs(10),
        "return document.querySelectorAll('#workers tr[data-alive=\"true\"][data-cpus=\"2\"]').length === 2;",
    )
    .unwrap();
    save_screenshot(&b, "workers.png");

    // A worker killed while a job runs: the workers page shows it lost, the
    // job page its retried tasks and where they failed.
    let mut submit = w.cli();
    submit.args(["submit", "--detach", "-t", &tables[0], W1]);
    let second: u64 = ok(&mut submit).trim().parse().unwrap();
    b.open(&w.url(&format!("/jobs/{second}"))).unwrap();
    let busy = b
        .wait_for(
            "a worker running a task of the second job",
            Duration::from_secs(60),
            "const r = [...document.querySelectorAll('#task-workers tr[data-worker-id]')]\
               .find(r => Number(r.children[1].textContent) > 0);\
             return r ? Number(r.dataset.workerId) : null;",
        )
        .unwrap()
        .as_u64()
        .unwrap();
    // Workers registered in order: worker-1 is the first process started.
    let victim = (busy - 1) as usize;
    w.workers.remove(victim);
    b.wait_for(
        "the lost task noted on the job page",
        Duration::from_secs(60),
        &format!(
            "const f = document.getElementById('failures'); \
             return f !== null && f.textContent.includes('lost with worker-{busy}') \
               && Number(document.getElementById('job-retried').textContent) > 0;"
        ),
    )
    .unwrap();
    b.wait_for(
        "the second job succeeded on the other worker",
        Duration::from_secs(180),
        "return document.querySelector('h1 .badge.succeeded') !== null;",
    )
    .unwrap();
    b.open(&w.url("/workers")).unwrap();
    b.wait_for(
        "the killed worker shown lost",
        Duration::from_secs(30),
        &format!(
            "const r = document.querySelector('#workers tr[data-worker-id=\"{busy}\"]'); \
             return r !== null && r.dataset.alive === 'false';"
        ),
    )
    .unwrap();

    // The driver restarted: both finished jobs are still listed.
    w.driver = None;
    w.start_driver();
    b.open(&w.url("/")).unwrap();
    b.wait_for(
        "both jobs listed as succeeded after the restart",
        Duration::from_secs(60),
        &format!(
            "return document.querySelector('#jobs tr[data-job-id=\"{job}\"][data-status=\"succeeded\"]') !== null \
               && document.querySelector('#jobs tr[data-job-id=\"{second}\"][data-status=\"succeeded\"]') !== null;"
        ),
    )
    .unwrap();
    save_screenshot(&b, "jobs.png");
}

#[test]
fn metrics_parse_as_prometheus_text_and_agree_with_the_job() {
    let d = tempfile::tempdir().unwrap();
    let tables = [images(d.path(), 60)];
    let w = Watched::start(d.path(), 2);
    let rows = ok(w.cli().args(["submit", "-f", "csv", "-t", &tables[0], W1]));
    let result_rows = rows.lines().count() as f64 - 1.0;
    let docs = std::fs::read_to_string(regatta_common::manifest_dir!().join("../docs/metrics.md"))
        .unwrap();

    let reply = w.get("/metrics");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text; version=1.0.0"));
    assert!(reply.body.ends_with("# EOF\n"), "{}", reply.body);
    let (_, samples) = prometheus::parse(&reply.body);
    for (name, _, _) in &samples {
        assert!(
            docs.contains(&format!("`{name}`")),
            "{name} is not in docs/metrics.md"
        );
    }
    assert_eq!(
        value(&samples, "regatta_jobs", &[("status", "succeeded")]),
        1.0
    );
    assert_eq!(
        value(&samples, "regatta_job_rows_out_total", &[("job", "1")]),
        result_rows
    );
    assert_eq!(
        value(&samples, "regatta_workers", &[("state", "alive")]),
        2.0
    );
    assert_eq!(value(&samples, "regatta_driver_is_leader", &[]), 1.0);
    let done = value(
        &samples,
        "regatta_job_tasks",
        &[("job", "1"), ("state", "done")],
    );
    assert!(done >= 3.0, "{done}");
    // The last stage's root operator gave out the result rows.
    let stages: Vec<u64> = samples
        .iter()
        .filter(|s| s.0 == "regatta_operator_rows_out_total")
        .map(|s| s.1["stage"].parse().unwrap())
        .collect();
    let last = stages.iter().max().unwrap().to_string();
    assert_eq!(
        value(
            &samples,
            "regatta_operator_rows_out_total",
            &[("job", "1"), ("stage", &last), ("operator", "0")]
        ),
        result_rows
    );

    // Each worker's own endpoint: their finished tasks add up to the job's.
    let overview: serde_json::Value = serde_json::from_str(&w.get("/api/overview").body).unwrap();
    let mut tasks = 0.0;
    let mut rows_written = 0.0;
    for worker in overview["workers"].as_array().unwrap() {
        let address = worker["metrics_address"].as_str().unwrap();
        assert!(!address.is_empty(), "{worker}");
        let reply = http::get(address, "/metrics", &[("Authorization", &bearer())]).unwrap();
        assert_eq!(reply.status, 200);
        let (_, samples) = prometheus::parse(&reply.body);
        for (name, _, _) in &samples {
            assert!(
                docs.contains(&format!("`{name}`")),
                "{name} is not in docs/metrics.md"
            );
        }
        tasks += value(&samples, "regatta_tasks_total", &[("outcome", "succeeded")]);
        rows_written += value(&samples, "regatta_rows_written_total", &[]);
        assert!(value(&samples, "regatta_memory_limit_bytes", &[]) > 0.0);
    }
    assert_eq!(
        tasks, done,
        "the workers' finished tasks against the driver's"
    );
    assert!(
        rows_written >= result_rows,
        "{rows_written} < {result_rows}"
    );
}

#[test]
fn with_a_token_every_dashboard_and_metrics_request_needs_it() {
    let d = tempfile::tempdir().unwrap();
    let token = common::TOKEN;
    let w = Watched::start(d.path(), 1);
    let bearer = bearer();
    for path in ["/", "/metrics", "/api/overview"] {
        let r = http::get(&w.dashboard, path, &[]).unwrap();
        assert_eq!(r.status, 401, "{path} without the token: {}", r.body);
        assert!(!r.body.contains(token));
        let r = http::get(&w.dashboard, path, &[("Authorization", "Bearer wrong")]).unwrap();
        assert_eq!(r.status, 401, "{path} with a wrong token");
        let r = http::get(&w.dashboard, path, &[("Authorization", &bearer)]).unwrap();
        assert_eq!(r.status, 200, "{path} with the token");
    }
    // A browser opens the page once with ?token=: it gets a cookie and an
    // address without the token, and the cookie lets it in.
    let r = http::get(&w.dashboard, &format!("/?token={token}"), &[]).unwrap();
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/"));
    let set_cookie = r.header("set-cookie").unwrap().to_string();
    // A stand-in for the token, scoped to this site and hidden from scripts:
    // cookies reach every port of the host, the token must not.
    assert!(!set_cookie.contains(token), "{set_cookie}");
    assert!(
        set_cookie.contains("HttpOnly; SameSite=Strict"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let r = http::get(&w.dashboard, "/api/overview", &[("Cookie", &cookie)]).unwrap();
    assert_eq!(r.status, 200);
    // The page never shows the token.
    assert!(!r.body.contains(token), "{}", r.body);
    // The worker's endpoint too.
    let overview: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let address = overview["workers"][0]["metrics_address"].as_str().unwrap();
    assert_eq!(http::get(address, "/metrics", &[]).unwrap().status, 401);
    assert_eq!(
        http::get(address, "/metrics", &[("Authorization", &bearer)])
            .unwrap()
            .status,
        200
    );
}

#[test]
fn listeners_beyond_loopback_without_a_token_refuse_to_start() {
    let d = tempfile::tempdir().unwrap();
    // No token anywhere (common::regatta() sets one in the environment). The
    // addresses are TEST-NET-1's (RFC 5737), assigned to no interface here: were
    // the check missing, binding would fail with a different error, and nothing
    // can ever listen beyond loopback from this test.
    let bare = || {
        let mut c = regatta();
        c.env_remove("REGATTA_TOKEN");
        c
    };
    let (ok_, _, err) = output(bare().args(["driver", "--bind", "192.0.2.10:7700"]));
    assert!(!ok_);
    assert!(
        err.contains("192.0.2.10:7700")
            && err.contains("driver.bind")
            && err.contains("cluster.token"),
        "{err}"
    );
    let (ok_, _, err) = output(bare().args([
        "worker",
        "--bind",
        "192.0.2.10:0",
        "--driver",
        "127.0.0.1:1",
    ]));
    assert!(!ok_);
    assert!(
        err.contains("192.0.2.10:0")
            && err.contains("worker.bind")
            && err.contains("cluster.token"),
        "{err}"
    );
    // From the file: the dashboard and a worker's metrics endpoint.
    for (section, key) in [("driver", "dashboard_bind"), ("worker", "metrics_bind")] {
        let config = d.path().join(format!("{key}.toml"));
        std::fs::write(&config, format!("[{section}]\n{key} = \"192.0.2.10:9\"\n")).unwrap();
        let role = if section == "driver" {
            "driver"
        } else {
            "worker"
        };
        let (ok_, _, err) = output(bare().args([role, "-c"]).arg(&config));
        assert!(!ok_);
        assert!(
            err.contains("192.0.2.10:9") && err.contains(&format!("{section}.{key}")),
            "{err}"
        );
    }
}

#[test]
fn regatta_dashboard_serves_local_work_with_its_own_workers_until_stopped() {
    let d = tempfile::tempdir().unwrap();
    let dashboard = format!("127.0.0.1:{}", free_port());
    let config = d.path().join("cluster.toml");
    std::fs::write(
        &config,
        format!("[driver]\ndashboard_bind = \"{dashboard}\"\n"),
    )
    .unwrap();
    let mut cmd = regatta();
    cmd.args(["dashboard", "-c"]).arg(&config);
    let (mut proc, lines) = start_lines(cmd, "listening on");
    assert!(
        lines
            .iter()
            .any(|l| l == &format!("regatta dashboard at http://{dashboard}/")),
        "{lines:?}"
    );
    let grpc = lines
        .last()
        .and_then(|l| l.rsplit(' ').next())
        .unwrap()
        .to_string();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("REGATTA_DRIVER={grpc}"))),
        "it does not say how to run jobs on it: {lines:?}"
    );
    // The latest-job page, opened before any job, follows the first one.
    let b = browser();
    b.open(&format!(
        "http://{dashboard}/jobs/latest?token={}",
        common::TOKEN
    ))
    .unwrap();
    b.wait_for(
        "that no job was submitted yet",
        Duration::from_secs(20),
        "return document.getElementById('no-job-yet') !== null;",
    )
    .unwrap();
    // A job run on it shows there, with the worker it started.
    let mut submit = regatta();
    submit
        .env("REGATTA_DRIVER", &grpc)
        .args(["submit", "-f", "csv", "SELECT 6 * 7 AS answer"]);
    assert_eq!(ok(&mut submit), "answer\n42\n");
    let get = |path: &str| {
        let r = http::get(&dashboard, path, &[("Authorization", &bearer())]).unwrap();
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        serde_json::from_str::<serde_json::Value>(&r.body).unwrap()
    };
    let overview = get("/api/overview");
    let workers = overview["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 1, "{overview}");
    assert!(
        workers[0]["node_label"]
            .as_str()
            .is_some_and(|l| l.starts_with("local:")),
        "{overview}"
    );
    let jobs = overview["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{overview}");
    assert_eq!(jobs[0]["status"], "succeeded", "{overview}");
    assert_eq!(jobs[0]["rows_out"], 1, "{overview}");
    b.wait_for(
        "the job it followed, finished",
        Duration::from_secs(20),
        "const h = document.querySelector('h1'); \
         return h && h.textContent.includes('job-1') && h.querySelector('.badge.succeeded') !== null;",
    )
    .unwrap();
    // Ctrl-C (SIGINT) stops it and its worker.
    ok(Command::new("kill").args(["-INT", &proc.0.id().to_string()]));
    let status = proc.0.wait().unwrap();
    assert!(status.success(), "{status}");
}
