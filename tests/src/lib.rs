//! Helpers shared by the integration tests: small image files, a crafted
//! decompression bomb, and HTTP servers on 127.0.0.1.

// Test scaffolding shared by the test crates: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use image::{ImageBuffer, Rgb};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub mod http;
pub mod pdf_makers;
pub mod pypi_mirror;

/// Runs a tool that makes test data; an error names it, says how to install it
/// (`what`) and carries its stderr.
pub fn run_tool(cmd: &mut std::process::Command, what: &str) -> Result<(), String> {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("{what}: cannot run it ({e}); scripts/setup.sh installs it"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
pub mod s3_server;
pub mod speech;
pub mod tls_certs;
pub mod video_makers;
pub mod webdriver;

/// Encodes a `w` x `h` gradient as PNG or JPEG bytes.
pub fn image_bytes(w: u32, h: u32, png: bool) -> Vec<u8> {
    let img = ImageBuffer::from_fn(w, h, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 128u8]));
    let mut out = Cursor::new(Vec::new());
    let fmt = if png {
        image::ImageFormat::Png
    } else {
        image::ImageFormat::Jpeg
    };
    img.write_to(&mut out, fmt)
        .expect("encoding an in-memory image cannot fail");
    out.into_inner()
}

/// Writes `bytes` to `dir/name` and returns its `file://` URL.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("temp dir is writable");
    file_url(&p)
}

/// Writes `n` identical `side` x `side` PNGs into `dir`; returns their URLs.
pub fn write_pngs(dir: &Path, n: usize, side: u32) -> Vec<String> {
    let bytes = image_bytes(side, side, true);
    (0..n)
        .map(|i| write_file(dir, &format!("{i}.png"), &bytes))
        .collect()
}

/// The `file://` URL of a path.
pub fn file_url(p: &Path) -> String {
    format!("file://{}", p.display())
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (!(crc & 1)).wrapping_add(1);
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// A valid PNG declaring `w` x `h` RGB pixels with a tiny compressed body: a
/// decompression bomb as far as a careless decoder is concerned.
pub fn png_declaring(w: u32, h: u32) -> Vec<u8> {
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&ihdr);
    out.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    // An IDAT holding a small zlib stream, then IEND: a well-formed file.
    for (kind, data) in [
        (
            &b"IDAT"[..],
            &[0x78u8, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01][..],
        ),
        (&b"IEND"[..], &[][..]),
    ] {
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(data);
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(&chunk);
        out.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    out
}

/// A free 127.0.0.1 port for a process to bind.
pub fn free_port() -> u16 {
    closed_port()
}

/// A 127.0.0.1 port with nothing listening on it.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = l.local_addr().expect("local addr").port();
    drop(l);
    port
}

/// A tiny HTTP server on 127.0.0.1 answering every request with `status` and `body`.
/// It counts requests; dropping it stops it.
pub struct TestServer {
    pub port: u16,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Starts the server.
    pub async fn start(status: u16, body: Vec<u8>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let body = Arc::new(body);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                let body = body.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    let reason = if status == 200 { "OK" } else { "Error" };
                    let head = format!(
                        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = sock.write_all(head.as_bytes()).await;
                    let _ = sock.write_all(&body).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Self {
            port,
            requests,
            task,
        }
    }

    /// A URL on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// Requests served so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A fresh temp dir path as a String, with the guard.
pub fn temp_dir() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().expect("temp dir");
    let p = d.path().to_path_buf();
    (d, p)
}

/// The all-MiniLM-L6-v2 directory (`$REGATTA_MINILM_DIR`, else `models/` in the
/// repository, where `scripts/fetch_model.sh` puts it). Sets the variable so sessions
/// made by the test find the model too.
pub fn minilm_dir() -> PathBuf {
    model_dir("REGATTA_MINILM_DIR", "all-MiniLM-L6-v2")
}

/// Whisper tiny.en's directory (`REGATTA_WHISPER_DIR`, else the repository's
/// `models/whisper-tiny.en`, made by scripts/fetch_whisper.sh); sets the variable
/// so sessions made by the test find it.
pub fn whisper_dir() -> PathBuf {
    model_dir("REGATTA_WHISPER_DIR", "whisper-tiny.en")
}

/// PDFium's directory (`REGATTA_PDFIUM_DIR`, else the repository's
/// `models/pdfium`, made by scripts/fetch_pdfium.sh); sets the variable.
pub fn pdfium_dir() -> PathBuf {
    model_dir("REGATTA_PDFIUM_DIR", "pdfium")
}

/// EfficientNet-Lite0's directory (`REGATTA_EFFICIENTNET_DIR`, else the
/// repository's `models/efficientnet-lite0`, made by scripts/fetch_efficientnet.sh);
/// sets the variable.
pub fn efficientnet_dir() -> PathBuf {
    model_dir("REGATTA_EFFICIENTNET_DIR", "efficientnet-lite0")
}

/// MTCNN's directory (`REGATTA_MTCNN_DIR`, else the repository's `models/mtcnn`,
/// made by scripts/fetch_mtcnn.sh); sets the variable.
pub fn mtcnn_dir() -> PathBuf {
    model_dir("REGATTA_MTCNN_DIR", "mtcnn")
}

/// scikit-image's sample photographs (`REGATTA_PHOTOS_DIR`, else the repository's
/// `models/sample-photos`, made by scripts/fetch_photos.sh).
pub fn photos_dir() -> PathBuf {
    model_dir("REGATTA_PHOTOS_DIR", "sample-photos")
}

/// The repository's root.
pub fn repo_root() -> PathBuf {
    std::path::PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("..")
}

fn model_dir(var: &'static str, name: &str) -> PathBuf {
    static SET: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut set = SET.lock().unwrap_or_else(|p| p.into_inner());
    let dir = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("models").join(name));
    if !set.contains(&var) {
        std::env::set_var(var, &dir);
        set.push(var);
    }
    dir
}

/// Polls `cond` every 10 ms until it holds, or panics naming `what` once
/// `limit` has passed (the async twin of the CLI tests' `wait_until`).
pub async fn wait_for(what: &str, limit: std::time::Duration, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not after {limit:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
