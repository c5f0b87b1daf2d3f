//! Identifiers as distinct types, so a task id is never passed where a job id belongs.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "-{}"), self.0)
            }
        }
    };
}

id_type!(
    /// A submitted job.
    JobId, "job"
);
id_type!(
    /// A stage of a job, between exchange boundaries.
    StageId, "stage"
);
id_type!(
    /// One task: a stage's work on one input split or partition.
    TaskId, "task"
);
id_type!(
    /// A worker process.
    WorkerId, "worker"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_display_with_their_kind() {
        assert_eq!(JobId(7).to_string(), "job-7");
        assert_eq!(WorkerId(2).to_string(), "worker-2");
    }
}
