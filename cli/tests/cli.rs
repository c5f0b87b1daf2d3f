//! The `regatta` binary end to end: real processes, real files.

// Test scaffolding: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn regatta() -> Command {
    Command::new(env!("CARGO_BIN_EXE_regatta"))
}

/// Runs `cmd`, requires success (showing stderr otherwise), returns stdout.
fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn csv_fixture(dir: &std::path::Path) -> String {
    let p = dir.join("people.csv");
    std::fs::write(&p, "id,city\n1,oslo\n2,rome\n3,oslo\n").unwrap();
    p.to_string_lossy().to_string()
}

/// A DataFusion setting from the environment reaches `regatta sql`'s plan; a
/// value that setting cannot take is refused naming the setting.
#[test]
fn sql_takes_datafusion_settings_from_the_environment() {
    let d = tempfile::tempdir().unwrap();
    let csv = csv_fixture(d.path());
    let query = format!("SELECT count(*) AS n FROM '{csv}'");
    let plan = stdout_of(
        regatta()
            .env("DATAFUSION_EXECUTION_TARGET_PARTITIONS", "7")
            .args(["explain"])
            .arg(&query),
    );
    // Seven partitions: no machine this runs on has seven cores.
    assert!(
        plan.contains("RoundRobinBatch(7)"),
        "the plan ignores the variable:\n{plan}"
    );
    let out = regatta()
        .env("DATAFUSION_EXECUTION_PARQUET_PUSHDOWN_FILTERS", "maybe")
        .args(["sql", "-f", "csv"])
        .arg(&query)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a bad value was accepted");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("datafusion.execution.parquet.pushdown_filters") && err.contains("maybe"),
        "{err}"
    );
}

#[test]
fn sql_prints_csv_and_json_and_stays_quiet_when_piped() {
    let d = tempfile::tempdir().unwrap();
    let csv = csv_fixture(d.path());
    let out = regatta()
        .args(["sql", "-t", &format!("p={csv}"), "-f", "csv"])
        .arg("SELECT city, count(*) AS n FROM p GROUP BY city ORDER BY city")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "city,n\noslo,2\nrome,1\n"
    );
    assert!(
        out.stderr.is_empty(),
        "no progress output when piped: {:?}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = regatta()
        .args(["sql", "-f", "json"])
        .arg(format!("SELECT max(id) AS m FROM '{csv}'"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "{\"m\":3}\n");
}

#[test]
fn sql_table_output_is_a_table() {
    let out = regatta().args(["sql", "SELECT 1 AS one"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("| one |") && text.contains("| 1   |"),
        "{text}"
    );
}

#[test]
fn missing_files_and_bad_flags_fail_with_the_culprit_named() {
    let out = regatta()
        .args(["sql", "-t", "x=/no/such/file.parquet", "SELECT * FROM x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/no/such/file.parquet"), "{err}");

    let out = regatta()
        .args(["sql", "-t", "nonsense", "SELECT 1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NAME=PATH"));

    // A format or mode nobody writes is a usage error naming what is accepted,
    // before anything runs.
    for (flag, value, accepted) in [
        ("--output-format", "xlsx", "parquet, csv, json or lance"),
        ("--output-mode", "upsert", "create, append or overwrite"),
    ] {
        let out = regatta()
            .args(["sql", "-o", "/tmp/never-written", flag, value, "SELECT 1"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(value) && err.contains(accepted), "{err}");
    }
}

#[test]
fn explain_shows_plans_and_analyze_shows_metrics() {
    let out = regatta()
        .args(["explain", "SELECT 1 + 1 AS two"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("physical_plan"));
    let out = regatta()
        .args(["explain", "--analyze", "SELECT 1 + 1 AS two"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("metrics=["));
}

#[test]
fn demo_runs_the_pipeline_into_lance_and_survives_broken_images() {
    let d = tempfile::tempdir().unwrap();
    let lance = d.path().join("demo.lance");
    let stdout = stdout_of(
        regatta()
            .args(["demo", "--images", "6", "--out"])
            .arg(&lance),
    );
    assert!(stdout.contains("rows in          9"), "{stdout}");
    assert!(stdout.contains("images decoded   6"), "{stdout}");
    assert!(stdout.contains("skipped (broken or missing) 3"), "{stdout}");
    assert!(
        lance.join("_versions").exists()
            || lance.join("_latest.manifest").exists()
            || lance.is_dir()
    );
    // The dataset is readable by the SQL command, new column included.
    let table = format!("d={}", lance.display());
    let q = "SELECT count(*) AS n, min(thumb_mode) AS m FROM d";
    let text = stdout_of(regatta().args(["sql", "-f", "csv", "-t", &table, q]));
    assert_eq!(text, "n,m\n6,RGB\n");
}
