//! The files a built-in model is read from, with errors naming the file.

use std::path::{Path, PathBuf};

use crate::{ActorError, Result};

/// An error about `path`.
pub(crate) fn files_error(path: &Path, message: impl std::fmt::Display) -> ActorError {
    ActorError::ModelFiles {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// `dir/name`, or an error naming the missing file and how to get it (`fix`).
pub(crate) fn required(dir: &Path, name: &str, fix: &str) -> Result<PathBuf> {
    let p = dir.join(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(files_error(
            &p,
            format!("missing: the model directory has no {name} ({fix})"),
        ))
    }
}
