//! A cluster's access policy, end to end: the driver's `[access]` refuses
//! tables outside its roots at planning and reaches every worker, which
//! refuses the rows that name files outside the roots, `/proc` or loopback.

// Test scaffolding: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{output, regatta_strict, start, with_tables, Cluster, Proc};
use regatta_tests::TestServer;

/// A driver started with `[access]` = `access_toml` and two workers, none of
/// them widened by the test harness.
fn strict_cluster(dir: &std::path::Path, access_toml: &str) -> Cluster {
    let config = dir.join("driver.toml");
    std::fs::write(&config, format!("[access]\n{access_toml}")).unwrap();
    let mut cmd = regatta_strict();
    cmd.args(["driver", "--bind", "127.0.0.1:0", "-c"])
        .arg(&config);
    let (driver_proc, line) = start(cmd, "listening on");
    let address = line.rsplit(' ').next().unwrap().to_string();
    let workers: Vec<Proc> = (0..2)
        .map(|i| {
            let spill = dir.join(format!("w{i}"));
            let mut cmd = regatta_strict();
            cmd.args(["worker", "--cpus", "1", "--driver", &address, "--spill-dir"])
                .arg(&spill);
            start(cmd, "serving shuffle data").0
        })
        .collect();
    Cluster {
        driver: address,
        spill: dir.to_path_buf(),
        driver_proc,
        workers,
    }
}

fn submit(c: &Cluster, tables: &[String], sql: &str) -> (bool, String, String) {
    let mut cmd = regatta_strict();
    cmd.env("REGATTA_DRIVER", &c.driver)
        .args(["submit", "-f", "csv"]);
    output(with_tables(&mut cmd, tables).arg(sql))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_drivers_policy_reaches_its_workers_and_refuses_what_it_names() {
    let server = TestServer::start(200, b"internal".to_vec()).await;
    let d = tempfile::tempdir().unwrap();
    // A space in the name: object-store paths percent-encode it.
    let root = d.path().join("allowed data");
    std::fs::create_dir_all(&root).unwrap();
    let inside = root.join("in.txt");
    std::fs::write(&inside, b"inside").unwrap();
    let outside = d.path().join("secret.txt");
    std::fs::write(&outside, b"secret").unwrap();
    let urls = [
        inside.display().to_string(),
        outside.display().to_string(),
        "/proc/self/environ".to_string(),
        server.url("x"),
    ];
    let rows = urls
        .iter()
        .enumerate()
        .map(|(i, u)| format!("SELECT {i} AS id, '{u}' AS url"))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    // Written by a local session (which reads as its user).
    let table = common::table(&root, "urls", "id", 1, &rows);
    let c = strict_cluster(
        d.path(),
        &format!("local_roots = [\"{}\"]\n", root.display()),
    );

    let (ok, out, err) = submit(
        &c,
        std::slice::from_ref(&table),
        "SELECT id, url_download(url, 'null') IS NOT NULL AS fetched FROM urls ORDER BY id",
    );
    assert!(ok, "{out}\n{err}");
    let fetched: Vec<&str> = out.lines().skip(1).map(|l| l.trim()).collect();
    assert_eq!(
        fetched,
        ["0,true", "1,false", "2,false", "3,false"],
        "only the file under the root is read (the worker has the driver's roots; \
         outside the root, /proc and loopback are refused)"
    );
    assert_eq!(
        server.requests(),
        0,
        "the loopback server was never reached"
    );

    for (id, reason) in [
        (1, "outside access.local_roots"),
        (2, "never read"),
        (3, "127.0.0.1 is a loopback address"),
    ] {
        let (ok, out, err) = submit(
            &c,
            std::slice::from_ref(&table),
            &format!("SELECT length(url_download(url)) FROM urls WHERE id = {id}"),
        );
        assert!(!ok, "row {id} must fail: {out}");
        assert!(
            err.contains("refused by the access policy"),
            "row {id}: {err}"
        );
        assert!(err.contains(reason), "row {id}: {err}");
    }

    // A video under the root is decoded on the workers (opened under the
    // policy and read by FFmpeg through its descriptor).
    let video = root.join("clip.mp4");
    regatta_tests::video_makers::zoom_video(
        &regatta_tests::photos_dir().join("chelsea.png"),
        &video,
        regatta_tests::video_makers::VideoKind::H264Mp4,
        6,
        (64, 48),
    )
    .unwrap();
    let (ok, out, err) = submit(
        &c,
        &[],
        &format!(
            "SELECT count(*) AS n FROM video_frames('{}')",
            video.display()
        ),
    );
    assert!(ok, "{out}\n{err}");
    assert_eq!(out.lines().nth(1).map(str::trim), Some("6"), "{out}");

    // A table outside the roots is refused when the job is planned.
    let elsewhere = common::table(d.path(), "elsewhere", "id", 1, "SELECT 1 AS id");
    let (ok, _, err) = submit(&c, &[elsewhere], "SELECT count(*) FROM elsewhere");
    assert!(!ok);
    assert!(err.contains("outside access.local_roots"), "{err}");
    // And so is SQL naming a file directly.
    let direct = format!(
        "SELECT count(*) FROM '{}'",
        d.path().join("elsewhere/part-0.parquet").display()
    );
    let (ok, _, err) = submit(&c, &[], &direct);
    assert!(!ok);
    assert!(err.contains("refused by the access policy"), "{err}");
}
