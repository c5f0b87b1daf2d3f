//! The access policy of a session: what `url_download`, `read_*` and
//! `video_frames` may reach. Servers on loopback stand for the internal
//! addresses a crawled URL column could name.

use std::path::Path;
use std::sync::Arc;

use regatta::arrow::array::{Array, BinaryArray};
use regatta::prelude::*;
use regatta::{AccessPolicy, EngineOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::{concat, url_frame};

/// A loopback HTTP server with a few routes: `/ok` (5 bytes), `/big` (5,000
/// bytes with a Content-Length), `/stream` (5,000 bytes chunked, no length),
/// `/to?URL` (a 302 to URL).
struct Routes {
    ip: &'static str,
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Routes {
    async fn start() -> Self {
        Self::start_on("127.0.0.1").await
    }

    async fn start_on(ip: &'static str) -> Self {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    let head = String::from_utf8_lossy(&buf[..n]).to_string();
                    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                    let reply = if path == "/ok" {
                        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
                            .to_string()
                    } else if path == "/big" {
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n{}",
                            "x".repeat(5000)
                        )
                    } else if path == "/stream" {
                        let mut r = String::from(
                            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
                        );
                        for _ in 0..50 {
                            r.push_str(&format!("64\r\n{}\r\n", "y".repeat(100)));
                        }
                        r.push_str("0\r\n\r\n");
                        r
                    } else if let Some(to) = path.strip_prefix("/to?") {
                        format!(
                            "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        )
                    } else {
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_string()
                    };
                    let _ = sock.write_all(reply.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Self { ip, port, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}:{}{path}", self.ip, self.port)
    }
}

impl Drop for Routes {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn session(policy: AccessPolicy) -> Session {
    Session::local_with(EngineOptions {
        access: policy,
        ..EngineOptions::default()
    })
    .unwrap()
}

/// Downloads `urls` under `on_error = 'null'`: each row's bytes, or None.
async fn download(session: &Session, urls: &[String]) -> Vec<Option<Vec<u8>>> {
    let df = url_frame(session, urls)
        .with_column(
            "bytes",
            col("url").url_download_with(OnError::Null, 5_000, 0),
        )
        .unwrap()
        .sort(vec![col("id").sort(true, false)])
        .unwrap();
    let b = concat(&df.collect().await.unwrap());
    let bytes = b
        .column_by_name("bytes")
        .unwrap()
        .as_any()
        .downcast_ref::<BinaryArray>()
        .unwrap()
        .clone();
    (0..bytes.len())
        .map(|i| bytes.is_valid(i).then(|| bytes.value(i).to_vec()))
        .collect()
}

/// The error downloading `url` alone gives under `on_error = 'raise'`.
async fn refusal(session: &Session, url: &str) -> String {
    url_frame(session, &[url.to_string()])
        .with_column(
            "bytes",
            col("url").url_download_with(OnError::Raise, 5_000, 0),
        )
        .unwrap()
        .collect()
        .await
        .expect_err(url)
        .to_string()
}

fn loopback_only() -> AccessPolicy {
    AccessPolicy {
        allow_networks: vec!["127.0.0.1/32".parse().unwrap()],
        ..AccessPolicy::cluster()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_to_a_refused_address_is_a_row_error() {
    let server = Routes::start().await;
    let other = Routes::start_on("127.0.0.2").await;
    let s = session(loopback_only());
    let to_metadata = server.url("/to?http://169.254.169.254/latest/meta-data/");
    let to_other_loopback = server.url(&format!("/to?{}", other.url("/ok")));
    let to_allowed = server.url(&format!("/to?http://127.0.0.1:{}/ok", server.port));
    let got = download(
        &s,
        &[
            server.url("/ok"),
            to_metadata.clone(),
            to_other_loopback.clone(),
            to_allowed,
        ],
    )
    .await;
    assert_eq!(got[0].as_deref(), Some(&b"hello"[..]));
    assert_eq!(
        got[1], None,
        "the redirect to the metadata address is refused"
    );
    assert_eq!(
        got[2], None,
        "the redirect to an address not allowed is refused"
    );
    assert_eq!(
        got[3].as_deref(),
        Some(&b"hello"[..]),
        "an allowed redirect is followed"
    );
    let e = refusal(&s, &to_metadata).await;
    assert!(e.contains("refused by the access policy"), "{e}");
    assert!(e.contains("169.254.169.254 is a link-local address"), "{e}");
    let e = refusal(&s, &to_other_loopback).await;
    assert!(e.contains("127.0.0.2 is a loopback address"), "{e}");
    // Without the policy the same redirect reaches the other server.
    let open = session(AccessPolicy::local());
    assert_eq!(
        download(&open, &[to_other_loopback]).await[0].as_deref(),
        Some(&b"hello"[..])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn names_are_checked_after_resolution() {
    let server = Routes::start().await;
    let s = session(AccessPolicy::cluster());
    let by_name = format!("http://localhost:{}/ok", server.port);
    let e = refusal(&s, &by_name).await;
    assert!(e.contains("refused by the access policy"), "{e}");
    assert!(e.contains("loopback address"), "{e}");
    let e = refusal(&s, &server.url("/ok")).await;
    assert!(e.contains("127.0.0.1 is a loopback address"), "{e}");
    let e = refusal(&s, "http://[::ffff:169.254.169.254]/latest").await;
    assert!(e.contains("link-local"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_body_is_stopped_at_the_cap() {
    let server = Routes::start().await;
    let s = session(AccessPolicy {
        max_download_bytes: 1_000,
        ..loopback_only()
    });
    let got = download(
        &s,
        &[server.url("/ok"), server.url("/big"), server.url("/stream")],
    )
    .await;
    assert_eq!(got[0].as_deref(), Some(&b"hello"[..]));
    assert_eq!(got[1], None, "a declared length over the cap");
    assert_eq!(got[2], None, "a chunked body that passes the cap");
    for path in ["/big", "/stream"] {
        let e = refusal(&s, &server.url(path)).await;
        assert!(e.contains("access.max_download_bytes"), "{path}: {e}");
    }
    // A local session's cap stops a file that never ends.
    let small = session(AccessPolicy {
        max_download_bytes: 1 << 20,
        ..AccessPolicy::local()
    });
    let e = refusal(&small, "/dev/zero").await;
    assert!(e.contains("access.max_download_bytes"), "{e}");
}

fn write(path: &Path, bytes: &[u8]) -> String {
    std::fs::write(path, bytes).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn local_paths_outside_the_roots_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("allowed");
    std::fs::create_dir_all(&root).unwrap();
    let inside = write(&root.join("in.bin"), b"inside");
    let outside = write(&d.path().join("secret.bin"), b"secret");
    let link = root.join("link.bin");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let policy = AccessPolicy {
        local_roots: Some(vec![root.clone()]),
        ..AccessPolicy::cluster()
    };
    let s = session(policy);
    let urls = [
        inside.clone(),
        format!("file://{inside}"),
        outside.clone(),
        link.display().to_string(),
        format!("{}/../secret.bin", root.display()),
        "/proc/self/environ".to_string(),
    ];
    let got = download(&s, &urls).await;
    assert_eq!(got[0].as_deref(), Some(&b"inside"[..]));
    assert_eq!(got[1].as_deref(), Some(&b"inside"[..]));
    for (i, g) in got.iter().enumerate().skip(2) {
        assert_eq!(*g, None, "{} must be refused", urls[i]);
    }
    let e = refusal(&s, &outside).await;
    assert!(e.contains("outside access.local_roots"), "{e}");
    let e = refusal(&s, "/proc/self/environ").await;
    assert!(e.contains("refused by the access policy"), "{e}");

    // Tables: a file, a glob matching a file outside through a link, SQL's
    // file tables.
    let table = root.join("t.parquet");
    let batch = regatta::arrow::record_batch::RecordBatch::try_from_iter([(
        "x",
        Arc::new(regatta::arrow::array::Int64Array::from(vec![1, 2])) as _,
    )])
    .unwrap();
    let open = session(AccessPolicy::local());
    open.from_batches(vec![batch])
        .unwrap()
        .write_parquet(&table.display().to_string())
        .await
        .unwrap();
    let outside_table = d.path().join("o.parquet");
    std::fs::copy(&table, &outside_table).unwrap();
    assert_eq!(count(&s, &table).await.unwrap(), 2);
    let e = count(&s, &outside_table).await.unwrap_err();
    assert!(e.contains("outside access.local_roots"), "{e}");
    std::os::unix::fs::symlink(&outside_table, root.join("sneaky.parquet")).unwrap();
    let e = s
        .read_parquet(&format!("{}/*.parquet", root.display()))
        .await
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("outside access.local_roots"), "{e}");
}

async fn count(s: &Session, path: &Path) -> Result<usize, String> {
    let df = s
        .read_parquet(&path.display().to_string())
        .await
        .map_err(|e| e.to_string())?;
    let batches = df.collect().await.map_err(|e| e.to_string())?;
    Ok(batches.iter().map(|b| b.num_rows()).sum())
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_name_urls_without_their_query() {
    let server = Routes::start().await;
    let s = session(AccessPolicy::local());
    let presigned = server.url("/missing?X-Amz-Signature=abc123secret&X-Amz-Credential=AKIA");
    let e = refusal(&s, &presigned).await;
    assert!(e.contains("404"), "{e}");
    assert!(e.contains("/missing?"), "the URL is named: {e}");
    assert!(!e.contains("abc123secret") && !e.contains("AKIA"), "{e}");
    // A connection error (reqwest names the URL itself) is cut as well.
    let closed = format!(
        "http://127.0.0.1:{}/x?sig=abc123secret",
        regatta_tests::closed_port()
    );
    let e = refusal(&s, &closed).await;
    assert!(!e.contains("abc123secret"), "{e}");
}
