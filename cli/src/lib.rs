//! The `regatta` command line: `demo`, `sql` and `explain` on the embedded engine;
//! `driver`, `worker`, `submit`, `jobs` and `cluster` for a self-hosted cluster.

mod cluster_cmds;
mod dashboard_cmd;
mod demo;
mod demo_data;
mod drivers_cmd;
mod error;
mod jobs_cmd;
mod models_cmd;
mod output;
mod output_args;
mod progress;
mod ray_cmds;
mod sql;
mod storage_setup;

use clap::{Parser, Subcommand};

pub use error::{CliError, Result};
pub use output::{write_batches, PrintFormat};

/// regatta: multimodal data pipelines in bounded memory.
#[derive(Debug, Parser)]
#[command(name = "regatta", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the demo pipeline: images and captions in, a Lance dataset out.
    Demo(demo::DemoArgs),
    /// Run SQL over files and print the result.
    Sql(sql::SqlArgs),
    /// Show the plan of a SQL query (with --analyze: run it and show metrics).
    Explain(sql::ExplainArgs),
    /// Run a cluster driver (job submission, scheduling) until killed.
    Driver(cluster_cmds::DriverArgs),
    /// Run a cluster worker that joins a driver.
    Worker(cluster_cmds::WorkerArgs),
    /// Run SQL on a cluster and print the rows.
    Submit(cluster_cmds::SubmitArgs),
    /// List, inspect, cancel or watch cluster jobs.
    Jobs(jobs_cmd::JobsArgs),
    /// Show the cluster's workers and their resources.
    Cluster(cluster_cmds::ClusterArgs),
    /// List, add or remove driver replicas (role, term, log position).
    Drivers(drivers_cmd::DriversArgs),
    /// List the models regatta can find, or pull a built-in one into the cache.
    Models(models_cmd::ModelsArgs),
    /// Serve the web dashboard for local work: a driver on loopback with workers
    /// on this machine, until Ctrl-C.
    Dashboard(dashboard_cmd::DashboardArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(32)
        .enable_all()
        .build()
        .map_err(|e| CliError::Runtime(e.to_string()))?;
    rt.block_on(async move {
        match cli.command {
            Command::Demo(a) => demo::run(a).await,
            Command::Sql(a) => sql::run_sql(a).await,
            Command::Explain(a) => sql::run_explain(a).await,
            Command::Driver(a) => cluster_cmds::run_driver(a).await,
            Command::Worker(a) => cluster_cmds::run_worker(a).await,
            Command::Submit(a) => cluster_cmds::run_submit(a).await,
            Command::Jobs(a) => jobs_cmd::run_jobs(a).await,
            Command::Cluster(a) => cluster_cmds::run_cluster(a).await,
            Command::Drivers(a) => drivers_cmd::run_drivers(a).await,
            Command::Dashboard(a) => dashboard_cmd::run(a).await,
            Command::Models(a) => models_cmd::run(a).await,
        }
    })
}
