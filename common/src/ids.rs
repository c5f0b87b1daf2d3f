//! Identifiers as distinct types, so a stage id is never passed where a job id belongs.

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
    /// The input split a shuffle's map task worked on: it names the file that
    /// task wrote for each output partition (the driver's tasks are
    /// `scheduler::TaskKey`s, of which this is the partition).
    MapPartition, "map"
);
id_type!(
    /// A worker process.
    WorkerId, "worker"
);

/// A submission's identity: chosen by the client once per submission and kept
/// on its retries (a random UUID unless the client names one), carried in
/// `SubmitJob` and replicated with it. It names the job's staging prefix and
/// every file or version it commits, so a commit is idempotent for its own
/// submission and never mistaken for another's, across driver restarts too
/// (job numbers restart with a lone driver; these do not).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(String);

impl RequestId {
    /// The longest id a client may choose.
    pub const MAX_LEN: usize = 64;

    /// A new random id (a version 4 UUID).
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// A client's id: 1 to 64 ASCII letters, digits, `-`, `_` or `.`, so it
    /// can name files and object keys as it is.
    pub fn parse(id: &str) -> crate::Result<Self> {
        let bad = |reason: &str| crate::CommonError::RequestId {
            input: id.chars().take(80).collect(),
            reason: reason.to_string(),
        };
        if id.is_empty() {
            return Err(bad("it is empty"));
        }
        if id.len() > Self::MAX_LEN {
            return Err(bad("it is longer than 64 characters"));
        }
        if !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(bad(
                "only ASCII letters, digits, '-', '_' and '.' are allowed",
            ));
        }
        Ok(Self(id.to_string()))
    }

    /// Empty only in jobs replicated before every submission had an id.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_request_ids_differ_and_parse_back() {
        let (a, b) = (RequestId::generate(), RequestId::generate());
        assert_ne!(a, b);
        assert_eq!(RequestId::parse(a.as_str()).unwrap(), a);
    }

    #[test]
    fn request_ids_that_cannot_name_a_file_are_refused_with_the_reason() {
        for (id, why) in [
            ("", "empty"),
            ("a/b", "allowed"),
            ("..\\x y", "allowed"),
            (&"x".repeat(65), "longer"),
        ] {
            let e = RequestId::parse(id).unwrap_err().to_string();
            assert!(e.contains(why), "{id:?}: {e}");
        }
    }

    #[test]
    fn ids_display_with_their_kind() {
        assert_eq!(JobId(7).to_string(), "job-7");
        assert_eq!(WorkerId(2).to_string(), "worker-2");
    }
}
