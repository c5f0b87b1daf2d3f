//! [`WorkerRegistry`]: what the driver knows of its workers beyond the
//! replicated state: their order channels, when each was last heard from, and
//! what each said at its last heartbeat. It lives and dies with the process
//! (a new leader rebuilds it as workers come back).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use regatta_common::WorkerId;
use regatta_proto::WorkerOrder;
use tokio::sync::{mpsc, watch, Notify};

use super::lock;

/// Orders queued per worker before the driver waits for it to take them.
const ORDER_QUEUE: usize = 1024;

/// What a worker said about itself at its last heartbeat.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerReport {
    /// Models it has loaded over its life.
    pub model_builds: u64,
    /// Tasks it is running (aborted ones are gone from this count).
    pub running_tasks: u32,
    /// The GPU devices its latest model actors hold.
    pub actor_devices: Vec<String>,
    /// Memory, spill, shuffle bytes and model pools.
    pub usage: regatta_proto::WorkerUsage,
}

#[derive(Default)]
struct Live {
    orders: HashMap<WorkerId, mpsc::Sender<WorkerOrder>>,
    last_seen: HashMap<WorkerId, Instant>,
    reports: HashMap<WorkerId, WorkerReport>,
    /// The models each worker said it finds when it registered with this
    /// leader (not replicated: a worker registers again with a new leader).
    models: HashMap<WorkerId, BTreeSet<String>>,
}

#[derive(Default)]
pub struct WorkerRegistry {
    live: Mutex<Live>,
    next_worker: AtomicU64,
    /// Wakes the heartbeat watch when a worker is first heard from (its
    /// deadline may be the next one).
    heard: Notify,
    /// Counts heartbeat reports, so views of the workers (the dashboard) wake
    /// on each new one.
    reports: watch::Sender<u64>,
}

impl WorkerRegistry {
    /// A worker id never used before: at least `floor` (the replicated state's
    /// next id, so a new leader continues after its predecessor's).
    pub fn new_id(&self, floor: u64) -> WorkerId {
        self.next_worker.fetch_max(floor.max(1), Ordering::SeqCst);
        WorkerId(self.next_worker.fetch_add(1, Ordering::SeqCst))
    }

    /// Opens the channel the driver's orders to `worker` go through.
    pub fn connect(&self, worker: WorkerId) -> mpsc::Receiver<WorkerOrder> {
        let (tx, rx) = mpsc::channel(ORDER_QUEUE);
        lock(&self.live).orders.insert(worker, tx);
        rx
    }

    /// Notes that `worker` was heard from now, with its report if it sent one.
    pub fn heard_from(&self, worker: WorkerId, report: Option<WorkerReport>) {
        let mut live = lock(&self.live);
        let first = live.last_seen.insert(worker, Instant::now()).is_none();
        let reported = report.is_some();
        if let Some(r) = report {
            live.reports.insert(worker, r);
        }
        drop(live);
        if reported {
            self.reports.send_modify(|n| *n += 1);
        }
        if first {
            self.heard.notify_one();
        }
    }

    /// A watch that changes with every heartbeat report.
    pub fn subscribe_reports(&self) -> watch::Receiver<u64> {
        self.reports.subscribe()
    }

    /// What `worker` said at its last heartbeat.
    pub fn report_of(&self, worker: WorkerId) -> WorkerReport {
        lock(&self.live)
            .reports
            .get(&worker)
            .cloned()
            .unwrap_or_default()
    }

    /// Takes out of the watch, and returns, the workers silent for longer
    /// than `timeout`.
    pub fn take_silent(&self, timeout: Duration) -> Vec<WorkerId> {
        let mut live = lock(&self.live);
        let silent: Vec<WorkerId> = live
            .last_seen
            .iter()
            .filter(|(_, t)| t.elapsed() > timeout)
            .map(|(w, _)| *w)
            .collect();
        for w in &silent {
            live.last_seen.remove(w);
        }
        silent
    }

    /// Whether `worker` has been silent for longer than `grace`; if so it is
    /// taken out of the watch.
    pub fn take_if_silent(&self, worker: WorkerId, grace: Duration) -> bool {
        let mut live = lock(&self.live);
        let silent = live
            .last_seen
            .get(&worker)
            .is_some_and(|t| t.elapsed() > grace);
        if silent {
            live.last_seen.remove(&worker);
        }
        silent
    }

    /// Waits until the earliest moment a watched worker may pass `timeout`, or
    /// until a new worker is heard from.
    pub async fn next_deadline(&self, timeout: Duration) {
        let earliest = lock(&self.live).last_seen.values().min().copied();
        let heard = self.heard.notified();
        match earliest {
            Some(t) => {
                let due = tokio::time::Instant::from_std(t + timeout + Duration::from_millis(1));
                let _ = tokio::time::timeout_at(due, heard).await;
            }
            None => heard.await,
        }
    }

    /// Keeps the models `worker` finds on its disk, as it registered them.
    pub fn set_models(&self, worker: WorkerId, models: Vec<String>) {
        lock(&self.live)
            .models
            .insert(worker, models.into_iter().collect());
    }

    /// The first of `wanted` that one of `workers` said it does not have, with
    /// that worker; workers that reported nothing to this leader are not judged.
    pub fn lacking_model(
        &self,
        wanted: &BTreeSet<String>,
        workers: impl IntoIterator<Item = WorkerId>,
    ) -> Option<(String, WorkerId)> {
        let live = lock(&self.live);
        workers.into_iter().find_map(|w| {
            let has = live.models.get(&w)?;
            wanted
                .iter()
                .find(|m| !has.contains(*m))
                .map(|m| (m.clone(), w))
        })
    }

    /// Drops `worker`'s order channel.
    pub fn disconnect(&self, worker: WorkerId) {
        lock(&self.live).orders.remove(&worker);
    }

    /// The workers with an open order channel.
    pub fn connected(&self) -> BTreeSet<WorkerId> {
        lock(&self.live).orders.keys().copied().collect()
    }

    /// `worker`'s order channel, if open.
    pub fn orders_of(&self, worker: WorkerId) -> Option<mpsc::Sender<WorkerOrder>> {
        lock(&self.live).orders.get(&worker).cloned()
    }

    /// Sends `order` to every connected worker that has room for it.
    pub fn broadcast(&self, order: &WorkerOrder) {
        let senders: Vec<_> = lock(&self.live).orders.values().cloned().collect();
        for tx in senders {
            let _ = tx.try_send(order.clone());
        }
    }

    /// A new leader's start: each of `workers` gets a fresh timeout to come back.
    pub fn expect(&self, workers: impl IntoIterator<Item = WorkerId>) {
        let now = Instant::now();
        let mut live = lock(&self.live);
        for w in workers {
            live.last_seen.insert(w, now);
        }
        drop(live);
        self.heard.notify_one();
    }

    /// Deposed: every stream and watch dropped, so workers find the new leader.
    pub fn clear(&self) {
        let mut live = lock(&self.live);
        live.orders.clear();
        live.last_seen.clear();
        live.models.clear();
    }
}
