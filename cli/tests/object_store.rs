//! The CLI and a cluster over a real S3-compatible server (s3s-fs on
//! 127.0.0.1): `regatta sql --output` to the store, wrong credentials, the
//! store stopped mid-query, and a driver with three workers that share no
//! directory, reading W1's images from the store and writing Lance back to it.

// Test scaffolding: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{ok, output, regatta, start, Proc};
use regatta_tests::s3_server::{S3Server, SECRET_KEY};

fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// `regatta` reaching `server` through the standard environment.
fn cli(server: &S3Server) -> Command {
    let mut c = regatta();
    for (k, v) in server.env() {
        c.env(k, v);
    }
    c
}

fn sql(server: &S3Server, tables: &[&str], query: &str) -> String {
    let mut c = cli(server);
    c.args(["sql", "-f", "csv"]);
    for t in tables {
        c.args(["-t", t]);
    }
    ok(c.arg(query))
}

const ROWS: &str =
    "SELECT column1 AS id, column2 AS name FROM (VALUES (1, 'a'), (2, 'b'), (3, 'c'))";

#[test]
fn sql_output_writes_each_format_to_the_store_and_sql_reads_it_back() {
    let _s = serial();
    let server = S3Server::start(&["out"]);
    for (fmt, dest, table) in [
        ("parquet", "s3://out/p", "s3://out/p/*.parquet"),
        ("csv", "s3://out/c", "s3://out/c/*.csv"),
        ("json", "s3://out/j", "s3://out/j/*.json"),
        ("lance", "s3://out/l.lance", "s3://out/l.lance"),
        ("parquet", "s3://out/one.parquet", "s3://out/one.parquet"),
    ] {
        let said = ok(cli(&server)
            .args(["sql", "--output", dest, "--output-format", fmt])
            .arg(ROWS));
        assert!(said.contains(&format!("wrote 3 rows to {dest}")), "{said}");
        let back = sql(
            &server,
            &[&format!("t={table}")],
            "SELECT id, name FROM t ORDER BY id",
        );
        assert_eq!(back, "id,name\n1,a\n2,b\n3,c\n", "{fmt} at {dest}");
    }
    // Overwrite replaces, create refuses.
    ok(cli(&server)
        .args([
            "sql",
            "--output",
            "s3://out/p",
            "--output-mode",
            "overwrite",
        ])
        .arg("SELECT 9 AS id, 'z' AS name"));
    assert_eq!(
        sql(&server, &["t=s3://out/p/*.parquet"], "SELECT id FROM t"),
        "id\n9\n"
    );
    let (wrote, _, err) = output(
        cli(&server)
            .args(["sql", "--output", "s3://out/p"])
            .arg(ROWS),
    );
    assert!(
        !wrote && err.contains("s3://out/p") && err.contains("already exists"),
        "{err}"
    );
}

#[test]
fn wrong_credentials_fail_naming_the_url_and_what_to_check_without_the_secret() {
    let _s = serial();
    let server = S3Server::start(&["data"]);
    ok(cli(&server)
        .args(["sql", "--output", "s3://data/t.parquet"])
        .arg(ROWS));
    let started = Instant::now();
    let (success, _, err) = output(
        cli(&server)
            .env("AWS_SECRET_ACCESS_KEY", "not-the-secret-at-all")
            .args([
                "sql",
                "-t",
                "t=s3://data/t.parquet",
                "SELECT count(*) FROM t",
            ]),
    );
    assert!(!success);
    assert!(err.contains("s3://data/t.parquet"), "{err}");
    assert!(
        err.contains("access denied") && err.contains("AWS_SECRET_ACCESS_KEY"),
        "{err}"
    );
    assert!(
        !err.contains("not-the-secret-at-all") && !err.contains(SECRET_KEY),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    // A bucket that does not exist is named as such.
    let (success, _, err) = output(cli(&server).args([
        "sql",
        "-t",
        "t=s3://no-such-bucket/x.parquet",
        "SELECT count(*) FROM t",
    ]));
    assert!(
        !success && err.contains("s3://no-such-bucket/x.parquet"),
        "{err}"
    );
}

/// An HTTP server that answers its first request only when told to, so a
/// query can be caught while it runs.
fn held_http_server() -> (String, mpsc::Receiver<()>, mpsc::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/held.bin", listener.local_addr().unwrap());
    let (arrived_tx, arrived_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = arrived_tx.send(());
            let _ = release_rx.recv_timeout(Duration::from_secs(120));
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nheld",
            );
        }
    });
    (url, arrived_rx, release_tx)
}

#[test]
fn the_store_stopped_mid_query_fails_with_a_clear_error_and_commits_nothing() {
    let _s = serial();
    let mut server = S3Server::start(&["media", "out"]);
    let d = tempfile::tempdir().unwrap();
    for i in 0..200 {
        server.put_file(
            "media",
            &format!("o/{i}.bin"),
            format!("object {i}").as_bytes(),
        );
    }
    let (held, arrived, release) = held_http_server();
    // The held URL first, then the objects: the download operator starts on the
    // held one and the objects queue behind the connection bound.
    let mut rows = vec![format!("(0, '{held}')")];
    rows.extend((1..=200).map(|i| format!("({i}, 's3://media/o/{}.bin')", i - 1)));
    let urls = d.path().join("urls.parquet");
    ok(cli(&server)
        .args(["sql", "--output", urls.to_str().unwrap()])
        .arg(format!(
            "SELECT column1 AS id, column2 AS url FROM (VALUES {})",
            rows.join(", ")
        )));
    let child = cli(&server)
        .env("REGATTA_MAX_CONNECTIONS", "1")
        .args(["sql", "-t", &format!("u={}", urls.display())])
        .args(["--output", "s3://out/res.parquet"])
        .arg("SELECT id, url_download(url) AS b FROM u")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Proc(child);
    arrived
        .recv_timeout(Duration::from_secs(60))
        .expect("the query reached its first download");
    server.stop();
    release.send(()).unwrap();
    let mut status = None;
    common::wait_until(
        "the query to end with the store down",
        Duration::from_secs(90),
        || {
            status = child.0.try_wait().unwrap();
            status.is_some()
        },
    );
    let status = status.unwrap();
    assert!(!status.success());
    let mut err = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        err.contains("s3://media/o/"),
        "the error names the object: {err}"
    );
    assert!(
        err.contains("check that it is up") || err.contains("failed"),
        "{err}"
    );
    assert!(!err.contains(SECRET_KEY), "{err}");
    server.restart();
    assert!(
        !server.root.join("out").join("res.parquet").exists(),
        "no partial output is committed"
    );
}

/// W1 (download, decode, filter, resize, the stand-in model) over images in
/// the store, its output a Lance dataset in the store.
const W1_THUMBS: &str = "SELECT id, image_mean(image_resize(img, 224, 224)) AS label, \
     image_encode(image_resize(img, 32, 32), 'png') AS thumb FROM ( \
     SELECT id, image_decode(url_download(url, 'null'), 'RGB', 'null') AS img FROM images) \
     WHERE img IS NOT NULL AND image_width(img) >= 224 AND image_height(img) >= 224";

fn upload_images(server: &S3Server, n: usize) {
    let mut rows = Vec::new();
    for i in 0..n {
        let (w, h) = [(320, 240), (224, 300), (200, 260)][i % 3];
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 7 + i as u32) as u8, (y * 3) as u8, (x ^ y) as u8])
        });
        let mut bytes = std::io::Cursor::new(Vec::new());
        img.write_to(&mut bytes, image::ImageFormat::Jpeg).unwrap();
        server.put_file("data", &format!("img/{i}.jpg"), bytes.get_ref());
        rows.push(format!("({i}, 's3://data/img/{i}.jpg')"));
    }
    server.put_file("data", "img/broken.jpg", b"\xff\xd8\xff not a jpeg");
    rows.push(format!("({n}, 's3://data/img/broken.jpg')"));
    rows.push(format!("({}, 's3://data/img/missing.jpg')", n + 1));
    ok(cli(server)
        .args(["sql", "--output", "s3://data/images.parquet"])
        .arg(format!(
            "SELECT column1 AS id, column2 AS url FROM (VALUES {})",
            rows.join(", ")
        )));
}

/// The objects under `dir` of the server's root, as keys relative to it.
fn objects(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

/// Rows of the Lance dataset at `url` as pylance counts them, reading from the
/// server (`REGATTA_PYLANCE_PYTHON`: a Python with pylance 14; scripts/test makes one).
fn pylance_rows(server: &S3Server, url: &str) -> usize {
    let python = std::env::var("REGATTA_PYLANCE_PYTHON").unwrap_or_else(|_| {
        panic!("set REGATTA_PYLANCE_PYTHON to a Python with pylance==14.0.2 (scripts/test does)")
    });
    let script = format!(
        "import lance\n\
         ds = lance.dataset({url:?}, storage_options={{'access_key_id': {ak:?}, \
         'secret_access_key': {sk:?}, 'endpoint': {ep:?}, 'region': 'us-east-1', \
         'allow_http': 'true'}})\n\
         print(ds.count_rows())\n",
        ak = regatta_tests::s3_server::ACCESS_KEY,
        sk = SECRET_KEY,
        ep = server.endpoint,
    );
    ok(Command::new(python).arg("-c").arg(script))
        .trim()
        .parse()
        .unwrap()
}

fn in_dir(mut c: Command, dir: &Path) -> Command {
    std::fs::create_dir_all(dir).unwrap();
    c.current_dir(dir);
    c
}

#[test]
fn a_cluster_sharing_no_directory_reads_w1_from_the_store_and_writes_lance_back() {
    let _s = serial();
    let server = S3Server::start(&["data", "out"]);
    upload_images(&server, 24);
    let d = tempfile::tempdir().unwrap();
    let mut driver = cli(&server);
    driver.args(["driver", "--bind", "127.0.0.1:0"]);
    let (_driver, line) = start(in_dir(driver, &d.path().join("driver")), "listening on");
    let address = line.rsplit(' ').next().unwrap().to_string();
    let mut workers: Vec<Proc> = Vec::new();
    for i in 0..3 {
        let home = d.path().join(format!("worker-{i}"));
        let mut w = cli(&server);
        w.args(["worker", "--cpus", "1", "--driver", &address, "--spill-dir"])
            .arg(home.join("spill"));
        workers.push(start(in_dir(w, &home), "serving shuffle data").0);
    }
    let client_dir = d.path().join("client");
    let mut submit = in_dir(cli(&server), &client_dir);
    submit
        .env("REGATTA_DRIVER", &address)
        .args(["submit", "-t", "images=s3://data/images.parquet"])
        .args(["-o", "s3://out/w1.lance"])
        .arg(W1_THUMBS);
    ok(&mut submit);
    assert!(
        server.root.join("out/w1.lance/_versions").is_dir(),
        "the dataset is in the store"
    );
    let read_back = "SELECT id, label, thumb FROM t ORDER BY id";
    let clustered = sql(&server, &["t=s3://out/w1.lance"], read_back);
    let local = sql(
        &server,
        &["images=s3://data/images.parquet"],
        &format!("SELECT * FROM ({W1_THUMBS}) ORDER BY id"),
    );
    assert_eq!(clustered, local);
    assert_eq!(clustered.lines().count(), 1 + 16, "{clustered}");
    assert_eq!(
        pylance_rows(&server, "s3://out/w1.lance"),
        16,
        "pylance reads it from the store"
    );
    // Parquet parts: staged by the workers in the store, published by the driver.
    let mut submit = in_dir(cli(&server), &client_dir);
    submit
        .env("REGATTA_DRIVER", &address)
        .args(["submit", "-t", "images=s3://data/images.parquet"])
        .args(["-o", "s3://out/w1_parquet"])
        .arg(W1_THUMBS);
    ok(&mut submit);
    let published = sql(&server, &["t=s3://out/w1_parquet/*.parquet"], read_back);
    assert_eq!(published, local);
    // The objects (s3s-fs keeps emptied directories; S3 has none).
    let names = objects(&server.root.join("out/w1_parquet"));
    assert!(names.contains(&"_SUCCESS".to_string()), "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| n == "_SUCCESS" || n.starts_with("part-")),
        "no staging left: {names:?}"
    );
    // No process wrote anything into another's directory, and nothing of the
    // output is on local disk.
    for dir in ["driver", "client", "worker-0"] {
        let names: Vec<String> = std::fs::read_dir(d.path().join(dir))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n != "spill")
            .collect();
        assert!(names.is_empty(), "{dir} holds {names:?}");
    }
    drop(workers);
}

/// A lone driver on `port` (fixed, so its workers find it again after a
/// restart) that reaches `server`.
fn lone_driver(server: &S3Server, port: u16, dir: &Path) -> Proc {
    let mut driver = cli(server);
    driver.args(["driver", "--bind", &format!("127.0.0.1:{port}")]);
    start(in_dir(driver, dir), "listening on").0
}

#[test]
fn appends_across_lone_driver_restarts_keep_every_submissions_rows_once() {
    // Job numbers restart at 1 with a lone driver: each submission's own id,
    // not its number, names what it commits, so no append replaces another.
    let _s = serial();
    let server = S3Server::start(&["out"]);
    let d = tempfile::tempdir().unwrap();
    let table = common::table(
        d.path(),
        "src",
        "id",
        2,
        "SELECT CAST(value AS BIGINT) AS id FROM generate_series(1, 100)",
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let parquet = d.path().join("out.parquet");
    let lance = d.path().join("out.lance");
    let outputs = [
        (parquet.to_string_lossy().to_string(), "parquet"),
        (lance.to_string_lossy().to_string(), "lance"),
        ("s3://out/appended".to_string(), "parquet"),
    ];
    let mut worker: Option<Proc> = None;
    for (round, mode) in ["create", "append", "append"].into_iter().enumerate() {
        let driver = lone_driver(&server, port, &d.path().join(format!("driver-{round}")));
        if worker.is_none() {
            let mut w = cli(&server);
            w.args(["worker", "--cpus", "2", "--driver", &address, "--spill-dir"])
                .arg(d.path().join("spill"));
            worker = Some(start(in_dir(w, &d.path().join("worker")), "serving shuffle data").0);
        }
        // The worker registers again with the new driver on its own.
        common::wait_until(
            "the worker registered again",
            Duration::from_secs(60),
            || {
                let mut c = cli(&server);
                c.env("REGATTA_DRIVER", &address).arg("cluster");
                let (_, out, _) = output(&mut c);
                common::WorkerLine::parse_all(&out).iter().any(|w| w.alive)
            },
        );
        for (dest, format) in &outputs {
            let sql = format!("SELECT id, {round} AS round FROM src");
            let mut c = cli(&server);
            c.env("REGATTA_DRIVER", &address)
                .args(["submit", "-t", &table, "--output-format", format])
                .args(["--output-mode", mode, "-o", dest])
                .arg(&sql);
            let (wrote, out, err) = output(&mut c);
            assert!(
                wrote && err.contains("wrote 100 rows"),
                "{dest}: {out}\n{err}"
            );
        }
        drop(driver);
    }
    for (dest, table) in [
        (&outputs[0].0, format!("t={}/*.parquet", parquet.display())),
        (&outputs[1].0, format!("t={}", lance.display())),
        (&outputs[2].0, "t=s3://out/appended/*.parquet".to_string()),
    ] {
        let counted = sql(
            &server,
            &[&table],
            "SELECT count(*) AS n, count(DISTINCT id) AS ids, count(DISTINCT round) AS rounds, \
             count(DISTINCT id * 10 + round) AS once FROM t",
        );
        assert_eq!(counted, "n,ids,rounds,once\n300,100,3,300\n", "{dest}");
    }
    drop(worker);
}
