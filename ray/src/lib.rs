//! regatta on an existing Ray cluster. Ray is used only through its Jobs REST API
//! on the dashboard port: as resource broker, process launcher and membership
//! oracle. [`RayLauncher`] ships the regatta binary as a job's working_dir and
//! starts one worker per Ray node (the driver's [`WorkerLauncher`]); the workers
//! dial the driver and are ordinary regatta workers from then on.
//! [`submit_driver_job`] runs a whole driver as a Ray job for clients outside the
//! cluster's network. Secrets travel in a package of their own
//! ([`SecretPackage`]), never in a job's `env_vars`, which Ray lists openly.
//!
//! [`WorkerLauncher`]: regatta_scheduler::launcher::WorkerLauncher

mod client;
mod driver_job;
mod error;
mod launcher;
mod options;
mod package;
mod secret_package;

pub use client::{RayClient, RayJob, RayNode, RayVersion, JOBS_API_VERSION};
pub use driver_job::{submit_driver_job, DriverJob};
pub use error::{RayError, Result};
pub use launcher::RayLauncher;
pub use options::{LaunchMode, RayOptions};
pub use package::WorkerPackage;
pub use secret_package::{SecretPackage, SECRETS_MODULE};
