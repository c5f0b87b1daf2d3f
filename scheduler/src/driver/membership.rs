//! [`WorkerMembership`]: workers joining, coming back to a new leader, and
//! being lost (their connection closed, they fell silent, or their shuffle
//! data could not be reached).

use std::collections::BTreeSet;

use regatta_common::WorkerId;
use regatta_proto::WorkerOrder;
use tokio::sync::mpsc;

use super::core::Driver;
use super::worker_registry::WorkerReport;
use crate::{
    Command, DriverState, Refusal, Result, SchedulerError, TaskKey, TaskStatus, WorkerSpec,
};

/// How a registration went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// A worker alive under its previous id, taken up again (its record unchanged).
    TakenUp,
    /// A worker that joined under a new id, its record written from its spec.
    Joined,
}

pub struct WorkerMembership<'a> {
    driver: &'a Driver,
}

impl<'a> WorkerMembership<'a> {
    pub(super) fn new(driver: &'a Driver) -> Self {
        Self { driver }
    }

    fn alive(&self, worker: WorkerId) -> bool {
        self.driver
            .with_state(|s| s.worker(worker).is_some_and(|w| w.alive))
    }

    /// Registers a worker; returns its id and whether it was taken up again.
    /// A worker that was registered before (with a previous leader) and is
    /// still alive keeps its id and its running tasks (and `spec` is not
    /// applied); tasks the state puts on it that it does not report are placed
    /// again. Any other worker joins under a new id with `spec` (which may be
    /// the number it had before, from a driver that has since forgotten it).
    pub async fn register(
        &self,
        spec: WorkerSpec,
        previous: Option<WorkerId>,
        running: &[(TaskKey, u32)],
    ) -> Result<(WorkerId, Registration)> {
        let d = self.driver;
        if let Some(worker) = previous.filter(|w| self.alive(*w)) {
            let reported: BTreeSet<(TaskKey, u32)> = running.iter().copied().collect();
            let orphans: Vec<Command> = d.with_state(|s| {
                s.worker(worker)
                    .map(|w| {
                        w.running
                            .iter()
                            .filter_map(|t| {
                                let attempt = running_attempt(s, *t, worker)?;
                                (!reported.contains(&(*t, attempt))).then_some(
                                    Command::TaskRequeued {
                                        task: *t,
                                        worker,
                                        attempt,
                                    },
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            });
            if !orphans.is_empty() {
                log::info!(
                    "{worker} came back without {} of its tasks; placing them again",
                    orphans.len()
                );
                d.consensus().propose(Command::Batch(orphans)).await?;
            }
            d.workers().heard_from(worker, None);
            log::info!(
                "{worker} registered again, adopting its {} running tasks",
                running.len()
            );
            return Ok((worker, Registration::TakenUp));
        }
        let worker = d.workers().new_id(d.with_state(|s| s.next_worker_id().0));
        d.consensus()
            .apply(Command::WorkerJoined { worker, spec })
            .await?;
        d.workers().heard_from(worker, None);
        log::info!("{worker} joined");
        Ok((worker, Registration::Joined))
    }

    /// The channel the driver's orders to `worker` go through.
    pub fn connect(&self, worker: WorkerId) -> Result<mpsc::Receiver<WorkerOrder>> {
        if !self.alive(worker) {
            return Err(SchedulerError::Refusal(Refusal::UnknownWorker(worker)));
        }
        let rx = self.driver.workers().connect(worker);
        self.driver.consensus().state().wake();
        Ok(rx)
    }

    /// A heartbeat; false when the worker is unknown or was declared lost.
    pub fn heartbeat(&self, worker: WorkerId, report: WorkerReport) -> bool {
        let alive = self.alive(worker);
        if alive {
            self.driver.workers().heard_from(worker, Some(report));
        }
        alive
    }

    /// Declares `worker` lost (its connection closed or it fell silent).
    pub async fn lose(&self, worker: WorkerId, reason: &str) {
        if !self.alive(worker) || !self.driver.is_leader() {
            return;
        }
        log::warn!("{worker} lost: {reason}");
        self.driver.workers().disconnect(worker);
        let lost = Command::WorkerLost {
            worker,
            reason: reason.to_string(),
        };
        if let Err(e) = self.driver.consensus().apply(lost).await {
            log::warn!("{worker}: recording its loss: {e}");
        }
    }

    /// A task could not reach `worker`'s shuffle data. If `worker` has also been
    /// silent for two heartbeats it is declared lost now, not at its timeout, so
    /// its outputs are recomputed before the reading task runs out of retries.
    pub async fn input_unreachable(&self, worker: WorkerId) {
        let grace = self.driver.options().heartbeat_interval * 2;
        if self.driver.workers().take_if_silent(worker, grace) {
            let reason = format!("its shuffle data is unreachable and it was silent for {grace:?}");
            self.lose(worker, &reason).await;
        }
    }

    /// Declares lost every worker silent for longer than the timeout.
    pub async fn check_heartbeats(&self) {
        if !self.driver.is_leader() {
            return;
        }
        let timeout = self.driver.options().worker_timeout;
        for w in self.driver.workers().take_silent(timeout) {
            self.lose(w, &format!("no heartbeat for {timeout:?}")).await;
        }
    }

    /// The node labels of the live workers (those a launcher started).
    pub fn live_node_labels(&self) -> BTreeSet<String> {
        self.driver.with_state(|s| {
            s.workers()
                .filter(|(_, w)| w.alive && !w.spec.node_label.is_empty())
                .map(|(_, w)| w.spec.node_label.clone())
                .collect()
        })
    }
}

/// The attempt `task` runs as on `worker`, if it runs there.
fn running_attempt(s: &DriverState, task: TaskKey, worker: WorkerId) -> Option<u32> {
    let t = s
        .job(task.job)?
        .stages
        .get(&task.stage)?
        .tasks
        .get(task.partition as usize)?;
    match t.status {
        TaskStatus::Running { worker: w, attempt } if w == worker => Some(attempt),
        _ => None,
    }
}
