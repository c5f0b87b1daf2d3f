//! [`DriverLink`]: the worker's tie to whichever driver replica leads: its id, the
//! highest leader term it has seen (fencing), and the tasks it holds that the
//! leader must know of when the worker registers again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use regatta_proto::worker_control_client::WorkerControlClient;
use regatta_proto::{Drivers, RegisterRequest, RegisterResponse, TaskKey, TaskReport};
use tonic::{Code, Status};

use crate::{Result, WorkerError};

/// A task by job, stage and partition.
type Key = (u64, u32, u32);

pub struct DriverLink {
    pub drivers: Drivers,
    /// This worker's own credential, from its latest registration.
    secret: Mutex<String>,
    id: AtomicU64,
    term: AtomicU64,
    /// Tasks running here, or finished and not yet acknowledged, by attempt.
    held: Mutex<BTreeMap<Key, u32>>,
    /// What every registration says about this worker.
    identity: RegisterRequest,
}

fn key_of(k: &TaskKey) -> Key {
    (k.job_id, k.stage_id, k.partition)
}

impl DriverLink {
    /// A link that registers with `identity` (what every registration says
    /// about this worker; its host is taken from its shuffle address).
    pub fn new(drivers: Drivers, identity: RegisterRequest) -> Self {
        let identity = RegisterRequest {
            host: identity
                .flight_address
                .rsplit_once(':')
                .map_or(String::new(), |(h, _)| h.to_string()),
            ..identity
        };
        Self {
            drivers,
            secret: Mutex::new(String::new()),
            id: AtomicU64::new(0),
            term: AtomicU64::new(0),
            held: Mutex::new(BTreeMap::new()),
            identity,
        }
    }

    pub fn id(&self) -> u64 {
        self.id.load(Ordering::SeqCst)
    }

    /// The credential the leader gave this worker (empty before registering).
    pub fn secret(&self) -> String {
        self.secret
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn held(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, u32>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers with the leader (again, keeping its id and tasks, after a
    /// leader change). Fails once no leader answered within `patience`.
    pub async fn register(&self, patience: Duration) -> Result<RegisterResponse> {
        let running: Vec<TaskKey> = self
            .held()
            .iter()
            .map(|((job, stage, partition), attempt)| TaskKey {
                job_id: *job,
                stage_id: *stage,
                partition: *partition,
                attempt: *attempt,
            })
            .collect();
        let request = RegisterRequest {
            previous_worker_id: self.id(),
            running,
            ..self.identity.clone()
        };
        // Anything but a plain refusal is retried until `patience` ends: replicas
        // die and restart mid-call during an outage, with errors of every kind,
        // and a worker must outlive them with its tasks and shuffle files.
        let deadline = Instant::now() + patience;
        let reply = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let outcome = self
                .drivers
                .call_within(left, |ch| {
                    // Taking an id over again proves it is this worker's.
                    let r = regatta_proto::with_worker_secret(request.clone(), &self.secret());
                    async move { WorkerControlClient::new(ch).register(r).await }
                })
                .await;
            match outcome {
                Ok(r) => break r.into_inner(),
                Err(s) if !is_refusal(&s) && Instant::now() < deadline => {
                    log::debug!("no driver took the registration yet: {}", s.message());
                    self.drivers.follow(&s);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(s) if is_refusal(&s) => {
                    return Err(WorkerError::Refused {
                        address: self.drivers.current(),
                        message: s.message().to_string(),
                    })
                }
                Err(s) => {
                    return Err(WorkerError::Driver {
                        address: self.drivers.addresses().join(","),
                        message: s.message().to_string(),
                    })
                }
            }
        };
        *self.secret.lock().unwrap_or_else(|p| p.into_inner()) = reply.worker_secret.clone();
        let before = self.id.swap(reply.worker_id, Ordering::SeqCst);
        self.term.fetch_max(reply.term, Ordering::SeqCst);
        if before != 0 && before != reply.worker_id {
            // The leader had given this worker up: its tasks run elsewhere now.
            log::warn!("worker-{before} is worker-{} now", reply.worker_id);
            self.held().clear();
        }
        Ok(reply)
    }

    /// Takes a task ordered in `term`: false (refused) when a newer leader has
    /// been seen, so a deposed leader cannot cause duplicate work.
    pub fn accept(&self, key: &TaskKey, term: u64) -> bool {
        let newest = self.term.fetch_max(term, Ordering::SeqCst);
        if term < newest {
            return false;
        }
        self.held().insert(key_of(key), key.attempt);
        true
    }

    /// Forgets a task of an ended job.
    pub fn forget_job(&self, job: u64) {
        self.held().retain(|(j, _, _), _| *j != job);
    }

    /// Reports a task until a leader takes the report (or plainly refuses it).
    pub async fn report(&self, mut report: TaskReport) {
        let key = report.key.as_ref().map(key_of);
        let mut refused = 0u32;
        loop {
            report.worker_id = self.id();
            let sent = self
                .drivers
                .call(|ch| {
                    let r = regatta_proto::with_worker_secret(report.clone(), &self.secret());
                    async move { WorkerControlClient::new(ch).report_task(r).await }
                })
                .await;
            match sent {
                Ok(_) => break,
                Err(s) if regatta_proto::is_retryable(&s) => {
                    log::warn!("no driver took a task report yet: {}", s.message());
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                // Sent with the credential of the leader before while this
                // worker registers with a new one: again, once it has the new
                // credential (a forger's refusals never end; a worker's do).
                Err(s) if s.code() == tonic::Code::PermissionDenied && refused < 120 => {
                    refused += 1;
                    log::debug!(
                        "a task report waits for this worker's credential: {}",
                        s.message()
                    );
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(s) => {
                    log::warn!("a task report was refused: {}", s.message());
                    break;
                }
            }
        }
        if let Some(k) = key {
            self.held().remove(&k);
        }
    }
}

/// A driver's answer that no retry changes: the wrong cluster or token, or a
/// registration the driver cannot take.
fn is_refusal(s: &Status) -> bool {
    matches!(
        s.code(),
        Code::PermissionDenied
            | Code::Unauthenticated
            | Code::InvalidArgument
            | Code::AlreadyExists
            | Code::FailedPrecondition
    )
}
