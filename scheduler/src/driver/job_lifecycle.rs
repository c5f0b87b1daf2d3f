//! [`JobLifecycle`]: a job from its submission to its end: completed (its
//! output committed), failed over its row budget, cancelled, its results
//! expired or deleted, and what a failed job staged discarded.

use std::sync::atomic::Ordering;
use std::time::Duration;

use regatta_common::JobId;
use regatta_proto::{worker_order, WorkerOrder};

use super::core::Driver;
use super::results::{commit_output, discard_output};
use crate::job_state::{JobState, JobStatus, Released, TaskStatus};
use crate::{commit_tag, unix_ms_now, Command, Refusal, Result, SchedulerError};

pub struct JobLifecycle<'a> {
    driver: &'a Driver,
}

impl<'a> JobLifecycle<'a> {
    pub(super) fn new(driver: &'a Driver) -> Self {
        Self { driver }
    }

    /// A job id never used before (ids live in the replicated state, so a new
    /// leader continues after the last one its predecessor handed out).
    pub fn new_id(&self) -> JobId {
        let floor = self.driver.with_state(|s| s.next_job_id().0);
        let next = self.driver.next_job();
        next.fetch_max(floor, Ordering::SeqCst);
        JobId(next.fetch_add(1, Ordering::SeqCst))
    }

    /// Records a newly planned job, its start time and how long planning took.
    pub async fn submit(&self, cmd: Command, planning: Duration) -> Result<()> {
        if let Command::SubmitJob { job, .. } = &cmd {
            self.driver.clock().submitted(*job, planning);
        }
        self.driver.consensus().apply(cmd).await
    }

    /// The tag a job's output is committed under (see [`commit_tag`]).
    pub fn tag(&self, job: JobId) -> String {
        let request_id = self
            .driver
            .with_state(|s| s.job(job).map(|j| j.request_id.clone()))
            .unwrap_or_default();
        commit_tag(job, &request_id)
    }

    /// Cancels a running job and tells every worker to drop its work.
    pub async fn cancel(&self, job: JobId) -> Result<()> {
        self.driver
            .consensus()
            .apply(Command::CancelJob { job })
            .await?;
        self.end_on_workers(job);
        self.discard_outputs(&[job]).await;
        Ok(())
    }

    /// Tells every worker to drop `job`'s work and files.
    pub fn end_on_workers(&self, job: JobId) {
        self.driver.clock().ended(job);
        self.driver.workers().broadcast(&WorkerOrder {
            order: Some(worker_order::Order::EndJob(job.0)),
        });
    }

    /// Drops a finished job's results from its workers now.
    pub async fn delete(&self, job: JobId) -> Result<()> {
        let holds = self
            .driver
            .with_state(|s| s.job(job).map(JobState::holds_results));
        match holds {
            None => return Err(SchedulerError::Refusal(Refusal::UnknownJob(job))),
            Some(true) => {
                let release = Command::ReleaseResults {
                    job,
                    why: Released::Deleted,
                };
                self.driver.consensus().apply(release).await?
            }
            // Failed, cancelled, written or already released: nothing is kept,
            // but the workers are told again in case a message was lost.
            Some(false) => {}
        }
        self.end_on_workers(job);
        Ok(())
    }

    /// One pass over the jobs after a change: resumable parts committed, ready
    /// jobs completed, failed ones ended and their staging discarded, expired
    /// results dropped.
    pub async fn advance(&self) {
        self.driver.resumable().commit_finished_parts().await;
        self.complete_ready().await;
        let ended = self.end_failed();
        self.discard_outputs(&ended).await;
        self.expire_results().await;
    }

    /// Completes every job whose result stage is done: a write job's staged
    /// output is committed once first; any other job's rows stay on the
    /// workers, and only their count is recorded.
    async fn complete_ready(&self) {
        let ready: Vec<JobId> = self.driver.with_state(|s| {
            s.jobs()
                .filter(|(_, j)| j.results_ready())
                .map(|(id, _)| *id)
                .collect()
        });
        for job in ready {
            if let Err(e) = self.complete(job).await {
                log::warn!("{job}: completing: {e}");
            }
        }
    }

    async fn complete(&self, job: JobId) -> Result<()> {
        // Rows given up on past the budget fail the job before anything is
        // committed.
        if self.fail_over_budget(job, true).await? {
            return Ok(());
        }
        let (mut rows, output, written) = self
            .driver
            .with_state(|s| {
                let j = s.job(job)?;
                let stage = j.stages.get(&j.final_stage)?;
                let mut rows = 0;
                let mut written = Vec::new();
                for (p, t) in stage.tasks.iter().enumerate() {
                    if let TaskStatus::Done {
                        outputs,
                        written: w,
                        ..
                    } = &t.status
                    {
                        rows += outputs.iter().map(|o| o.rows).sum::<u64>();
                        written.push((p as u32, w.clone()));
                    }
                }
                Some((rows, j.output.clone(), written))
            })
            .ok_or(SchedulerError::Refusal(Refusal::UnknownJob(job)))?;
        if let Some(out) = output {
            if !self.driver.is_leader() {
                return Err(SchedulerError::NotLeader { leader: None });
            }
            let committed = if out.resume_key.is_some() {
                self.driver
                    .resumable()
                    .commit_rest(job, &out)
                    .await
                    .map(|()| None)
            } else {
                commit_output(&out, &self.tag(job), &written).await
            };
            match committed {
                Ok(committed) => rows = committed.unwrap_or(rows),
                Err(e) => {
                    let reason = format!("committing the output {}: {e}", out.path);
                    self.driver
                        .consensus()
                        .apply(Command::FailJob { job, reason })
                        .await?;
                    self.end_on_workers(job);
                    return Ok(());
                }
            }
        }
        let complete = Command::CompleteJob {
            job,
            rows,
            finished_unix_ms: unix_ms_now(),
        };
        self.driver.consensus().apply(complete).await?;
        self.driver.clock().ended(job);
        if self
            .driver
            .with_state(|s| s.job(job).is_some_and(|j| j.output.is_some()))
        {
            // A written job keeps nothing on its workers.
            self.end_on_workers(job);
        }
        Ok(())
    }

    /// Fails `job` when its tasks gave up on more rows than its failure
    /// budget allows; says whether it did. The share of failed rows is judged
    /// only once every row is read (`finished`): early tasks are no sample.
    pub async fn fail_over_budget(&self, job: JobId, finished: bool) -> Result<bool> {
        let over = self.driver.with_state(|s| {
            s.job(job).filter(|j| j.is_active()).and_then(|j| {
                let mut budget = j.row_errors.budget;
                if !finished {
                    budget.max_failed_fraction = None;
                }
                let e = budget.check(j.row_failures).err()?;
                Some(match &j.row_errors.errors_url {
                    Some(url) => format!("{e} (the failed rows are in {url})"),
                    None => format!("{e} (run with --errors URL to keep the failed rows)"),
                })
            })
        });
        let Some(reason) = over else {
            return Ok(false);
        };
        self.driver
            .consensus()
            .apply(Command::FailJob { job, reason })
            .await?;
        self.end_on_workers(job);
        Ok(true)
    }

    /// Tells workers to drop the files of jobs that failed or were cancelled,
    /// or whose results were released, and that this leader has not ended yet
    /// (a new leader ends its predecessor's again, in case the order was lost).
    /// Returns them.
    fn end_failed(&self) -> Vec<JobId> {
        let clock = self.driver.clock();
        let gone: Vec<JobId> = self.driver.with_state(|s| {
            s.jobs()
                .filter(|(_, j)| {
                    matches!(j.status, JobStatus::Failed(_) | JobStatus::Cancelled)
                        || j.released.is_some()
                })
                .map(|(id, _)| *id)
                .collect()
        });
        let ended: Vec<JobId> = gone.into_iter().filter(|j| !clock.has_ended(*j)).collect();
        for &job in &ended {
            self.end_on_workers(job);
        }
        ended
    }

    /// How long until the next succeeded job's results expire (none: no job
    /// holds results).
    pub fn next_expiry(&self) -> Option<Duration> {
        let retention = self.driver.options().result_retention.as_millis() as u64;
        let now = unix_ms_now();
        self.driver.with_state(|s| {
            s.jobs()
                .filter(|(_, j)| j.holds_results())
                .map(|(_, j)| {
                    let due = j.finished_unix_ms.saturating_add(retention);
                    Duration::from_millis(due.saturating_sub(now))
                })
                .min()
        })
    }

    /// Drops the results of succeeded jobs whose retention has ended.
    async fn expire_results(&self) {
        let retention = self.driver.options().result_retention;
        let now = unix_ms_now();
        let expired: Vec<JobId> = self.driver.with_state(|s| {
            s.jobs()
                .filter(|(_, j)| {
                    j.holds_results()
                        && now.saturating_sub(j.finished_unix_ms) >= retention.as_millis() as u64
                })
                .map(|(id, _)| *id)
                .collect()
        });
        for job in expired {
            let why = Released::Expired {
                retention_secs: retention.as_secs(),
            };
            match self
                .driver
                .consensus()
                .apply(Command::ReleaseResults { job, why })
                .await
            {
                Ok(()) => {
                    log::info!("{job}: results dropped after {retention:?}");
                    self.end_on_workers(job);
                }
                Err(e) => log::warn!("{job}: dropping expired results: {e}"),
            }
        }
    }

    /// Cleans up what a failed or cancelled write job staged: part files, or
    /// Lance fragments no version references.
    async fn discard_outputs(&self, jobs: &[JobId]) {
        for &job in jobs {
            let output = self
                .driver
                .with_state(|s| s.job(job).and_then(|j| j.output.clone()));
            let Some(out) = output else { continue };
            let since = self.driver.clock().started_at(job);
            if let Err(e) = discard_output(&out, &self.tag(job), since).await {
                log::warn!("{job}: removing what it staged in {}: {e}", out.path);
            }
        }
    }
}
