//! [`WorkerLauncher`]: what starts the worker processes a driver schedules on.
//! The driver only hands it the address workers dial and waits on it; once a
//! worker has registered it is an ordinary worker, whoever started it.

mod local_workers;

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

pub use local_workers::LocalWorkers;

use crate::driver::Driver;
use crate::Result;

/// Starts and stops a driver's workers: local processes, or Ray (regatta-ray).
#[async_trait::async_trait]
pub trait WorkerLauncher: Send + Sync + fmt::Debug {
    /// What it launches on, for logs: `3 local processes`, `Ray at http://…`.
    fn describe(&self) -> String;
    /// Starts workers that dial `ctx.control_address`, and keeps a worker on each
    /// node as nodes come and go. Returns once the first workers registered, or
    /// fails saying why, within a bounded time.
    async fn start(&self, ctx: LaunchContext) -> Result<()>;
    /// Stops every worker it started and cleans up after them.
    async fn stop(&self) -> Result<()>;
}

/// What a launcher gets from the driver.
#[derive(Clone)]
pub struct LaunchContext {
    /// Where workers dial the driver, `host:port`.
    pub control_address: String,
    /// The cluster token workers present.
    pub token: String,
    driver: Driver,
}

impl fmt::Debug for LaunchContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LaunchContext")
            .field("control_address", &self.control_address)
            .finish_non_exhaustive()
    }
}

impl LaunchContext {
    pub fn new(control_address: String, token: String, driver: Driver) -> Self {
        Self {
            control_address,
            token,
            driver,
        }
    }

    /// The node labels of the workers alive now (`ray:<node id>`, ...).
    pub fn live_labels(&self) -> BTreeSet<String> {
        self.driver.membership().live_node_labels()
    }

    /// Waits until every label in `labels` has a live worker; after `timeout`,
    /// returns the labels still missing.
    pub async fn wait_for(
        &self,
        labels: &BTreeSet<String>,
        timeout: Duration,
    ) -> std::result::Result<(), BTreeSet<String>> {
        let deadline = tokio::time::Instant::now() + timeout;
        // Subscribed before the first look, so a worker joining in between
        // still wakes the wait.
        let mut changes = self.driver.changes();
        loop {
            let live = self.live_labels();
            let missing: BTreeSet<String> = labels.difference(&live).cloned().collect();
            if missing.is_empty() {
                return Ok(());
            }
            // Woken by the state's next change (a worker joined or was lost),
            // not by a tick.
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Err(missing),
            }
        }
    }
}
