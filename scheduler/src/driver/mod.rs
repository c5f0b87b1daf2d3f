//! The driver process: gRPC services for clients and workers over the state machine.

mod core;
mod job_service;
mod options;
mod planning;
mod results;
mod resumable;
mod row_budget;
mod server;
mod worker_control;
mod worker_credentials;

pub use self::core::{info_of, Driver, ResultLocations, TaskTime, WorkerReport};
pub use job_service::JobServiceImpl;
pub use options::{DashboardBind, DriverOptions, ReplicationOptions};
pub use planning::Planner;
pub use results::JOB_TAG;
pub use server::DriverHandle;
pub use worker_control::{OrderStream, WorkerControlImpl};
