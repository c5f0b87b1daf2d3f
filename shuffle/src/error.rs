//! Errors of the shuffle layer.

/// What shuffle I/O can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ShuffleError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("shuffle file {path}: {source}")]
    Arrow {
        path: String,
        #[source]
        source: arrow::error::ArrowError,
    },
    #[error("invalid shuffle request: {0}")]
    Invalid(String),
}

/// Result alias of this crate.
pub type Result<T, E = ShuffleError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ShuffleError + '_ {
    move |source| ShuffleError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub(crate) fn arrow_err(
    path: &std::path::Path,
) -> impl FnOnce(arrow::error::ArrowError) -> ShuffleError + '_ {
    move |source| ShuffleError::Arrow {
        path: path.display().to_string(),
        source,
    }
}
