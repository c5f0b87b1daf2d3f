//! A real driver and three real worker processes on 127.0.0.1: queries give the
//! same rows as the local engine, and bad input gets clear errors.

// Test scaffolding: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::{
    cluster, cluster_with, lance_files, local_csv, ok, output, regatta, tpch_tables, WorkerSetup,
    Q1, Q3,
};

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
    assert!(c.spill.ends_with("spill"));
    let l = format!("lineitem={}/*.parquet", d.path().join("lineitem").display());
    let o = format!("orders={}/*.parquet", d.path().join("orders").display());
    for q in QUERIES {
        let local = local_csv(&[l.clone(), o.clone()], q);
        let remote = c.csv(&[l.clone(), o.clone()], q);
        assert_eq!(local, remote, "{q}");
        assert!(local.lines().count() > 1, "{local}");
    }
    // Every job succeeded; their files stay for their results until deleted.
    let jobs = ok(regatta().args(["jobs"]).env("REGATTA_DRIVER", &c.driver));
    assert_eq!(jobs.matches("succeeded").count(), QUERIES.len(), "{jobs}");
    let workers = ok(regatta().args(["cluster"]).env("REGATTA_DRIVER", &c.driver));
    assert_eq!(workers.matches("alive").count(), 3, "{workers}");
    assert!(!c.shuffle_dirs().is_empty());
    c.delete_all_jobs();
    assert!(c.shuffle_dirs().is_empty(), "{:?}", c.shuffle_dirs());
}

#[test]
fn tpch_q1_and_q3_on_the_cluster_give_the_local_engines_rows() {
    let d = tempfile::tempdir().unwrap();
    let tables = tpch_tables(d.path(), 20_000, 3);
    let c = cluster(&d.path().join("spill"));
    for q in [Q1, Q3] {
        let local = local_csv(&tables, q);
        assert!(local.lines().count() > 3, "{local}");
        assert_eq!(local, c.csv(&tables, q), "{q}");
    }
}

#[test]
fn a_submission_retried_with_its_request_id_runs_once() {
    let d = tempfile::tempdir().unwrap();
    tables(d.path());
    let c = cluster(&d.path().join("spill"));
    let l = format!("{}/*.parquet", d.path().join("lineitem").display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ids = rt
        .block_on(async {
            let client =
                regatta::ClusterClient::connect(&format!("http://{}", c.driver), common::TOKEN)
                    .await?;
            let request = |id: &str| regatta::proto::SubmitRequest {
                plan: Some(regatta::proto::submit_request::Plan::Sql(QUERIES[0].into())),
                tables: vec![regatta::proto::TableSource {
                    name: "lineitem".into(),
                    path: l.clone(),
                    format: regatta::proto::FileFormat::Unspecified as i32,
                }],
                request_id: id.into(),
                ..Default::default()
            };
            let first = client.submit(request("retry-me")).await?.job_id;
            let again = client.submit(request("retry-me")).await?.job_id;
            let other = client.submit(request("another")).await?.job_id;
            // The client picks a fresh id for a request that has none.
            let fresh = client.submit(request("")).await?.job_id;
            Ok::<_, regatta::Error>([first, again, other, fresh])
        })
        .unwrap();
    assert_eq!(ids[0], ids[1], "the retry started another job: {ids:?}");
    assert!(ids[2] != ids[0] && ids[3] != ids[2], "{ids:?}");
    let jobs = ok(regatta().args(["jobs"]).env("REGATTA_DRIVER", &c.driver));
    assert_eq!(
        jobs.lines().filter(|l| l.starts_with("job-")).count(),
        3,
        "{jobs}"
    );
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
    // So is a worker.
    let (success, _, err) = output(
        regatta()
            .args(["worker", "--driver", &c.driver, "--spill-dir"])
            .arg(d.path().join("intruder"))
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
    // Plan bytes that are not a plan are InvalidArgument too.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(async {
            let client =
                regatta::ClusterClient::connect(&format!("http://{}", c.driver), common::TOKEN)
                    .await?;
            client
                .submit(regatta::proto::SubmitRequest {
                    name: "garbage".into(),
                    plan: Some(regatta::proto::submit_request::Plan::LogicalPlan(
                        b"not a plan".to_vec(),
                    )),
                    tables: vec![],
                    ..Default::default()
                })
                .await
        })
        .unwrap_err();
    assert!(
        matches!(&err, regatta::Error::Cluster { .. })
            && err.to_string().contains("InvalidArgument"),
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
    // Exit statuses follow the failure's kind (sysexits): a cluster that cannot
    // be reached, a port that cannot be bound, a bad cluster file, a bad flag.
    let code = |cmd: &mut std::process::Command| cmd.output().unwrap().status.code();
    assert_eq!(
        code(regatta().args(["jobs"]).env("REGATTA_DRIVER", &dead)),
        Some(69)
    );
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().to_string();
    assert_eq!(code(regatta().args(["driver", "--bind", &taken])), Some(69));
    assert_eq!(
        code(regatta().args(["dashboard", "--workers", "0"])),
        Some(2)
    );
    // A cluster file with an unknown key or a bad value names the key.
    let bad = d.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[driver]\nbind = \"127.0.0.1:0\"\nworker_timout_ms = 5\n",
    )
    .unwrap();
    let (success, _, err) = output(regatta().args(["driver", "-c"]).arg(&bad));
    assert!(!success && err.contains("worker_timout_ms"), "{err}");
    assert_eq!(code(regatta().args(["driver", "-c"]).arg(&bad)), Some(78));
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

#[test]
fn a_driver_with_local_workers_starts_them_runs_q1_and_stops_them() {
    let d = tempfile::tempdir().unwrap();
    let tables = tpch_tables(d.path(), 5_000, 2);
    let local = local_csv(&tables, Q1);
    let mut cmd = regatta();
    cmd.args(["driver", "--bind", "127.0.0.1:0", "--workers", "2"]);
    let (mut driver, line) = common::start(cmd, "listening on");
    let address = line.rsplit(' ').next().unwrap().to_string();
    let cli = || {
        let mut c = regatta();
        c.env("REGATTA_DRIVER", &address);
        c
    };
    // Both registered before the driver said it listens, each labelled.
    let workers = common::WorkerLine::parse_all(&ok(cli().arg("cluster")));
    assert_eq!(workers.len(), 2, "{workers:?}");
    assert!(workers
        .iter()
        .all(|w| w.alive && w.node_label.starts_with("local:")));
    let mut submit = cli();
    submit.args(["submit", "-f", "csv"]);
    assert_eq!(ok(common::with_tables(&mut submit, &tables).arg(Q1)), local);
    // SIGTERM: the driver stops its workers and exits cleanly.
    let pid = driver.0.id();
    ok(std::process::Command::new("kill").args(["-TERM", &pid.to_string()]));
    let status = driver.0.wait().unwrap();
    assert!(status.success(), "{status}");
    let label = format!("local:{pid}:");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while local_worker_running(&label) {
        assert!(
            std::time::Instant::now() < deadline,
            "a local worker outlived its driver"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Whether a worker process labelled `label...` runs.
fn local_worker_running(label: &str) -> bool {
    !common::processes_where(|args| args.iter().any(|a| a.starts_with(label))).is_empty()
}

/// A Lance dataset of `lineitem` in four fragments (a create and three appends
/// by the local engine), its rows split by `l_orderkey % 4`.
async fn four_fragment_dataset(lineitem: &str, path: &str) -> regatta::Result<()> {
    use regatta::prelude::*;
    let local = Session::local();
    for (i, mode) in [
        WriteMode::Create,
        WriteMode::Append,
        WriteMode::Append,
        WriteMode::Append,
    ]
    .into_iter()
    .enumerate()
    {
        local
            .read_parquet(lineitem)
            .await?
            .filter((col("l_orderkey") % lit(4i64)).eq(lit(i as i64)))?
            .select_columns(&["l_orderkey", "l_linenumber", "l_comment"])?
            .write(path, FileFormat::Lance, mode)
            .await?;
    }
    Ok(())
}

#[test]
fn a_lance_column_is_added_by_the_workers_fragment_by_fragment_in_one_commit() {
    let d = tempfile::tempdir().unwrap();
    let tables = tpch_tables(d.path(), 2_000, 2);
    let lineitem = tables
        .iter()
        .find_map(|t| t.strip_prefix("lineitem="))
        .unwrap()
        .to_string();
    let on_cluster = d.path().join("items.lance");
    let on_local = d.path().join("items_local.lance");
    let c = cluster_with(
        &d.path().join("spill"),
        WorkerSetup {
            count: 2,
            ..WorkerSetup::default()
        },
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let new_column = || {
        use regatta::datafusion::functions::expr_fn::{concat, upper};
        use regatta::prelude::*;
        concat(vec![upper(col("l_comment")), lit("#"), col("l_linenumber")])
    };
    let version = rt
        .block_on(async {
            use regatta::prelude::*;
            four_fragment_dataset(&lineitem, on_cluster.to_str().unwrap()).await?;
            four_fragment_dataset(&lineitem, on_local.to_str().unwrap()).await?;
            let session =
                Session::connect_with_token(&format!("http://{}", c.driver), common::TOKEN).await?;
            let v = session
                .add_lance_column(on_cluster.to_str().unwrap(), "shout", new_column())
                .await?;
            Session::local()
                .add_lance_column(on_local.to_str().unwrap(), "shout", new_column())
                .await?;
            Ok::<_, regatta::Error>(v)
        })
        .unwrap();
    assert_eq!(version, 5, "four writes, then one commit for the column");
    // The column's tasks (a task per fragment) ran on both workers.
    let busy = c.workers().iter().filter(|w| w.tasks_done > 0).count();
    assert!(busy >= 2, "one worker did everything");
    // The same rows as the local engine's add, read back through a Lance table
    // on the cluster (its scan shipped to the workers, fragment by fragment).
    let read_back =
        "SELECT l_orderkey, l_linenumber, shout FROM t ORDER BY l_orderkey, l_linenumber";
    let expected = local_csv(&[format!("t={}", on_local.display())], read_back);
    assert!(
        expected.lines().count() > 1_000,
        "{}",
        expected.lines().count()
    );
    let got = c.csv(&[format!("t={}", on_cluster.display())], read_back);
    assert_eq!(got, expected);
    // Each fragment gained one data file, written by tasks on both workers;
    // nothing else was left in the dataset.
    let (versions, referenced, on_disk) = lance_files(&on_cluster);
    assert_eq!(versions, 5);
    assert_eq!(referenced, 8, "four fragments, two files each");
    assert_eq!(referenced, on_disk, "a data file no version references");

    // What cannot be a column of its own rows is refused at planning, naming
    // the dataset; nothing is committed.
    let refused = rt.block_on(async {
        use regatta::prelude::*;
        let session =
            Session::connect_with_token(&format!("http://{}", c.driver), common::TOKEN).await?;
        let path = on_cluster.to_str().unwrap();
        let exists = session
            .add_lance_column(path, "shout", lit(1i64))
            .await
            .map(|_| ())
            .unwrap_err()
            .to_string();
        let aggregate = session
            .add_lance_column(path, "n", count(col("l_orderkey")))
            .await
            .map(|_| ())
            .unwrap_err()
            .to_string();
        Ok::<_, regatta::Error>((exists, aggregate))
    });
    let (exists, aggregate) = refused.unwrap();
    assert!(exists.contains("column shout already exists"), "{exists}");
    assert!(exists.contains("items.lance"), "{exists}");
    assert!(
        !aggregate.is_empty() && aggregate.contains("items.lance"),
        "{aggregate}"
    );
    assert_eq!(
        lance_files(&on_cluster).0,
        5,
        "a refused job committed a version"
    );
}
