//! Errors from reading a cluster file.

/// A cluster file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: key {key} = {value:?}: {allowed}")]
    Invalid {
        path: String,
        key: String,
        value: String,
        allowed: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = ConfigError> = std::result::Result<T, E>;
