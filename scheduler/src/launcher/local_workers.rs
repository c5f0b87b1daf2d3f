//! [`LocalWorkers`]: the self-hosted launcher; worker processes on this machine.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::{LaunchContext, WorkerLauncher};
use crate::{Result, SchedulerError};

/// Starts `count` worker processes here (`program args... --driver ADDR`) and
/// kills them on stop or drop. Workers started by hand or by systemd need no
/// launcher at all.
#[derive(Debug)]
pub struct LocalWorkers {
    program: PathBuf,
    args: Vec<String>,
    count: usize,
    spill_root: PathBuf,
    startup_timeout: Duration,
    children: Mutex<Vec<Child>>,
}

impl LocalWorkers {
    /// `program args` must start a worker that takes `--driver`, `--node-label`
    /// and `--spill-dir` (the CLI's `regatta worker`).
    pub fn new(program: PathBuf, args: Vec<String>, count: usize, spill_root: PathBuf) -> Self {
        Self {
            program,
            args,
            count,
            spill_root,
            startup_timeout: Duration::from_secs(60),
            children: Mutex::new(Vec::new()),
        }
    }

    fn children(&self) -> std::sync::MutexGuard<'_, Vec<Child>> {
        self.children.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait::async_trait]
impl WorkerLauncher for LocalWorkers {
    fn describe(&self) -> String {
        format!("{} local worker processes", self.count)
    }

    async fn start(&self, ctx: LaunchContext) -> Result<()> {
        let mut labels = BTreeSet::new();
        for i in 0..self.count {
            let label = format!("local:{}:{i}", std::process::id());
            let spill = self.spill_root.join(format!("worker-{i}"));
            let child = Command::new(&self.program)
                .args(&self.args)
                .args(["--driver", &ctx.control_address, "--node-label", &label])
                .arg("--spill-dir")
                .arg(&spill)
                .env("REGATTA_TOKEN", &ctx.token)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| {
                    SchedulerError::Launch(format!(
                        "cannot start worker {i} ({}): {e}",
                        self.program.display()
                    ))
                })?;
            self.children().push(child);
            labels.insert(label);
        }
        ctx.wait_for(&labels, self.startup_timeout)
            .await
            .map_err(|missing| {
                SchedulerError::Launch(format!(
                    "{} of {} local workers did not register within {:?}",
                    missing.len(),
                    self.count,
                    self.startup_timeout
                ))
            })
    }

    async fn stop(&self) -> Result<()> {
        let children = std::mem::take(&mut *self.children());
        for mut c in children {
            let _ = c.kill().await;
        }
        Ok(())
    }
}
