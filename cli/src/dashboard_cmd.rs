//! `regatta dashboard`: the dashboard for local work. A driver on loopback with
//! worker processes on this machine, so the jobs a person runs here
//! (`regatta submit`, or a session connected to it) show live in the browser;
//! Ctrl-C stops it and its workers.

use clap::Args;

use crate::cluster_cmds::{
    driver_options, model_store, serve_until_stopped, start_driver, ClusterArgs,
};
use crate::ray_cmds::LaunchArgs;
use crate::{CliError, Result};

#[derive(Debug, Args)]
pub struct DashboardArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Worker processes to start on this machine (each uses every core, as a
    /// local session does).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Where the driver listens (default: a free port on loopback).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub bind: String,
}

/// Serves the dashboard of a local driver and workers until stopped.
pub async fn run(args: DashboardArgs) -> Result<()> {
    if args.workers == 0 {
        return Err(CliError::Usage(
            "--workers 0: the dashboard's driver needs a worker to run jobs".into(),
        ));
    }
    let mut cfg = args.cluster.load()?;
    if cfg.driver.dashboard_bind.is_empty() {
        return Err(CliError::Usage(
            "driver.dashboard_bind is empty in the cluster file: set it (e.g. \
             127.0.0.1:8265) to serve the dashboard"
                .into(),
        ));
    }
    let mut options = driver_options(&cfg, None)?;
    options.launcher = LaunchArgs {
        ray: None,
        ray_launch: None,
        workers: args.workers,
    }
    .launcher(&mut cfg)?;
    let handle = start_driver(&args.bind, options, model_store(&cfg)).await?;
    let url = handle
        .dashboard
        .as_ref()
        .map(|d| format!("{}/", d.url()))
        .unwrap_or_default();
    println!("regatta dashboard at {url}");
    println!(
        "run jobs on it: REGATTA_DRIVER={} regatta submit 'SELECT ...' \
         (or Session::connect(\"http://{}\") in Rust); Ctrl-C stops it",
        handle.address, handle.address
    );
    // Tests and scripts read this line (the last word) to learn the port.
    println!("regatta driver listening on {}", handle.address);
    serve_until_stopped(handle).await
}
