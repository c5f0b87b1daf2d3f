//! Rows that functions give up on (`on_error = 'record'`): the output keeps
//! the good rows, the error table exactly the failed ones with their causes,
//! and a failure budget fails the job before anything is written. Real
//! processes: `regatta sql` locally, a driver and workers for `submit`.

// Test scaffolding: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{cluster, images, ok, output, regatta, with_tables};

/// W1's shape with every per-row function recording its failures.
const W1_RECORD: &str = "SELECT id, image_mean(image_resize(img, 32, 32)) AS label FROM ( \
     SELECT id, image_decode(url_download(url, 'record'), 'RGB', 'record') AS img FROM images)";

/// The error table under `dir` as `key|function|class|attempt` lines, sorted;
/// each key cut to its file name.
fn error_rows(dir: &Path) -> Vec<String> {
    let table = format!("errs={}/*.parquet", dir.display());
    let sql = |q: &str| ok(regatta().args(["sql", "-f", "csv", "-t", &table, q]));
    // Every recorded row says why and for which job (messages span lines, so
    // they are checked in SQL rather than split out of the CSV).
    let unexplained = sql(
        "SELECT count(*) AS n FROM errs WHERE length(message) = 0 OR length(job_id) = 0 \
         OR time IS NULL",
    );
    assert_eq!(unexplained, "n\n0\n");
    let csv = sql("SELECT key, function, error_class, attempt FROM errs ORDER BY key");
    let mut rows: Vec<String> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 4, "{l}");
            let name = f[0].rsplit('/').next().unwrap_or(f[0]);
            format!("{name}|{}|{}|{}", f[1], f[2], f[3])
        })
        .collect();
    rows.sort();
    rows
}

/// The ids in the output, sorted.
fn output_ids(table: &str) -> Vec<u64> {
    let csv = ok(regatta().args([
        "sql",
        "-f",
        "csv",
        "-t",
        table,
        "SELECT id FROM out ORDER BY id",
    ]));
    csv.lines().skip(1).map(|l| l.parse().unwrap()).collect()
}

#[test]
fn a_local_job_keeps_the_good_rows_and_records_exactly_the_broken_ones() {
    let d = tempfile::tempdir().unwrap();
    // 10 good images, a corrupt one (id 10) and a missing one (id 11).
    let tables = vec![images(d.path(), 10)];
    let out = d.path().join("out.parquet");
    let errors = d.path().join("errors");
    let mut cmd = regatta();
    cmd.args(["sql", "-o"])
        .arg(&out)
        .arg("--errors")
        .arg(&errors)
        .args(["--max-failed-fraction", "0.5"]);
    ok(with_tables(&mut cmd, &tables).arg(W1_RECORD));
    let ids = output_ids(&format!("out={}", out.display()));
    assert_eq!(ids, (0..10).collect::<Vec<_>>());
    assert_eq!(
        error_rows(&errors),
        vec![
            "broken.jpg|image_decode|data|1".to_string(),
            "missing.jpg|url_download|io|1".to_string(),
        ]
    );
}

#[test]
fn a_local_job_past_its_failure_budget_fails_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let tables = vec![images(d.path(), 10)];
    let out = d.path().join("out.parquet");
    // 2 of 12 rows fail: past the default 5 %.
    let mut cmd = regatta();
    cmd.args(["sql", "-o"]).arg(&out);
    let (success, stdout, stderr) = output(with_tables(&mut cmd, &tables).arg(W1_RECORD));
    assert!(!success, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("of 12 rows failed") && stderr.contains("max_failed_fraction = 0.05"),
        "{stderr}"
    );
    assert!(!out.exists(), "a failed job wrote {}", out.display());
    // A row count as the budget fails it the same way.
    let mut cmd = regatta();
    cmd.args(["sql", "-o"]).arg(&out).args([
        "--max-failed-fraction",
        "1",
        "--max-failed-rows",
        "1",
    ]);
    let (success, _, stderr) = output(with_tables(&mut cmd, &tables).arg(W1_RECORD));
    assert!(!success);
    assert!(stderr.contains("max_failed_rows = 1"), "{stderr}");
    assert!(!out.exists());
}

#[test]
fn a_cluster_job_records_its_failed_rows_and_shows_the_counts() {
    let d = tempfile::tempdir().unwrap();
    let c = cluster(&d.path().join("spill"));
    // Spread over three files, so the failed rows come from more than one task.
    let tables = vec![images(d.path(), 30)];
    let out = d.path().join("out");
    let errors = d.path().join("errors");
    let mut cmd = c.cli();
    cmd.args(["submit", "--output-format", "parquet", "-o"])
        .arg(&out)
        .arg("--errors")
        .arg(&errors)
        .args(["--max-failed-fraction", "0.1"]);
    ok(with_tables(&mut cmd, &tables).arg(W1_RECORD));
    let ids = output_ids(&format!("out={}/*.parquet", out.display()));
    assert_eq!(ids, (0..30).collect::<Vec<_>>());
    assert_eq!(
        error_rows(&errors),
        vec![
            "broken.jpg|image_decode|data|1".to_string(),
            "missing.jpg|url_download|io|1".to_string(),
        ]
    );
    let job = ok(c.cli().arg("jobs"));
    let line = job.lines().find(|l| l.starts_with("job-")).unwrap();
    let shown = ok(c.cli().args([
        "jobs",
        "show",
        line.split_whitespace()
            .next()
            .unwrap()
            .trim_start_matches("job-"),
    ]));
    assert!(shown.contains("failed-rows 2/32"), "{shown}");
    assert!(shown.contains(&errors.display().to_string()), "{shown}");

    // Two rows fail in two different tasks, each within a budget of one row:
    // the driver's sum passes it, fails the job and commits nothing.
    let out2 = d.path().join("out2");
    let mut cmd = c.cli();
    cmd.args(["submit", "--output-format", "parquet", "-o"])
        .arg(&out2)
        .args(["--max-failed-rows", "1"]);
    let (success, _, stderr) = output(with_tables(&mut cmd, &tables).arg(W1_RECORD));
    assert!(!success);
    assert!(stderr.contains("max_failed_rows = 1"), "{stderr}");
    common::wait_until(
        "the failed job leaves no output",
        Duration::from_secs(5),
        || {
            !out2.exists()
                || std::fs::read_dir(&out2)
                    .map(|d| {
                        d.filter_map(|e| e.ok())
                            .all(|e| !e.file_name().to_string_lossy().ends_with(".parquet"))
                    })
                    .unwrap_or(true)
        },
    );
}

#[test]
fn a_video_that_cannot_be_read_is_one_recorded_failure_not_a_silent_gap() {
    use regatta_tests::video_makers::{zoom_video, VideoKind};
    let d = tempfile::tempdir().unwrap();
    let videos = d.path().join("videos");
    std::fs::create_dir_all(&videos).unwrap();
    let photo = regatta_tests::photos_dir().join("chelsea.png");
    zoom_video(
        &photo,
        &videos.join("good.mp4"),
        VideoKind::H264Mp4,
        12,
        (64, 48),
    )
    .unwrap();
    std::fs::write(videos.join("junk.mp4"), b"\0\0\0\x18ftypmp42 not a video").unwrap();
    let out = d.path().join("out.parquet");
    let errors = d.path().join("errors");
    let sql = format!(
        "SELECT url, frame_index FROM video_frames('{}/*.mp4', 'on_error=record')",
        videos.display()
    );
    ok(regatta()
        .args(["sql", "-o"])
        .arg(&out)
        .arg("--errors")
        .arg(&errors)
        .args(["--max-failed-fraction", "0.5", &sql]));
    let frames = ok(regatta().args([
        "sql",
        "-f",
        "csv",
        "-t",
        &format!("out={}", out.display()),
        "SELECT count(*) AS n FROM out WHERE url LIKE '%good.mp4'",
    ]));
    assert_eq!(frames, "n\n12\n");
    assert_eq!(
        error_rows(&errors),
        vec!["junk.mp4|video_frames|data|1".to_string()]
    );

    // Under skip it still counts: a budget of no failed rows fails the job.
    let sql = sql.replace("on_error=record", "on_error=skip");
    let (success, _, stderr) = output(
        regatta()
            .args(["sql", "-o"])
            .arg(d.path().join("out2.parquet"))
            .args(["--max-failed-rows", "0", &sql]),
    );
    assert!(!success, "a skipped video must count against the budget");
    assert!(stderr.contains("max_failed_rows"), "{stderr}");
}
