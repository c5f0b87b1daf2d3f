//! A real S3-compatible server for the tests: `s3s-fs` (crates.io), a separate
//! process serving a directory over the S3 protocol with signature checks, on
//! 127.0.0.1. `scripts/setup.sh` installs it; `REGATTA_S3_SERVER` names the
//! binary (else `s3s-fs` on the PATH).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key pair every test server accepts.
pub const ACCESS_KEY: &str = "regatta-test-key";
pub const SECRET_KEY: &str = "regatta-test-secret-5f2e";

/// One running server, stopped when dropped.
pub struct S3Server {
    pub endpoint: String,
    pub port: u16,
    /// Buckets are directories under it.
    pub root: PathBuf,
    _dir: tempfile::TempDir,
    child: Option<Child>,
}

/// The server binary, or a panic saying how to install it.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("REGATTA_S3_SERVER") {
        return PathBuf::from(p);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("s3s-fs"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "the S3 tests need the s3s-fs server: run scripts/setup.sh (it installs \
             s3s-fs and scripts/env.sh sets REGATTA_S3_SERVER), or put s3s-fs on the PATH"
        )
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

impl S3Server {
    /// Starts a server holding the (empty) `buckets`.
    pub fn start(buckets: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let root = dir.path().join("store");
        for b in buckets {
            std::fs::create_dir_all(root.join(b)).expect("a bucket dir");
        }
        let port = free_port();
        let mut s = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            root,
            _dir: dir,
            child: None,
        };
        s.restart();
        s
    }

    /// Starts the process (again, on the same port and data).
    pub fn restart(&mut self) {
        let child = Command::new(binary())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&self.root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting s3s-fs");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "s3s-fs did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process (SIGKILL): the store is down.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The environment a process needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// Storage options that reach this server with its keys.
    pub fn storage_options(&self) -> regatta::storage::StorageOptions {
        regatta::storage::StorageOptions {
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            credentials: Some(regatta::storage::S3Credentials {
                access_key_id: ACCESS_KEY.into(),
                secret_access_key: SECRET_KEY.into(),
                session_token: None,
            }),
            ..Default::default()
        }
    }

    /// Puts a local file's bytes at `bucket/key` by writing into the served
    /// directory (s3s-fs stores objects as files).
    pub fn put_file(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let p = self.root.join(bucket).join(key);
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("dirs");
        std::fs::write(p, bytes).expect("writing an object");
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}
