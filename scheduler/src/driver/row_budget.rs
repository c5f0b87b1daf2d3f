//! The job's failure budget, judged on the driver over every task's counts of
//! the rows its functions gave up on (`on_error = 'skip' | 'record'`).

use regatta_common::JobId;

use super::core::Driver;
use crate::{Command, Result};

impl Driver {
    /// Fails `job` when its tasks gave up on more rows than its failure
    /// budget allows; says whether it did. The share of failed rows is judged
    /// only once every row is read (`finished`): early tasks are no sample.
    pub async fn fail_over_budget(&self, job: JobId, finished: bool) -> Result<bool> {
        let passed = self.with_state(|s| {
            s.job(job).filter(|j| j.is_active()).and_then(|j| {
                let mut budget = j.row_errors.budget;
                if !finished {
                    budget.max_failed_fraction = None;
                }
                budget.check(j.row_failures).err()
            })
        });
        let Some(e) = passed else {
            return Ok(false);
        };
        let reason =
            match self.with_state(|s| s.job(job).and_then(|j| j.row_errors.errors_url.clone())) {
                Some(url) => format!("{e} (the failed rows are in {url})"),
                None => format!("{e} (run with --errors URL to keep the failed rows)"),
            };
        self.apply(Command::FailJob { job, reason }).await?;
        self.end_job_on_workers(job);
        Ok(true)
    }
}
