//! [`WorkDirs`]: each worker's own directory under every spill directory,
//! `worker-<random>`, mode 0700, holding its shuffle files and operator spills.
//!
//! A fixed name (`$TMPDIR/regatta-spill/shuffle`) let another local user
//! create it first, or put a symbolic link there, and have the worker write
//! its rows where they could read them or delete what the link pointed at when
//! it cleared leftovers. A fresh random directory is created, not opened: a
//! name that exists already (a link included) fails instead of being used.

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::{Result, WorkerError};

/// The prefix of every worker's directory in a spill directory.
const PREFIX: &str = "worker-";
/// Held locked for the worker's life: a directory whose lock can be taken
/// belongs to a worker that is gone.
const LOCK: &str = ".lock";

/// A worker's own directories, removed when it is dropped.
#[derive(Debug)]
pub struct WorkDirs {
    dirs: Vec<PathBuf>,
    /// The locks on them (released when the files close).
    _locks: Vec<File>,
}

impl WorkDirs {
    /// Makes a fresh directory of this worker's under each of `spill_dirs`,
    /// after removing those of workers that are gone (real directories of this
    /// user whose lock no one holds; nothing else is touched).
    pub fn create(spill_dirs: &[PathBuf]) -> Result<Self> {
        let mut dirs = Vec::new();
        let mut locks = Vec::new();
        for parent in spill_dirs {
            std::fs::create_dir_all(parent).map_err(|e| dir_error(parent, e))?;
            let removed = remove_abandoned(parent);
            if removed > 0 {
                log::info!(
                    "removed {removed} directories of stopped workers under {}",
                    parent.display()
                );
            }
            let dir = parent.join(format!("{PREFIX}{}", regatta_common::random_hex_128()));
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(|e| dir_error(&dir, e))?;
            let lock = File::create(dir.join(LOCK)).map_err(|e| dir_error(&dir, e))?;
            lock.try_lock().map_err(|e| {
                dir_error(&dir, std::io::Error::other(format!("cannot lock it: {e}")))
            })?;
            locks.push(lock);
            dirs.push(dir);
        }
        if dirs.is_empty() {
            return Err(WorkerError::Stopped(
                "no spill directory: set worker.spill_dirs".into(),
            ));
        }
        Ok(Self {
            dirs,
            _locks: locks,
        })
    }

    /// Where shuffle files go: under the first spill directory.
    pub fn shuffle(&self) -> PathBuf {
        self.dirs[0].join("shuffle")
    }

    /// Where sorts, aggregates and joins spill: one under each.
    pub fn operators(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("operators")).collect()
    }
}

impl Drop for WorkDirs {
    fn drop(&mut self) {
        for d in &self.dirs {
            if let Err(e) = std::fs::remove_dir_all(d) {
                log::warn!("cannot remove {}: {e}", d.display());
            }
        }
    }
}

fn dir_error(path: &Path, e: std::io::Error) -> WorkerError {
    WorkerError::Stopped(format!("spill directory {}: {e}", path.display()))
}

/// Removes the directories under `parent` of workers that stopped without
/// cleaning up (killed). Only real directories (not links) named like ours,
/// owned by this user, mode 0700, whose lock is free. Returns how many.
fn remove_abandoned(parent: &Path) -> usize {
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    let mut removed = 0;
    for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        let path = entry.path();
        let named = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(PREFIX));
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let ours = named
            && meta.is_dir()
            && Some(meta.uid()) == uid
            && meta.permissions().mode() & 0o777 == 0o700;
        if !ours {
            continue;
        }
        let Ok(lock) = File::open(path.join(LOCK)) else {
            continue;
        };
        if lock.try_lock().is_ok() && std::fs::remove_dir_all(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_worker_gets_a_private_directory_and_stopped_ones_are_cleaned() {
        let d = tempfile::tempdir().unwrap();
        let spill = d.path().join("spill");
        let a = WorkDirs::create(std::slice::from_ref(&spill)).unwrap();
        let b = WorkDirs::create(std::slice::from_ref(&spill)).unwrap();
        assert_ne!(a.shuffle(), b.shuffle());
        let mode = std::fs::metadata(a.dirs[0].clone())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::create_dir_all(a.shuffle()).unwrap();
        std::fs::write(a.shuffle().join("rows.arrow"), b"x").unwrap();

        // Another user's trap: a link named like a worker's directory, and
        // a directory of someone else's layout. Neither is touched.
        let victim = d.path().join("victim");
        std::fs::create_dir_all(&victim).unwrap();
        std::fs::write(victim.join("keep"), b"x").unwrap();
        std::os::unix::fs::symlink(&victim, spill.join("worker-trap")).unwrap();
        std::fs::create_dir_all(spill.join("shuffle")).unwrap();

        // A live worker's directory survives another's start; a killed one's
        // (left behind, its lock released with the process) does not.
        let a_dir = a.dirs[0].clone();
        let dead = spill.join("worker-0123456789abcdef");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dead)
            .unwrap();
        std::fs::write(dead.join(LOCK), b"").unwrap();
        std::fs::create_dir_all(dead.join("shuffle/1")).unwrap();
        let c = WorkDirs::create(std::slice::from_ref(&spill)).unwrap();
        assert!(
            a_dir.join("shuffle/rows.arrow").exists(),
            "a live worker's files stay"
        );
        assert!(
            b.dirs[0].exists(),
            "so does another live worker's directory"
        );
        assert!(!dead.exists(), "a killed worker's directory is removed");
        assert!(victim.join("keep").exists(), "a link is never followed");
        assert!(spill.join("shuffle").exists(), "other names are left alone");
        drop(a);
        assert!(!a_dir.exists(), "a worker removes its own directory");
        drop((b, c));
    }
}
