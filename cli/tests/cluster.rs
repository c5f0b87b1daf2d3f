//! A real driver and three real worker processes on 127.0.0.1: queries give the
//! same rows as the local engine, and bad input gets clear errors.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const TOKEN: &str = "test-token";

fn regatta() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_regatta"));
    c.env("REGATTA_TOKEN", TOKEN).env_remove("REGATTA_DRIVER");
    c
}

/// A child process killed when the test ends, pass or fail.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a process and returns it with the first stdout line containing `marker`.
fn start(mut cmd: Command, marker: &str) -> (Proc, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    let proc = Proc(child);
    loop {
        let line = lines
            .next()
            .expect("process exited before it was ready")
            .unwrap();
        if line.contains(marker) {
            return (proc, line);
        }
    }
}

struct Cluster {
    driver: String,
    _procs: Vec<Proc>,
}

fn cluster(spill: &Path) -> Cluster {
    let mut cmd = regatta();
    cmd.args(["driver", "--bind", "127.0.0.1:0"]);
    let (driver, line) = start(cmd, "listening on");
    let address = line.rsplit(' ').next().unwrap().to_string();
    let mut procs = vec![driver];
    for i in 0..3 {
        let mut cmd = regatta();
        cmd.args(["worker", "--driver", &address, "--spill-dir"])
            .arg(spill.join(format!("w{i}")));
        procs.push(start(cmd, "serving shuffle data").0);
    }
    Cluster {
        driver: address,
        _procs: procs,
    }
}

fn output(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn ok(cmd: &mut Command) -> String {
    let (success, out, err) = output(cmd);
    assert!(success, "{out}\n{err}");
    out
}

/// Two tables, each in two Parquet files, written by the local engine.
fn tables(dir: &Path) {
    for (table, key, sql) in [
        (
            "lineitem",
            "l_orderkey",
            "SELECT value AS l_orderkey, value % 5 AS l_flag, \
             CAST(value % 50 AS DECIMAL(15,2)) AS l_quantity, \
             CAST(value % 997 AS DECIMAL(15,2)) * 1.5 AS l_price \
             FROM generate_series(1, 30000)",
        ),
        (
            "orders",
            "o_orderkey",
            "SELECT value AS o_orderkey, value % 113 AS o_custkey, \
             CAST(value % 9 AS INT) AS o_priority FROM generate_series(1, 30000)",
        ),
    ] {
        std::fs::create_dir_all(dir.join(table)).unwrap();
        for (part, rest) in [("a", 0), ("b", 1)] {
            let filter = format!("{key} % 2 = {rest}");
            let path = dir.join(table).join(format!("{part}.parquet"));
            let copy = format!(
                "COPY (SELECT * FROM ({sql}) WHERE {filter}) TO '{}' STORED AS PARQUET",
                path.display()
            );
            ok(regatta().args(["sql"]).arg(copy));
        }
    }
}

const QUERIES: [&str; 3] = [
    "SELECT l_flag, sum(l_quantity) AS q, avg(l_price) AS p, count(*) AS n \
     FROM lineitem WHERE l_orderkey % 3 <> 0 GROUP BY l_flag ORDER BY l_flag",
    "SELECT o_custkey, sum(l_price * (1 - l_quantity / 100)) AS revenue, o_priority \
     FROM orders, lineitem WHERE l_orderkey = o_orderkey AND o_priority < 5 \
     GROUP BY o_custkey, o_priority ORDER BY revenue DESC, o_custkey LIMIT 10",
    "SELECT count(DISTINCT o_custkey) AS c, max(l_price) AS m FROM orders \
     JOIN lineitem ON o_orderkey = l_orderkey",
];

#[test]
fn a_three_worker_cluster_gives_the_local_engines_rows() {
    let d = tempfile::tempdir().unwrap();
    tables(d.path());
    let c = cluster(&d.path().join("spill"));
    let l = format!("lineitem={}/*.parquet", d.path().join("lineitem").display());
    let o = format!("orders={}/*.parquet", d.path().join("orders").display());
    for q in QUERIES {
        let local = ok(regatta()
            .args(["sql", "-f", "csv", "-t", &l, "-t", &o])
            .arg(q));
        let remote = ok(regatta()
            .args(["submit", "-f", "csv", "-t", &l, "-t", &o])
            .env("REGATTA_DRIVER", &c.driver)
            .arg(q));
        assert_eq!(local, remote, "{q}");
        assert!(local.lines().count() > 1, "{local}");
    }
    // Every job succeeded, and no shuffle files remain once they ended.
    let jobs = ok(regatta().args(["jobs"]).env("REGATTA_DRIVER", &c.driver));
    assert_eq!(jobs.matches("succeeded").count(), QUERIES.len(), "{jobs}");
    let workers = ok(regatta().args(["cluster"]).env("REGATTA_DRIVER", &c.driver));
    assert_eq!(workers.matches("alive").count(), 3, "{workers}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    for i in 0..3 {
        let shuffle = d.path().join("spill").join(format!("w{i}")).join("shuffle");
        let left: Vec<_> = std::fs::read_dir(&shuffle)
            .map(|r| r.filter_map(|e| e.ok()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{}: {left:?}", shuffle.display());
    }
}

#[test]
fn bad_input_gets_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let c = cluster(&d.path().join("spill"));
    // A wrong token is refused.
    let (success, _, err) = output(
        regatta()
            .args(["jobs"])
            .env("REGATTA_DRIVER", &c.driver)
            .env("REGATTA_TOKEN", "wrong"),
    );
    assert!(!success && err.contains("wrong cluster token"), "{err}");
    // An unknown job is NotFound.
    let (success, _, err) = output(
        regatta()
            .args(["jobs", "status", "999"])
            .env("REGATTA_DRIVER", &c.driver),
    );
    assert!(
        !success && err.contains("NotFound") && err.contains("job-999"),
        "{err}"
    );
    // A query naming a missing table is InvalidArgument, naming it.
    let (success, _, err) = output(
        regatta()
            .args(["submit", "SELECT * FROM nowhere"])
            .env("REGATTA_DRIVER", &c.driver),
    );
    assert!(
        !success && err.contains("InvalidArgument") && err.contains("nowhere"),
        "{err}"
    );
    // A dead driver address is named.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("127.0.0.1:{port}");
    let (success, _, err) = output(regatta().args(["jobs"]).env("REGATTA_DRIVER", &dead));
    assert!(!success && err.contains(&dead), "{err}");
    // A cluster file with an unknown key or a bad value names the key.
    let bad = d.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[driver]\nbind = \"127.0.0.1:0\"\nworker_timout_ms = 5\n",
    )
    .unwrap();
    let (success, _, err) = output(regatta().args(["driver", "-c"]).arg(&bad));
    assert!(!success && err.contains("worker_timout_ms"), "{err}");
    std::fs::write(
        &bad,
        "[driver]\nworker_timeout_ms = 100\nheartbeat_interval_ms = 500\n",
    )
    .unwrap();
    let (success, _, err) = output(regatta().args(["driver", "-c"]).arg(&bad));
    assert!(
        !success && err.contains("driver.worker_timeout_ms"),
        "{err}"
    );
}
