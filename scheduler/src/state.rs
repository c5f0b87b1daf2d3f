//! Jobs and their progress.

use std::collections::BTreeMap;
use std::fmt;

use regatta_common::JobId;

use crate::{Command, Result, SchedulerError};

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    Running,
    Succeeded,
    Failed(String),
    Cancelled,
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Running => write!(f, "running"),
            Self::Succeeded => write!(f, "succeeded"),
            Self::Failed(r) => write!(f, "failed ({r})"),
            Self::Cancelled => write!(f, "cancelled"),
        }
    }
}

/// One job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobState {
    pub name: String,
    pub tasks: u32,
    pub finished_tasks: u32,
    pub status: JobStatus,
}

/// Every job the driver knows, in id order (deterministic iteration).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverState {
    jobs: BTreeMap<JobId, JobState>,
    applied: u64,
}

impl DriverState {
    /// Applies one command, or refuses it leaving the state unchanged.
    pub fn apply(&mut self, cmd: &Command) -> Result<()> {
        match cmd {
            Command::SubmitJob { job, name, tasks } => {
                if self.jobs.contains_key(job) {
                    return Err(SchedulerError::DuplicateJob(*job));
                }
                let status = if *tasks == 0 {
                    JobStatus::Succeeded
                } else {
                    JobStatus::Running
                };
                self.jobs.insert(
                    *job,
                    JobState {
                        name: name.clone(),
                        tasks: *tasks,
                        finished_tasks: 0,
                        status,
                    },
                );
            }
            Command::TaskFinished { job } => {
                let j = self.running(*job, "advanced")?;
                j.finished_tasks += 1;
                if j.finished_tasks >= j.tasks {
                    j.status = JobStatus::Succeeded;
                }
            }
            Command::FailJob { job, reason } => {
                self.running(*job, "failed")?.status = JobStatus::Failed(reason.clone());
            }
            Command::CancelJob { job } => {
                self.running(*job, "cancelled")?.status = JobStatus::Cancelled;
            }
        }
        self.applied += 1;
        Ok(())
    }

    fn running(&mut self, job: JobId, action: &'static str) -> Result<&mut JobState> {
        let j = self
            .jobs
            .get_mut(&job)
            .ok_or(SchedulerError::UnknownJob(job))?;
        if j.status != JobStatus::Running {
            return Err(SchedulerError::InvalidTransition {
                job,
                status: j.status.to_string(),
                action,
            });
        }
        Ok(j)
    }

    /// A job by id.
    pub fn job(&self, job: JobId) -> Option<&JobState> {
        self.jobs.get(&job)
    }

    /// Commands applied so far.
    pub fn applied(&self) -> u64 {
        self.applied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script() -> Vec<Command> {
        vec![
            Command::SubmitJob {
                job: JobId(1),
                name: "a".into(),
                tasks: 2,
            },
            Command::SubmitJob {
                job: JobId(2),
                name: "b".into(),
                tasks: 5,
            },
            Command::TaskFinished { job: JobId(1) },
            Command::CancelJob { job: JobId(2) },
            Command::TaskFinished { job: JobId(1) },
        ]
    }

    #[test]
    fn replaying_commands_gives_the_same_state() {
        let (mut a, mut b) = (DriverState::default(), DriverState::default());
        for c in script() {
            a.apply(&c).unwrap();
            b.apply(&c).unwrap();
        }
        assert_eq!(a, b);
        assert_eq!(a.job(JobId(1)).unwrap().status, JobStatus::Succeeded);
        assert_eq!(a.job(JobId(2)).unwrap().status, JobStatus::Cancelled);
        assert_eq!(a.applied(), 5);
    }

    #[test]
    fn invalid_commands_are_refused_without_change() {
        let mut s = DriverState::default();
        for c in script() {
            s.apply(&c).unwrap();
        }
        let before = s.clone();
        assert!(matches!(
            s.apply(&Command::TaskFinished { job: JobId(9) }),
            Err(SchedulerError::UnknownJob(_))
        ));
        let e = s.apply(&Command::CancelJob { job: JobId(1) }).unwrap_err();
        assert!(e.to_string().contains("succeeded"), "{e}");
        assert_eq!(s, before);
    }
}
