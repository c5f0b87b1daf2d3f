//! The data plane on real driver and worker processes: result rows go from the
//! workers to the client over Flight (never through the driver), stay on the
//! workers until deleted or expired, are made again when lost; writes are
//! staged by the workers and committed once by the driver, also under faults.

// Test scaffolding: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use common::{
    cluster, cluster_with, fragments, images, lance_files, local_csv, ok, output, regatta, table,
    tpch_tables, wait_until, WorkerSetup, Q1, Q3,
};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// These tests start clusters and time what they do: one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// Thumbnails of W1's images: a map-only pipeline whose last stage has a task
/// per core, so a write of it is spread over the workers.
const THUMBS: &str = "SELECT id, image_encode(image_resize(image_decode( \
     url_download(url, 'null'), 'RGB', 'null'), 64, 64), 'png') AS thumb FROM images";

fn sorted_lines(csv: &str) -> Vec<String> {
    let mut v: Vec<String> = csv.lines().map(str::to_string).collect();
    v.sort();
    v
}

/// Peak resident memory of a process, from /proc.
fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap();
    kb * 1024
}

#[test]
fn results_are_read_from_the_workers_until_deleted_or_expired() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let tables = tpch_tables(d.path(), 10_000, 3);
    let c = cluster_with(
        &d.path().join("spill"),
        WorkerSetup {
            count: 2,
            result_retention_secs: Some(4),
            ..WorkerSetup::default()
        },
    );
    let q1 = local_csv(&tables, Q1);
    assert_eq!(c.csv(&tables, Q1), q1);
    // The rows stay on the workers: read again, the same.
    let again = ok(c.cli().args(["jobs", "results", "1", "-f", "csv"]));
    assert_eq!(again, q1);
    let status = ok(c.cli().args(["jobs", "status", "1"]));
    assert!(status.contains("succeeded"), "{status}");
    // Deleted, they are gone, and say why.
    ok(c.cli().args(["jobs", "delete", "1"]));
    let (read, _, err) = output(c.cli().args(["jobs", "results", "1"]));
    assert!(!read, "results of a deleted job were read");
    assert!(err.contains("job-1") && err.contains("deleted"), "{err}");

    // A second job's results expire after the retention, files and all.
    let q3 = local_csv(&tables, Q3);
    assert_eq!(c.csv(&tables, Q3), q3);
    assert!(!c.shuffle_dirs().is_empty(), "the results are kept");
    // Where its time went: a line per stage, every task timed, the stages
    // after the first waiting on shuffle input.
    let stages = ok(c.cli().args(["jobs", "stages", "2"]));
    let rows: Vec<Vec<f64>> = stages
        .lines()
        .skip(2)
        // The stage table ends at a blank line; the operator table follows.
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(|w| w.parse().unwrap()).collect())
        .collect();
    assert!(rows.len() >= 3, "{stages}");
    assert!(rows.iter().all(|r| r[1] >= 1.0 && r[4] > 0.0), "{stages}");
    assert!(
        rows.iter().skip(1).any(|r| r[5] > 0.0),
        "no shuffle read: {stages}"
    );
    assert!(
        rows.iter().any(|r| r[7] > 0.0),
        "no shuffle write: {stages}"
    );
    wait_until("job-2's results expire", Duration::from_secs(20), || {
        let (read, _, err) = output(c.cli().args(["jobs", "results", "2"]));
        !read && err.contains("driver.result_retention_secs")
    });
    wait_until(
        "the workers drop every file",
        Duration::from_secs(10),
        || c.spill_files().is_empty(),
    );
}

#[test]
fn a_result_partition_lost_with_its_worker_is_made_again_for_the_reader() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let tables = tpch_tables(d.path(), 20_000, 6);
    // Map-only: the result is a partition per task, spread over the workers.
    let sql = "SELECT l_orderkey, l_linenumber, l_quantity * 2 AS q2 FROM lineitem";
    let expected = local_csv(&tables, sql);
    let mut c = cluster(&d.path().join("spill"));
    assert_eq!(sorted_lines(&c.csv(&tables, sql)), sorted_lines(&expected));
    // Every worker holds some of the result; one dies after the job ended.
    let workers = c.workers();
    assert!(workers.iter().all(|w| w.tasks_done > 0), "{workers:?}");
    c.workers[1].0.kill().unwrap();
    // Once the driver knows, the partitions it held are made again elsewhere
    // (its files are still on this machine's disk, but no reader may trust
    // a dead worker's directory beyond what the driver says).
    wait_until(
        "the driver notices the dead worker",
        Duration::from_secs(10),
        || c.workers().iter().filter(|w| w.alive).count() == 2,
    );
    let rows = ok(c.cli().args(["jobs", "results", "1", "-f", "csv"]));
    assert_eq!(sorted_lines(&rows), sorted_lines(&expected));
    let end = c.job(1);
    assert_eq!(end.status, "succeeded", "{}", end.line);
    assert!(end.recomputed >= 1, "nothing was made again: {}", end.line);
}

#[test]
fn a_result_larger_than_256_mib_streams_to_the_client_past_a_small_driver() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    // 300 rows of 1 MiB each.
    let ids = table(
        d.path(),
        "ids",
        "id",
        3,
        "SELECT value AS id FROM generate_series(1, 300)",
    );
    let c = cluster_with(
        &d.path().join("spill"),
        WorkerSetup {
            count: 2,
            ..WorkerSetup::default()
        },
    );
    let out_path = d.path().join("rows.csv");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut cmd = c.cli();
    cmd.args(["submit", "-f", "csv", "-t", &ids])
        .arg("SELECT id, repeat('x', 1048576) AS s FROM ids")
        .stdout(out)
        .stderr(Stdio::piped());
    let done = cmd.output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let size = std::fs::metadata(&out_path).unwrap().len();
    assert!(size > 300 << 20, "only {size} bytes arrived");
    let text = std::fs::read_to_string(&out_path).unwrap();
    assert_eq!(text.lines().count(), 301);
    let mut ids: Vec<u64> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, (1..=300).collect::<Vec<u64>>());
    // The rows never passed through the driver.
    let driver_peak = peak_rss_bytes(c.driver_proc.0.id());
    assert!(
        driver_peak < 200 << 20,
        "the driver grew to {} MiB",
        driver_peak >> 20
    );
}

/// Fails naming the entries of `dir` that `is_leftover` picks.
fn assert_none_left(dir: &Path, is_leftover: impl Fn(&str) -> bool) {
    let leftovers: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| is_leftover(n))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// No staging or publishing directory of any job beside `dest`.
fn no_staging_beside(dest: &Path) {
    assert_none_left(dest.parent().unwrap(), |n| n.contains(".regatta-"));
}

/// No job's staging prefix left inside the Lance dataset at `dest`.
fn no_staging_inside(dest: &Path) {
    assert_none_left(dest, |n| n.starts_with("_regatta-staging-"));
}

#[test]
fn writes_are_staged_by_the_workers_and_committed_once() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let tables = vec![images(d.path(), 30)];
    let read_back = "SELECT id, thumb FROM t ORDER BY id";
    let expected = local_csv(&tables, &format!("SELECT * FROM ({THUMBS}) ORDER BY id"));
    assert_eq!(expected.lines().count(), 33, "{expected}");
    let c = cluster(&d.path().join("spill"));
    let out = d.path().join("out");
    std::fs::create_dir_all(&out).unwrap();

    // Lance: fragments from several tasks, one commit, one version.
    let lance = out.join("thumbs.lance");
    let mut cmd = c.cli();
    cmd.args(["submit", "-o", lance.to_str().unwrap()]);
    let said = ok(common::with_tables(&mut cmd, &tables).arg(THUMBS));
    assert!(said.is_empty(), "a write prints no rows: {said}");
    let t = format!("t={}", lance.display());
    assert_eq!(local_csv(&[t], read_back), expected);
    let (versions, referenced, on_disk) = lance_files(&lance);
    assert_eq!(versions, 1, "one commit, one version");
    assert_eq!(referenced, on_disk, "no data file of another attempt");
    assert!(fragments(&lance) >= 2, "written by one task only");
    let busy = c.workers().iter().filter(|w| w.tasks_done > 0).count();
    assert!(busy >= 2, "one worker did everything");

    // Parquet: part files published at once under the job's name.
    let parquet = out.join("thumbs");
    let mut cmd = c.cli();
    cmd.args(["submit", "-o", parquet.to_str().unwrap()]);
    ok(common::with_tables(&mut cmd, &tables).arg(THUMBS));
    let parts: Vec<String> = std::fs::read_dir(&parquet)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert!(parts.len() >= 2, "{parts:?}");
    assert!(
        parts
            .iter()
            .all(|p| p.starts_with("part-") && p.contains("-req_") && p.ends_with(".parquet")),
        "{parts:?}"
    );
    let t = format!("t={}/*.parquet", parquet.display());
    assert_eq!(local_csv(std::slice::from_ref(&t), read_back), expected);
    no_staging_beside(&lance);

    // Append adds the job's parts; create refuses an output that exists.
    let mut cmd = c.cli();
    cmd.args(["submit", "--output-mode", "append", "-o"])
        .arg(&parquet);
    ok(common::with_tables(&mut cmd, &tables).arg(THUMBS));
    let n = local_csv(&[t], "SELECT count(*) AS n FROM t");
    assert_eq!(n.lines().nth(1).unwrap(), "64");
    let mut cmd = c.cli();
    cmd.args(["submit", "-o"]).arg(&parquet);
    let (wrote, _, err) = output(common::with_tables(&mut cmd, &tables).arg(THUMBS));
    assert!(!wrote);
    assert!(err.contains("already exists"), "{err}");
    no_staging_beside(&lance);
}

#[test]
fn a_worker_killed_during_a_write_leaves_every_row_once_in_one_version() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let tables = vec![images(d.path(), 240)];
    let mut c = cluster(&d.path().join("spill"));
    let lance = d.path().join("thumbs.lance");
    let mut cmd = c.cli();
    cmd.args(["submit", "--detach", "-o", lance.to_str().unwrap()]);
    let job: u64 = ok(common::with_tables(&mut cmd, &tables).arg(THUMBS))
        .trim()
        .parse()
        .unwrap();
    // Killed once the writing stage runs on every worker.
    let at_kill = c.wait_for(job, Duration::from_secs(60), |j| j.stages_done >= 1);
    assert_eq!(at_kill.status, "running", "finished before the kill");
    c.workers[2].0.kill().unwrap();
    let end = c.wait_for(job, Duration::from_secs(120), common::JobLine::finished);
    assert_eq!(end.status, "succeeded", "{}", end.line);
    assert_eq!(end.rows, 242, "{}", end.line);
    let counted = local_csv(
        &[format!("t={}", lance.display())],
        "SELECT count(*) AS n, count(DISTINCT id) AS k FROM t",
    );
    assert_eq!(counted.lines().nth(1).unwrap(), "242,242");
    let (versions, referenced, on_disk) = lance_files(&lance);
    assert_eq!(versions, 1);
    assert_eq!(referenced, on_disk, "a failed attempt's file remains");
    no_staging_beside(&lance);
    no_staging_inside(&lance);
}

#[test]
fn a_worker_killed_during_an_append_leaves_every_row_once_and_other_writers_files_alone() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let (first, second) = (d.path().join("first"), d.path().join("second"));
    std::fs::create_dir_all(&first).unwrap();
    std::fs::create_dir_all(&second).unwrap();
    let mut c = cluster(&d.path().join("spill"));
    let lance = d.path().join("thumbs.lance");
    let mut cmd = c.cli();
    cmd.args(["submit", "-o", lance.to_str().unwrap()]);
    ok(common::with_tables(&mut cmd, &[images(&first, 20)]).arg(THUMBS));
    // Another writer's data file, not committed (yet): never ours to remove.
    let foreign = lance.join("data").join("another-writers-uncommitted.lance");
    std::fs::write(&foreign, b"not regatta's").unwrap();

    let mut cmd = c.cli();
    cmd.args(["submit", "--detach", "--output-mode", "append", "-o"])
        .arg(&lance);
    let job: u64 = ok(common::with_tables(&mut cmd, &[images(&second, 240)]).arg(THUMBS))
        .trim()
        .parse()
        .unwrap();
    let at_kill = c.wait_for(job, Duration::from_secs(60), |j| j.stages_done >= 1);
    assert_eq!(at_kill.status, "running", "finished before the kill");
    c.workers[2].0.kill().unwrap();
    let end = c.wait_for(job, Duration::from_secs(120), common::JobLine::finished);
    assert_eq!(end.status, "succeeded", "{}", end.line);
    assert_eq!(end.rows, 242, "the job's own rows: {}", end.line);
    let counted = local_csv(
        &[format!("t={}", lance.display())],
        "SELECT count(*) AS n, count(DISTINCT id) AS k FROM t",
    );
    assert_eq!(counted.lines().nth(1).unwrap(), "264,242", "22 + 242 rows");
    let (versions, referenced, on_disk) = lance_files(&lance);
    assert_eq!(versions, 2, "the append is one version");
    assert_eq!(
        referenced + 1,
        on_disk,
        "a failed attempt's file remains, or the other writer's went"
    );
    assert!(foreign.exists(), "another writer's file was removed");
    no_staging_inside(&lance);
}

#[test]
fn a_connected_sessions_dataframes_stream_count_and_write_on_the_workers() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let tables = tpch_tables(d.path(), 5_000, 3);
    let lineitem = tables
        .iter()
        .find_map(|t| t.strip_prefix("lineitem="))
        .unwrap()
        .to_string();
    let expected = local_csv(&tables, "SELECT count(*) AS n FROM lineitem");
    let expected: usize = expected.lines().nth(1).unwrap().parse().unwrap();
    let c = cluster_with(
        &d.path().join("spill"),
        WorkerSetup {
            count: 2,
            ..WorkerSetup::default()
        },
    );
    let out = d.path().join("out");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use futures::StreamExt;
        use regatta::prelude::*;
        let session =
            Session::connect_with_token(&format!("http://{}", c.driver), common::TOKEN).await?;
        let df = || async { session.read_parquet(&lineitem).await };
        // count: only the number travels.
        assert_eq!(df().await?.count().await?, expected);
        // stream: batches arrive from the workers, every row once.
        let mut stream = df().await?.stream().await?;
        let mut rows = 0;
        let mut batches = 0;
        while let Some(b) = stream.next().await {
            rows += b?.num_rows();
            batches += 1;
        }
        assert_eq!(rows, expected);
        assert!(batches > 1, "one batch: the rows did not stream");
        // collect and a table of the first rows.
        let collected: usize = df()
            .await?
            .collect()
            .await?
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert_eq!(collected, expected);
        let shown = df().await?.to_table_string(3).await?;
        assert_eq!(shown.lines().count(), 3 + 4, "{shown}");
        // Writes: create, then append, then overwrite, each one commit.
        let lance = out.join("items.lance");
        let path = lance.to_str().unwrap();
        let n = df().await?.write_lance(path).await?;
        assert_eq!(n as usize, expected);
        let n = df()
            .await?
            .write(path, FileFormat::Lance, WriteMode::Append)
            .await?;
        assert_eq!(n as usize, expected);
        let local = Session::local();
        assert_eq!(local.read_lance(path).await?.count().await?, 2 * expected);
        df().await?
            .write(path, FileFormat::Lance, WriteMode::Overwrite)
            .await?;
        assert_eq!(local.read_lance(path).await?.count().await?, expected);
        // A Lance DataFrame runs on the workers, at the version it was built on
        // (an append made after it is not read), with the local engine's rows.
        let per_flag = |df: DataFrame| async move {
            df.filter(col("l_quantity").gt(lit(10)))?
                .aggregate(
                    vec![col("l_returnflag")],
                    vec![count(col("l_orderkey")).alias("n")],
                )?
                .sort(vec![col("l_returnflag").sort(true, false)])?
                .to_table_string(10)
                .await
        };
        let on_cluster = session.read_lance(path).await?;
        let before = local.read_lance(path).await?;
        local
            .read_parquet(&lineitem)
            .await?
            .write(path, FileFormat::Lance, WriteMode::Append)
            .await?;
        let tasks_before: u64 = c.workers().iter().map(|w| w.tasks_done).sum();
        assert_eq!(per_flag(on_cluster).await?, per_flag(before).await?);
        let tasks_after: u64 = c.workers().iter().map(|w| w.tasks_done).sum();
        assert!(
            tasks_after > tasks_before,
            "the Lance DataFrame ran locally"
        );
        assert_eq!(session.read_lance(path).await?.count().await?, 2 * expected);
        local
            .read_parquet(&lineitem)
            .await?
            .write(path, FileFormat::Lance, WriteMode::Overwrite)
            .await?;
        let csv = out.join("items_csv");
        let n = df().await?.write_csv(csv.to_str().unwrap()).await?;
        assert_eq!(n as usize, expected);
        let back = local
            .read_csv(&format!("{}/*.csv", csv.display()))
            .await?
            .count()
            .await?;
        assert_eq!(back, expected);
        Ok::<_, regatta::Error>(())
    })
    .unwrap();
    let (versions, referenced, on_disk) = lance_files(&out.join("items.lance"));
    assert_eq!(
        versions, 5,
        "create, append, overwrite on the cluster, then a local append and overwrite"
    );
    assert!(referenced <= on_disk);
    let (bad, _, err) = output(
        regatta()
            .args(["jobs", "delete", "99"])
            .env("REGATTA_DRIVER", &c.driver),
    );
    assert!(!bad && err.contains("job-99"), "{err}");
}

#[test]
fn a_map_only_jobs_first_partitions_reach_the_client_while_the_rest_still_run() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    // Three files, three partitions, and one worker whose memory holds one
    // task at a time: the tasks run one after the other, so partition 0 is
    // done long before partition 2.
    let tables = vec![images(d.path(), 150)];
    let c = cluster_with(
        &d.path().join("spill"),
        WorkerSetup {
            count: 1,
            cpus: 3,
            memory_limit: Some("512MiB"),
            task_memory: Some("512MiB"),
            ..WorkerSetup::default()
        },
    );
    let out_path = d.path().join("rows.csv");
    let mut cmd = c.cli();
    cmd.args(["submit", "-f", "csv"]);
    let mut client = common::with_tables(&mut cmd, &tables)
        .arg(THUMBS)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut streamed_early = false;
    wait_until("the job ends", Duration::from_secs(180), || {
        // Rows first, then the status: rows seen before a "running" status
        // arrived before the job ended.
        let lines = std::fs::read_to_string(&out_path)
            .unwrap_or_default()
            .lines()
            .count();
        let (known, line, _) = output(c.cli().args(["jobs", "status", "1"]));
        if !known {
            return false; // not submitted yet
        }
        let status = common::JobLine::parse(&line);
        streamed_early |= status.state() == regatta::proto::JobStatus::Running && lines > 1;
        status.finished()
    });
    assert!(client.wait().unwrap().success());
    assert!(
        streamed_early,
        "no row arrived before the job ended: {}",
        c.job(1).line
    );
    let rows = std::fs::read_to_string(&out_path).unwrap();
    assert_eq!(rows.lines().count(), 1 + 152);
}
