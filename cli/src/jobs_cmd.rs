//! `regatta jobs`: list, follow, cancel and read the jobs of a cluster.

use clap::{Args, Subcommand};

use crate::cluster_cmds::{client, print_job, print_stages, watch, ClusterArgs};
use crate::Result;

#[derive(Debug, Args)]
pub struct JobsArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(subcommand)]
    pub action: Option<JobsAction>,
}

#[derive(Debug, Subcommand)]
pub enum JobsAction {
    /// Every job (the default).
    List,
    /// One job's progress, with the rows its functions gave up on.
    #[command(alias = "show")]
    Status { job: u64 },
    /// Cancel a running job.
    Cancel { job: u64 },
    /// Follow a job with a progress bar until it ends.
    Watch { job: u64 },
    /// Drop a finished job's result rows from its workers now.
    Delete { job: u64 },
    /// Where a job's time went: planning, then per stage its span and its
    /// tasks' time split into shuffle read, compute and shuffle write; then
    /// each operator's rows, compute time and time waiting on its consumer.
    Stages { job: u64 },
    /// Print a job's rows, read from the workers that hold them (streamed as
    /// they finish while it runs).
    Results {
        job: u64,
        #[arg(long, short = 'f', value_enum, default_value_t = crate::PrintFormat::Table)]
        format: crate::PrintFormat,
    },
}

/// `regatta jobs`.
pub async fn run_jobs(args: JobsArgs) -> Result<()> {
    let client = client(&args.cluster).await?;
    match args.action.unwrap_or(JobsAction::List) {
        JobsAction::List => {
            for j in client.jobs().await? {
                print_job(&j);
            }
        }
        JobsAction::Status { job } => print_job(&client.job(job).await?),
        JobsAction::Cancel { job } => print_job(&client.cancel(job).await?),
        JobsAction::Watch { job } => print_job(&watch(&client, job).await?),
        JobsAction::Delete { job } => print_job(&client.delete(job).await?),
        JobsAction::Stages { job } => print_stages(&client.job(job).await?),
        JobsAction::Results { job, format } => {
            let rows = client.result_stream(job);
            crate::output::write_stream(&mut std::io::stdout().lock(), rows, format).await?;
        }
    }
    Ok(())
}
