//! The Ray adapter's errors that need no Ray cluster: Ray unreachable, and an
//! older Ray that rejects a field. An older Ray is played by a small HTTP server
//! answering as Ray 2.9 did (a 400 with Python's TypeError for a field it does
//! not know); installing a second Ray here would cost minutes and 400 MB.

// Test scaffolding: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::regatta;

#[test]
fn an_unreachable_ray_fails_at_once_naming_its_url() {
    // Nothing listens on the discard port.
    let url = "http://127.0.0.1:9";
    let mut cmd = regatta();
    cmd.args(["driver", "--bind", "127.0.0.1:0", "--ray", url]);
    let (success, err, _) = common::run_within(cmd, Duration::from_secs(20));
    assert!(!success);
    assert!(
        err.contains("Ray at http://127.0.0.1:9/api/version is unreachable"),
        "{err}"
    );
}

/// One HTTP request as the stub saw it.
#[derive(Debug, Clone)]
struct Seen {
    line: String,
    body: String,
}

/// An HTTP server answering like Ray 2.9's dashboard: one node, packages
/// accepted, and jobs refused with a 400 for fields Ray 2.9 lacked.
fn old_ray() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut length = 0usize;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let line = line.trim().to_string();
            let body = if line.starts_with("PUT") {
                String::new()
            } else {
                String::from_utf8_lossy(&body).to_string()
            };
            let refuse = |field: &str| {
                (
                    400,
                    format!(
                        "Traceback (most recent call last):\n  File \"job_head.py\", line 301\n\
                         TypeError: JobSubmitRequest.__init__() got an unexpected keyword argument '{field}'\n"
                    ),
                )
            };
            let (status, reply) = if line.starts_with("GET /api/version") {
                (200, r#"{"version": "4", "ray_version": "2.9.3", "ray_commit": "x", "session_name": "s"}"#.to_string())
            } else if line.starts_with("GET /api/v0/nodes") {
                (200, r#"{"result": true, "msg": "", "data": {"result": {"total": 1, "result": [{"node_id": "aaaabbbbccccdddd", "node_ip": "127.0.0.1", "is_head_node": true, "state": "ALIVE", "resources_total": {"CPU": 2.0, "memory": 8000000000.0}}]}}}"#.to_string())
            } else if line.starts_with("GET /api/packages") {
                (404, "not found".to_string())
            } else if line.starts_with("PUT /api/packages") {
                (200, String::new())
            } else if line.starts_with("POST /api/jobs/")
                && body.contains("entrypoint_label_selector")
            {
                refuse("entrypoint_label_selector")
            } else if line.starts_with("POST /api/jobs/") && body.contains("entrypoint_memory") {
                refuse("entrypoint_memory")
            } else {
                (404, "not found".to_string())
            };
            log.lock().unwrap().push(Seen { line, body });
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (url, seen)
}

#[test]
fn an_older_ray_that_rejects_a_field_gets_the_fallback_then_a_clear_error() {
    let (url, seen) = old_ray();
    let d = tempfile::tempdir().unwrap();
    let config = d.path().join("ray.toml");
    std::fs::write(
        &config,
        "[ray]\nlaunch = \"job-per-node\"\nworker_memory = \"1GiB\"\n",
    )
    .unwrap();
    let mut cmd = regatta();
    cmd.args(["driver", "-c"])
        .arg(&config)
        .args(["--bind", "127.0.0.1:0", "--ray", &url]);
    // Packaging the binary the first time takes a while; the refusal is then quick.
    let (success, err, _) = common::run_within(cmd, Duration::from_secs(240));
    assert!(!success);
    assert!(
        err.contains("rejected the request (400)")
            && err.contains("unexpected keyword argument 'entrypoint_memory'"),
        "{err}"
    );
    let posts: Vec<Seen> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.line.starts_with("POST"))
        .cloned()
        .collect();
    // First pinned by node id (a field Ray 2.9 lacks), then by node IP.
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert!(
        posts[0].body.contains("entrypoint_label_selector"),
        "{posts:?}"
    );
    assert!(
        !posts[1].body.contains("entrypoint_label_selector")
            && posts[1].body.contains("\"node:127.0.0.1\":0.001"),
        "{posts:?}"
    );
}
