//! A regatta worker: one per node. It registers with the driver, runs the stage
//! tasks it is sent on the local engine across all its cores, hosts the model actor
//! pools (models stay loaded across tasks) and serves its shuffle files over Arrow
//! Flight. Shuffle files live under its spill directory, namespaced by job, and go
//! when the job ends, is cancelled, or (leftovers) when the worker starts.

mod driver_link;
mod error;
mod failure;
mod options;
mod task_runner;
mod work_dirs;
mod worker;
mod worker_stats;
mod yield_exec;

pub use error::{Result, WorkerError};
pub use options::WorkerOptions;
pub use worker::Worker;
