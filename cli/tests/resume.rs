//! Resumable jobs (`--resume-key`): a rerun writing to the same output skips
//! the rows whose keys it holds and does only the rest. Real processes: a
//! driver and workers killed mid-job and started again, images served over
//! HTTP by a server that counts every download.

// Test scaffolding: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::{cluster_with, ok, regatta, table, with_tables, WorkerSetup};

/// W1's shape: download, decode, resize, label.
const W1_SHAPE: &str = "SELECT id, image_mean(image_resize(image_decode(url_download(url), \
     'RGB'), 32, 32)) AS label FROM images";

/// The same, keeping the URL: a job resumable on a string key.
const W1_SHAPE_WITH_URL: &str = "SELECT id, url, image_mean(image_resize(image_decode(\
     url_download(url), 'RGB'), 32, 32)) AS label FROM images";

/// Serves `dir`'s files over HTTP on loopback, counting each download; the
/// files a predicate names as held wait until released.
struct ImageServer {
    address: String,
    downloads: Arc<Mutex<HashMap<String, u32>>>,
    released: Arc<Release>,
}

/// Held downloads wait on this until the test releases them.
#[derive(Default)]
struct Release {
    done: Mutex<bool>,
    changed: Condvar,
}

impl Release {
    fn release(&self) {
        *self.done.lock().unwrap() = true;
        self.changed.notify_all();
    }

    fn wait(&self) {
        let mut done = self.done.lock().unwrap();
        while !*done {
            done = self.changed.wait(done).unwrap();
        }
    }
}

impl ImageServer {
    fn start(dir: PathBuf, held: fn(&str) -> bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let downloads: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        let released = Arc::new(Release::default());
        let (counts, free) = (downloads.clone(), released.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (dir, counts, free) = (dir.clone(), counts.clone(), free.clone());
                std::thread::spawn(move || serve(conn, &dir, &counts, &free, held));
            }
        });
        Self {
            address,
            downloads,
            released,
        }
    }

    /// Every download so far by file name, and forgets them.
    fn take_downloads(&self) -> HashMap<String, u32> {
        std::mem::take(&mut *self.downloads.lock().unwrap())
    }
}

fn serve(
    conn: TcpStream,
    dir: &Path,
    counts: &Mutex<HashMap<String, u32>>,
    released: &Release,
    held: fn(&str) -> bool,
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).map_or(true, |n| n == 0) || line == "\r\n" {
            break;
        }
    }
    let name = request
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .trim_start_matches('/')
        .to_string();
    *counts.lock().unwrap().entry(name.clone()).or_default() += 1;
    if held(&name) {
        // Until released, or the client goes (its process killed).
        released.wait();
    }
    let mut conn = conn;
    let reply = match std::fs::read(dir.join(&name)) {
        Ok(body) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: image/jpeg\r\n\
                 Connection: close\r\n\r\n",
                body.len()
            );
            [head.into_bytes(), body].concat()
        }
        Err(_) => {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
        }
    };
    let _ = conn.write_all(&reply);
}

/// `n` JPEG images under `dir/img`, listed with their URLs on `server` in an
/// `images` table of `files` Parquet files (row `id` in file `id % files`).
fn image_table(dir: &Path, server: &str, n: usize, files: usize) -> String {
    let img = dir.join("img");
    std::fs::create_dir_all(&img).unwrap();
    for i in 0..n {
        let picture = image::RgbImage::from_fn(64, 48, |x, y| {
            image::Rgb([(x * 3 + i as u32) as u8, (y * 5) as u8, (x ^ y) as u8])
        });
        picture.save(img.join(format!("{i}.jpg"))).unwrap();
    }
    listing(dir, server, 0..n, files)
}

/// An `images` table under `dir` listing the images `ids` on `server`.
fn listing(dir: &Path, server: &str, ids: impl Iterator<Item = usize>, files: usize) -> String {
    let rows: Vec<String> = ids.map(|i| format!("({i}, '{server}/{i}.jpg')")).collect();
    let values = format!(
        "SELECT column1 AS id, column2 AS url FROM (VALUES {})",
        rows.join(", ")
    );
    table(dir, "images", "id", files, &values)
}

/// The ids in the output table `out=...`, sorted, duplicates kept.
fn output_ids(out: &str) -> Vec<u64> {
    let csv = ok(regatta().args([
        "sql",
        "-f",
        "csv",
        "-t",
        out,
        "SELECT id FROM out ORDER BY id",
    ]));
    csv.lines().skip(1).map(|l| l.parse().unwrap()).collect()
}

/// The row count of `out=...`, or 0 while it does not exist.
fn output_rows(out: &str) -> usize {
    let mut cmd = regatta();
    cmd.args([
        "sql",
        "-f",
        "csv",
        "-t",
        out,
        "SELECT count(*) AS n FROM out",
    ]);
    let (success, stdout, _) = common::output(&mut cmd);
    if !success {
        return 0;
    }
    stdout
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or(0)
}

/// File names of downloads, sorted.
fn names(downloads: &HashMap<String, u32>) -> Vec<String> {
    let mut v: Vec<String> = downloads.keys().cloned().collect();
    v.sort();
    v
}

fn jpgs(ids: impl Iterator<Item = usize>) -> Vec<String> {
    let mut v: Vec<String> = ids.map(|i| format!("{i}.jpg")).collect();
    v.sort();
    v
}

#[test]
fn a_rerun_after_the_whole_cluster_is_killed_writes_each_row_once_and_does_only_the_rest() {
    const N: usize = 40;
    const FILES: usize = 4;
    let d = tempfile::tempdir().unwrap();
    // The rows of the last file (id % 4 == 3) hang until released: its task
    // never ends before the kill, while the other three finish.
    let held = |name: &str| {
        name.trim_end_matches(".jpg")
            .parse::<usize>()
            .is_ok_and(|i| i % FILES == FILES - 1)
    };
    let server = ImageServer::start(d.path().join("img"), held);
    let tables = vec![image_table(d.path(), &server.address, N, FILES)];
    let out = d.path().join("out.lance");
    let out_table = format!("out={}", out.display());
    let setup = WorkerSetup {
        count: 2,
        cpus: 2,
        ..WorkerSetup::default()
    };
    let submit = |c: &common::Cluster| {
        let mut cmd = c.cli();
        cmd.args([
            "submit",
            "--output-format",
            "lance",
            "--resume-key",
            "id",
            "-o",
        ])
        .arg(&out);
        with_tables(&mut cmd, &tables).arg(W1_SHAPE);
        cmd
    };

    let first = cluster_with(&d.path().join("spill1"), setup.clone());
    let mut running = submit(&first)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let done_before = N - N / FILES;
    common::wait_until(
        "the three finished tasks' rows committed while the fourth hangs",
        Duration::from_secs(120),
        || output_rows(&out_table) >= done_before,
    );
    // Lose everything: driver, workers and the client.
    drop(first);
    let _ = running.kill();
    let _ = running.wait();
    let committed = output_ids(&out_table);
    assert_eq!(
        committed,
        (0..N)
            .filter(|i| i % FILES != FILES - 1)
            .map(|i| i as u64)
            .collect::<Vec<_>>(),
        "what the killed job committed"
    );
    let first_downloads = server.take_downloads();
    assert!(first_downloads.len() >= done_before, "{first_downloads:?}");

    // A new cluster, the same command: only the rows the output lacks.
    server.released.release();
    let second = cluster_with(&d.path().join("spill2"), setup);
    let (success, stdout, stderr) = common::output(&mut submit(&second));
    assert!(success, "{stdout}\n{stderr}");
    let rerun = server.take_downloads();
    assert_eq!(
        names(&rerun),
        jpgs((0..N).filter(|i| i % FILES == FILES - 1)),
        "the rerun downloads exactly the rows the output lacked"
    );
    assert!(rerun.values().all(|&n| n == 1), "{rerun:?}");
    assert_eq!(
        output_ids(&out_table),
        (0..N as u64).collect::<Vec<_>>(),
        "every row exactly once"
    );

    // Nothing left: a third run downloads nothing and adds nothing.
    let (success, stdout, stderr) = common::output(&mut submit(&second));
    assert!(success, "{stdout}\n{stderr}");
    assert!(server.take_downloads().is_empty());
    assert_eq!(output_ids(&out_table).len(), N);
}

#[test]
fn a_local_resumable_write_skips_what_the_output_holds_in_parquet_and_lance() {
    const N: usize = 12;
    let d = tempfile::tempdir().unwrap();
    let server = ImageServer::start(d.path().join("img"), |_| false);
    let all = image_table(d.path(), &server.address, N, 2);
    // Integer keys (held as ranges) into Parquet and Lance, and string keys
    // (held as fingerprints).
    let runs = [
        ("out", "parquet", "id", W1_SHAPE),
        ("out.lance", "lance", "id", W1_SHAPE),
        ("out-by-url", "parquet", "url", W1_SHAPE_WITH_URL),
    ];
    for (name, format, key, query) in runs {
        let out = d.path().join(name);
        let out_table = if format == "parquet" {
            format!("out={}/*.parquet", out.display())
        } else {
            format!("out={}", out.display())
        };
        let run = |source: &str| {
            let mut cmd = regatta();
            cmd.args(["sql", "--output-format", format, "--resume-key", key, "-o"])
                .arg(&out);
            ok(with_tables(&mut cmd, &[source.to_string()]).arg(query))
        };
        // A first run that got half way: the even rows only.
        let sub = d.path().join(format!("half-{name}"));
        let half = listing(&sub, &server.address, (0..N).step_by(2), 1);
        run(&half);
        assert_eq!(names(&server.take_downloads()), jpgs((0..N).step_by(2)));
        // The rerun over everything fetches only the odd rows.
        let said = run(&all);
        assert!(said.contains(&format!("wrote {} rows", N / 2)), "{said}");
        assert_eq!(names(&server.take_downloads()), jpgs((1..N).step_by(2)));
        assert_eq!(output_ids(&out_table), (0..N as u64).collect::<Vec<_>>());
        // Done: nothing fetched, nothing written.
        let said = run(&all);
        assert!(said.contains("wrote 0 rows"), "{said}");
        assert!(server.take_downloads().is_empty());
    }
}

#[test]
fn a_resume_key_the_result_lacks_is_refused_before_anything_runs() {
    let d = tempfile::tempdir().unwrap();
    let server = ImageServer::start(d.path().join("img"), |_| false);
    let tables = vec![image_table(d.path(), &server.address, 2, 1)];
    let mut cmd = regatta();
    cmd.args(["sql", "--resume-key", "no_such", "-o"])
        .arg(d.path().join("out"));
    let (success, _, stderr) = common::output(with_tables(&mut cmd, &tables).arg(W1_SHAPE));
    assert!(!success);
    assert!(stderr.contains("resume key \"no_such\""), "{stderr}");
    assert!(server.take_downloads().is_empty());
}
