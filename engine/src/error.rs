//! The engine's error type.

use std::path::Path;

use datafusion::error::DataFusionError;

/// Turns an I/O error at `path` into [`EngineError::Io`] naming it.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> EngineError + '_ {
    move |source| EngineError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Everything that can go wrong inside the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A path, glob or URL that names no readable input.
    #[error("input not found: {path}: {reason}")]
    InputNotFound { path: String, reason: String },
    /// A user-supplied argument or option that is out of range or of the wrong kind.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A row-level failure inside a multimodal function (download, decode, ...).
    #[error("{function} failed at row {row}{}: {message}", source_hint(.source_value))]
    Row {
        function: &'static str,
        row: usize,
        source_value: Option<String>,
        message: String,
    },
    /// More rows failed (under `on_error = 'skip' | 'record'`) than the job's
    /// failure budget allows.
    #[error("the failure budget was passed: {0}")]
    FailureBudget(String),
    /// The access policy refused a path or URL; the text names the key that
    /// would allow it.
    #[error("{0}")]
    AccessRefused(String),
    /// Errors from the Lance format library.
    #[error("lance dataset {uri}: {message}")]
    Lance { uri: String, message: String },
    /// Errors from DataFusion (planning, execution, I/O through its readers and writers).
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    /// Errors from Arrow kernels.
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// An object store failed (after its retries); the message says what to check
    /// and never holds a secret.
    #[error("object store {url}: {message}")]
    Storage { url: String, message: String },
    /// Local file-system errors with the path at fault.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn source_hint(v: &Option<String>) -> String {
    match v {
        Some(v) => format!(" ({v})"),
        None => String::new(),
    }
}

/// The engine's result alias.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl From<EngineError> for DataFusionError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::DataFusion(e) => e,
            other => DataFusionError::External(Box::new(other)),
        }
    }
}

impl EngineError {
    /// Finds a row-level error inside a DataFusion error chain, if there is one.
    pub fn find_row_error(e: &DataFusionError) -> Option<&EngineError> {
        let mut cur: &dyn std::error::Error = e;
        loop {
            if let Some(found) = cur.downcast_ref::<EngineError>() {
                if matches!(found, EngineError::Row { .. }) {
                    return Some(found);
                }
            }
            if let Some(DataFusionError::External(inner)) = cur.downcast_ref::<DataFusionError>() {
                cur = inner.as_ref();
                continue;
            }
            if let Some(DataFusionError::Context(_, inner)) = cur.downcast_ref::<DataFusionError>()
            {
                cur = inner.as_ref();
                continue;
            }
            if let Some(DataFusionError::Shared(inner)) = cur.downcast_ref::<DataFusionError>() {
                cur = inner.as_ref();
                continue;
            }
            match cur.source() {
                Some(s) => cur = s,
                None => return None,
            }
        }
    }
}
