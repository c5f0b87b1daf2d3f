//! The driver process: gRPC services for clients and workers over the state
//! machine, and the parts they share (see [`Driver`]).

mod consensus;
mod core;
mod job_clock;
mod job_lifecycle;
mod job_service;
mod loops;
mod membership;
mod options;
mod placement;
mod planning;
mod results;
mod resumable;
mod server;
mod views;
mod worker_control;
mod worker_credentials;
mod worker_registry;

pub use self::core::Driver;
pub use consensus::Consensus;
pub use job_clock::{JobClock, TaskTime};
pub use job_lifecycle::JobLifecycle;
pub use job_service::JobServiceImpl;
pub use membership::WorkerMembership;
pub use options::{DashboardBind, DriverOptions, ReplicationOptions};
pub use placement::schedule_round;
pub use planning::Planner;
pub use results::JOB_TAG;
pub use server::DriverHandle;
pub use views::{info_of, job_info, jobs_info, result_locations, workers_info, ResultLocations};
pub use worker_control::{OrderStream, WorkerControlImpl};
pub use worker_registry::{WorkerRegistry, WorkerReport};

use std::sync::{Mutex, MutexGuard};

/// Locks `m`. The driver's maps hold consistent data between statements, so a
/// lock poisoned by a panic elsewhere is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod driver_tests;
