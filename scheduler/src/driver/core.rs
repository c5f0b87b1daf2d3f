//! [`Driver`]: the driver's owned parts, shared by its services and loops.
//!
//! - [`Consensus`]: how commands reach the replicated state (lone or Raft).
//! - [`WorkerRegistry`]: the live-only view of workers (order channels,
//!   liveness, heartbeat reports); [`WorkerMembership`] joins and loses them.
//! - [`JobClock`]: where each job's time went (not replicated).
//! - [`JobLifecycle`]: submit, complete, commit, expire, cancel and discard;
//!   [`ResumableCommits`] commits a resumable job part by part.
//!
//! The loops that move jobs along are in `loops`, placement in `placement`,
//! and the protocol's views of jobs and workers in `views`.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use regatta_common::JobId;

use super::consensus::Consensus;
use super::job_clock::JobClock;
use super::job_lifecycle::JobLifecycle;
use super::membership::WorkerMembership;
use super::resumable::ResumableCommits;
use super::worker_registry::WorkerRegistry;
use super::DriverOptions;
use crate::raft::Replica;
use crate::{DriverState, SharedState};

/// The driver, shared by its services and loops (cloning shares it).
#[derive(Clone)]
pub struct Driver {
    parts: Arc<Parts>,
}

pub(super) struct Parts {
    pub options: DriverOptions,
    pub consensus: Consensus,
    pub workers: WorkerRegistry,
    pub clock: JobClock,
    /// The next job id this driver hands out (see [`JobLifecycle::new_id`]).
    pub next_job: AtomicU64,
    /// Parts of running resumable jobs this driver committed (not
    /// replicated: each part's commit is found again if redone).
    pub committed_parts: Mutex<HashSet<(JobId, u32)>>,
}

impl Driver {
    /// A lone driver, its state in memory.
    pub fn new(options: DriverOptions) -> Self {
        let shared = Arc::new(SharedState::new(
            DriverState::new(options.max_task_failures).with_history(options.history_jobs),
        ));
        Self::with(options, Consensus::lone(shared))
    }

    /// A driver replica: `shared` is the state `replica` applies commits to.
    pub fn replicated(options: DriverOptions, shared: Arc<SharedState>, replica: Replica) -> Self {
        Self::with(options, Consensus::replicated(shared, replica))
    }

    fn with(options: DriverOptions, consensus: Consensus) -> Self {
        Self {
            parts: Arc::new(Parts {
                options,
                consensus,
                workers: WorkerRegistry::default(),
                clock: JobClock::default(),
                next_job: AtomicU64::new(1),
                committed_parts: Mutex::default(),
            }),
        }
    }

    pub fn options(&self) -> &DriverOptions {
        &self.parts.options
    }

    /// How commands reach the state.
    pub fn consensus(&self) -> &Consensus {
        &self.parts.consensus
    }

    /// The live-only view of the workers.
    pub fn workers(&self) -> &WorkerRegistry {
        &self.parts.workers
    }

    /// Where jobs' time went.
    pub fn clock(&self) -> &JobClock {
        &self.parts.clock
    }

    /// Workers joining, coming back and being lost.
    pub fn membership(&self) -> WorkerMembership<'_> {
        WorkerMembership::new(self)
    }

    /// Jobs from submission to their end.
    pub fn jobs(&self) -> JobLifecycle<'_> {
        JobLifecycle::new(self)
    }

    /// Resumable jobs' part-by-part commits.
    pub(super) fn resumable(&self) -> ResumableCommits<'_> {
        ResumableCommits::new(self, &self.parts.committed_parts)
    }

    pub(super) fn next_job(&self) -> &AtomicU64 {
        &self.parts.next_job
    }

    /// Reads the state.
    pub fn with_state<R>(&self, f: impl FnOnce(&DriverState) -> R) -> R {
        self.parts.consensus.read(f)
    }

    /// True when this driver may schedule (always, for a lone one).
    pub fn is_leader(&self) -> bool {
        self.parts.consensus.is_leader()
    }

    /// The leader's term (0 for a lone driver); orders carry it.
    pub fn term(&self) -> u64 {
        self.parts.consensus.term()
    }

    /// Wakes on every change of the state.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.parts.consensus.state().subscribe()
    }
}
