//! Errors from parsing shared types.

/// What parsing a shared type can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommonError {
    #[error("invalid byte size {input:?}: {reason} (examples: 512MiB, 2GiB, 1048576)")]
    ByteSize { input: String, reason: String },
    #[error("invalid request id {input:?}: {reason}")]
    RequestId { input: String, reason: String },
    /// A name (a format, a mode) that is none of the accepted ones.
    #[error("unknown {what} {input:?}; use {expected}")]
    UnknownName {
        what: &'static str,
        input: String,
        expected: &'static str,
    },
    #[error("invalid resources: {0}")]
    Resources(String),
    /// A listener beyond loopback without the cluster token.
    #[error(
        "refusing to serve the {what} on {address} without a token: that address is \
         reachable from other machines. Set cluster.token in the cluster file (or \
         REGATTA_TOKEN), or bind {key} to 127.0.0.1"
    )]
    Unprotected {
        what: String,
        address: String,
        key: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = CommonError> = std::result::Result<T, E>;
