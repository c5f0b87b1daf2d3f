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
    /// A map output could not be fetched from the worker holding it.
    #[error("shuffle data of worker {worker} at {address} is unavailable: {message}")]
    Fetch {
        worker: u64,
        address: String,
        message: String,
    },
}

impl ShuffleError {
    /// The worker whose shuffle output could not be fetched, if `e` says so anywhere
    /// in its chain (DataFusion wraps errors several times on their way up).
    pub fn lost_worker(e: &(dyn std::error::Error + 'static)) -> Option<u64> {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = cur {
            if let Some(ShuffleError::Fetch { worker, .. }) = err.downcast_ref::<ShuffleError>() {
                return Some(*worker);
            }
            cur = err.source();
        }
        None
    }
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
