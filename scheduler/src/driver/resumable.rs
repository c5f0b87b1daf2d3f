//! A resumable job's output, committed part by part as its last stage's
//! tasks finish: a cluster lost mid-job keeps every part committed before,
//! and the rerun (`--resume-key`) skips the rows those parts hold.

use std::collections::HashSet;
use std::sync::Mutex;

use regatta_common::JobId;

use super::core::Driver;
use super::lock;
use super::results::{commit_part, discard_output};
use crate::job_state::TaskStatus;
use crate::{commit_tag, JobOutput, Result};

/// One finished part of a resumable job's last stage.
struct FinishedPart {
    job: JobId,
    output: JobOutput,
    tag: String,
    partition: u32,
    written: String,
}

/// Commits resumable jobs part by part; remembers which parts it committed.
pub struct ResumableCommits<'a> {
    driver: &'a Driver,
    committed: &'a Mutex<HashSet<(JobId, u32)>>,
}

impl<'a> ResumableCommits<'a> {
    pub(super) fn new(driver: &'a Driver, committed: &'a Mutex<HashSet<(JobId, u32)>>) -> Self {
        Self { driver, committed }
    }

    /// The finished parts of running resumable jobs not yet committed by this
    /// driver (a new leader commits them again; each commit finds its own).
    fn uncommitted_parts(&self, only_active: bool) -> Vec<FinishedPart> {
        let committed = lock(self.committed);
        self.driver.with_state(|s| {
            let mut parts = Vec::new();
            for (id, job) in s.jobs() {
                let Some(output) = job.output.as_ref().filter(|o| o.resume_key.is_some()) else {
                    continue;
                };
                if only_active && !job.is_active() {
                    continue;
                }
                let Some(stage) = job.stages.get(&job.final_stage) else {
                    continue;
                };
                for (p, task) in stage.tasks.iter().enumerate() {
                    let p = p as u32;
                    if let TaskStatus::Done { written, .. } = &task.status {
                        if !committed.contains(&(*id, p)) {
                            parts.push(FinishedPart {
                                job: *id,
                                output: output.clone(),
                                tag: commit_tag(*id, &job.request_id),
                                partition: p,
                                written: written.clone(),
                            });
                        }
                    }
                }
            }
            parts
        })
    }

    /// Commits the finished parts of every running resumable job. A part
    /// whose commit fails is tried again next round; the job's end commits
    /// (or fails on) whatever is left.
    pub(super) async fn commit_finished_parts(&self) {
        if !self.driver.is_leader() {
            return;
        }
        let active: HashSet<JobId> = self.driver.with_state(|s| {
            s.jobs()
                .filter(|(_, j)| j.is_active())
                .map(|(id, _)| *id)
                .collect()
        });
        lock(self.committed).retain(|(j, _)| active.contains(j));
        for part in self.uncommitted_parts(true) {
            match commit_part(&part.output, &part.tag, part.partition, &part.written).await {
                Ok(()) => {
                    lock(self.committed).insert((part.job, part.partition));
                }
                Err(e) => log::warn!(
                    "{}: committing part {} of {}: {e}",
                    part.job,
                    part.partition,
                    part.output.path
                ),
            }
        }
    }

    /// A resumable job's end: its remaining parts committed, its staging
    /// removed.
    pub(super) async fn commit_rest(&self, job: JobId, out: &JobOutput) -> Result<()> {
        for part in self
            .uncommitted_parts(false)
            .into_iter()
            .filter(|p| p.job == job)
        {
            commit_part(out, &part.tag, part.partition, &part.written).await?;
        }
        lock(self.committed).retain(|(j, _)| *j != job);
        let tag = self.driver.jobs().tag(job);
        discard_output(out, &tag, std::time::UNIX_EPOCH).await
    }
}
