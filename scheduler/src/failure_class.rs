//! [`FailureClass`]: why a task failed, which decides whether it is tried again.

use serde::{Deserialize, Serialize};

/// Why a task failed. The retryable classes count against
/// `driver.max_task_failures`; the others fail the job at once, since a plan,
/// the data or a user function would fail the same way on any worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FailureClass {
    /// Reading or writing failed (and any cause not named: older workers).
    #[default]
    Io,
    /// A peer the task read from went away.
    LostPeer,
    /// Memory or another resource ran out.
    Resource,
    /// The task ran past `driver.task_timeout_secs`.
    Timeout,
    /// The worker running it died or stopped answering: the input may be what
    /// killed it, so this counts as an attempt (Spark's ExecutorLostFailure).
    WorkerLost,
    /// The plan cannot run (a bad cast, a missing column).
    Plan,
    /// The input is wrong (a missing file, a corrupt one).
    Data,
    /// A model or user function failed.
    UserFunction,
}

impl FailureClass {
    /// Whether another attempt may succeed.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            Self::Io | Self::LostPeer | Self::Resource | Self::Timeout | Self::WorkerLost
        )
    }

    /// How reasons name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Io => "I/O error",
            Self::LostPeer => "lost peer",
            Self::Resource => "out of resources",
            Self::Timeout => "timed out",
            Self::WorkerLost => "worker lost",
            Self::Plan => "plan error",
            Self::Data => "data error",
            Self::UserFunction => "user function error",
        }
    }
}

impl From<regatta_proto::FailureClass> for FailureClass {
    fn from(c: regatta_proto::FailureClass) -> Self {
        use regatta_proto::FailureClass as P;
        match c {
            P::Unspecified | P::Io => Self::Io,
            P::LostPeer => Self::LostPeer,
            P::Resource => Self::Resource,
            P::Timeout => Self::Timeout,
            P::WorkerLost => Self::WorkerLost,
            P::Plan => Self::Plan,
            P::Data => Self::Data,
            P::UserFunction => Self::UserFunction,
        }
    }
}

impl std::fmt::Display for FailureClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
