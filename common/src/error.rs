//! Errors from parsing shared types.

/// What parsing a shared type can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommonError {
    #[error("invalid byte size {input:?}: {reason} (examples: 512MiB, 2GiB, 1048576)")]
    ByteSize { input: String, reason: String },
    #[error("invalid resources: {0}")]
    Resources(String),
}

/// Result alias of this crate.
pub type Result<T, E = CommonError> = std::result::Result<T, E>;
