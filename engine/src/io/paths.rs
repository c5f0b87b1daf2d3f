//! Turning what a user typed (a path, a directory, a glob, a `file://` URL) into files.

use std::path::{Path, PathBuf};

use crate::{EngineError, Result};

/// The local path behind a plain path or a `file://` URL.
pub fn local_path(input: &str) -> Result<PathBuf> {
    if let Some(rest) = input.strip_prefix("file://") {
        let url = url::Url::parse(input)
            .map_err(|e| EngineError::InvalidArgument(format!("bad file URL {input:?}: {e}")))?;
        return url.to_file_path().map_err(|_| {
            EngineError::InvalidArgument(format!(
                "file URL {input:?} has no local path (host part {:?}?)",
                rest.split('/').next().unwrap_or_default()
            ))
        });
    }
    if input.contains("://") {
        return Err(EngineError::InvalidArgument(format!(
            "{input:?} is not a local path; only file:// URLs and plain paths are read from disk"
        )));
    }
    Ok(PathBuf::from(input))
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Expands `input` into the files to read, sorted. A directory yields its files
/// (recursively) ending in `extension`; a glob yields its matches. Fails, naming the
/// input, when nothing matches.
pub fn expand_input(input: &str, extension: &str) -> Result<Vec<PathBuf>> {
    let path = local_path(input)?;
    let text = path.to_string_lossy().to_string();
    let not_found = |reason: &str| EngineError::InputNotFound {
        path: input.to_string(),
        reason: reason.to_string(),
    };
    let mut files = Vec::new();
    if has_glob(&text) {
        let matches = glob::glob(&text).map_err(|e| {
            EngineError::InvalidArgument(format!("bad glob pattern {input:?}: {e}"))
        })?;
        for m in matches {
            let p = m.map_err(|e| EngineError::Io {
                path: e.path().display().to_string(),
                source: std::io::Error::other(e.error().to_string()),
            })?;
            if p.is_file() {
                files.push(p);
            }
        }
        if files.is_empty() {
            return Err(not_found("the glob matches no files"));
        }
    } else if path.is_dir() {
        collect_dir(&path, extension, &mut files)?;
        if files.is_empty() {
            return Err(not_found(&format!(
                "the directory holds no *{extension} files"
            )));
        }
    } else if path.is_file() {
        files.push(path);
    } else if path.exists() {
        return Err(not_found("not a regular file or directory"));
    } else {
        return Err(not_found("no such file or directory"));
    }
    files.sort();
    Ok(files)
}

fn collect_dir(dir: &Path, extension: &str, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|source| EngineError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| EngineError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let p = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || name.starts_with('_') {
            continue; // hidden files and writer markers such as _SUCCESS
        }
        if p.is_dir() {
            collect_dir(&p, extension, out)?;
        } else if name.ends_with(extension) {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_and_plain_paths_resolve() {
        assert_eq!(
            local_path("file:///tmp/a b.txt").unwrap(),
            PathBuf::from("/tmp/a b.txt")
        );
        assert_eq!(local_path("/tmp/x").unwrap(), PathBuf::from("/tmp/x"));
        assert!(local_path("s3://bucket/x").is_err());
    }

    #[test]
    fn expands_dirs_and_globs_and_names_missing_input() {
        let d = tempfile::tempdir().unwrap();
        for n in ["a.csv", "b.csv", "c.txt", "_SUCCESS"] {
            std::fs::write(d.path().join(n), "x\n1\n").unwrap();
        }
        let dir = d.path().to_string_lossy().to_string();
        assert_eq!(expand_input(&dir, ".csv").unwrap().len(), 2);
        assert_eq!(
            expand_input(&format!("{dir}/*.txt"), ".csv").unwrap().len(),
            1
        );
        let err = expand_input(&format!("{dir}/missing.csv"), ".csv").unwrap_err();
        assert!(err.to_string().contains("missing.csv"), "{err}");
        let err = expand_input(&format!("{dir}/*.json"), ".json").unwrap_err();
        assert!(err.to_string().contains("matches no files"), "{err}");
    }
}
