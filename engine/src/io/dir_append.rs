//! Appending a job's part files to an output directory in one step: a reader
//! lists either the directory as it was or the directory with every new part,
//! never some of them.
//!
//! A directory cannot gain many files atomically, but two directories can trade
//! places: the new state is built beside the output (hard links to what is
//! there, plus the new parts) and swapped in with `renameat2(RENAME_EXCHANGE)`.
//! Hard links cost no copying, and a reader that opened the old directory
//! still finds every file it listed. Publishers of the same parent directory
//! take turns under a lock; a file another program adds while the new state is
//! built is moved over after the swap. The old state's links are removed a
//! moment after the swap, so a listing that began just before it still ends
//! whole. Where the filesystem has no hard links or no exchange, the parts are
//! moved in one by one (each whole), as before.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::io_err;
use crate::{EngineError, Result};

/// An exclusive lock on a directory, held until dropped (the descriptor
/// closes), so two commits to outputs in it take turns.
struct DirLock(#[allow(dead_code)] File);

impl DirLock {
    fn take(dir: &Path) -> Result<Self> {
        use std::os::fd::AsRawFd;
        let file = File::open(dir).map_err(io_err(dir))?;
        // SAFETY: flock on a descriptor this function owns; no memory is shared.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io_err(dir)(std::io::Error::last_os_error()));
        }
        Ok(Self(file))
    }
}

/// Swaps two directories in one step.
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let cstr = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    };
    let (a, b) = (cstr(a)?, cstr(b)?);
    // SAFETY: both are valid NUL-terminated paths that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Hard-links every entry of `from` into `to` (directories recreated), keeping
/// what `to` already has.
fn link_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            link_tree(&entry.path(), &target)?;
        } else if kind.is_symlink() {
            if target.symlink_metadata().is_err() {
                std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &target)?;
            }
        } else if target.symlink_metadata().is_err() {
            std::fs::hard_link(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Moves every entry of `from` that `to` lacks into `to` (recursing into
/// directories both have): files another program added to the output while
/// the new state was built.
fn move_missing(from: &Path, to: &Path) -> std::io::Result<usize> {
    let mut moved = 0;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        match target.symlink_metadata() {
            Err(_) => {
                std::fs::rename(entry.path(), &target)?;
                moved += 1;
            }
            Ok(m) if m.is_dir() && entry.file_type()?.is_dir() => {
                moved += move_missing(&entry.path(), &target)?;
            }
            Ok(_) => {}
        }
    }
    Ok(moved)
}

/// How long the old state outlives the swap before its links are removed: far
/// longer than listing a directory takes, short for a job's commit.
const OLD_STATE_GRACE: std::time::Duration = std::time::Duration::from_millis(250);

/// One new part: where it is staged, and its name in the output.
#[derive(Debug, Clone)]
pub(crate) struct NewPart {
    pub staged: PathBuf,
    pub name: String,
}

/// Appends `parts` to the directory `dest` so readers see all of them at once,
/// building the new state in `work` (a directory beside `dest`). Safe to run
/// again after an interruption at any step: it finishes what is left.
pub(crate) fn append_parts(dest: &Path, work: &Path, parts: &[NewPart]) -> Result<()> {
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    let _turn = DirLock::take(parent)?;
    let done = parts.iter().all(|p| dest.join(&p.name).exists());
    if !done {
        std::fs::create_dir_all(dest).map_err(io_err(dest))?;
        let linked = link_tree(dest, work);
        for p in parts {
            let to = work.join(&p.name);
            if p.staged.exists() {
                std::fs::rename(&p.staged, &to).map_err(io_err(&to))?;
            } else if !to.exists() {
                return Err(EngineError::InvalidArgument(format!(
                    "staged part {} is gone and was never published to {}",
                    p.staged.display(),
                    dest.display()
                )));
            }
        }
        let swapped = linked.and_then(|()| exchange(work, dest));
        if swapped.is_ok() {
            // A listing of the old directory opened just before the swap reads
            // its entries after it; removing them under it would cut it short.
            std::thread::sleep(OLD_STATE_GRACE);
        }
        if let Err(e) = swapped {
            log::warn!(
                "{}: no hard links or directory exchange here ({e}); its new parts appear one by one",
                dest.display()
            );
            for p in parts {
                let (from, to) = (work.join(&p.name), dest.join(&p.name));
                if from.exists() {
                    std::fs::rename(&from, &to).map_err(io_err(&to))?;
                }
            }
        }
    }
    if work.exists() {
        // After the swap `work` holds the old state: hard links of what `dest`
        // has, and anything written there since the links were made.
        let moved = move_missing(work, dest).map_err(io_err(work))?;
        if moved > 0 {
            log::warn!(
                "{}: moved {moved} entries written during the commit into it",
                dest.display()
            );
        }
        std::fs::remove_dir_all(work).map_err(io_err(work))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        v.sort();
        v
    }

    fn staged(dir: &Path, n: usize) -> Vec<NewPart> {
        std::fs::create_dir_all(dir).unwrap();
        (0..n)
            .map(|i| {
                let staged = dir.join(format!("s{i}"));
                std::fs::write(&staged, format!("part {i}")).unwrap();
                NewPart {
                    staged,
                    name: format!("part-{i:05}-new.csv"),
                }
            })
            .collect()
    }

    #[test]
    fn a_reader_sees_all_new_parts_or_none() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("out");
        std::fs::create_dir_all(dest.join("sub")).unwrap();
        for i in 0..20 {
            std::fs::write(dest.join(format!("part-{i:05}-old.csv")), "old").unwrap();
        }
        std::fs::write(dest.join("sub").join("nested.csv"), "nested").unwrap();
        let inode = std::fs::metadata(dest.join("part-00000-old.csv"))
            .unwrap()
            .ino();
        let parts = staged(&d.path().join("staging"), 300);
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (dest, stop) = (dest.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seen = std::collections::BTreeSet::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(entries) = std::fs::read_dir(&dest) {
                        seen.insert(entries.count());
                    }
                }
                seen
            })
        };
        append_parts(&dest, &d.path().join("work"), &parts).unwrap();
        stop.store(true, Ordering::Relaxed);
        let seen = reader.join().unwrap();
        assert!(
            seen.iter().all(|n| *n == 21 || *n == 321),
            "a reader listed a partly appended directory: {seen:?}"
        );
        let listed = names(&dest);
        assert_eq!(listed.len(), 321);
        assert_eq!(
            std::fs::read_to_string(dest.join("part-00299-new.csv")).unwrap(),
            "part 299"
        );
        assert_eq!(
            std::fs::read_to_string(dest.join("sub").join("nested.csv")).unwrap(),
            "nested"
        );
        let after = std::fs::metadata(dest.join("part-00000-old.csv"))
            .unwrap()
            .ino();
        assert_eq!(inode, after, "the old files are the same files, not copies");
        assert!(!d.path().join("work").exists());
    }

    #[test]
    fn an_interrupted_append_is_finished_by_running_it_again() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("out");
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::write(dest.join("old.csv"), "old").unwrap();
        let parts = staged(&d.path().join("staging"), 3);
        // A commit that died after moving one part into its work directory.
        let work = d.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::rename(&parts[0].staged, work.join(&parts[0].name)).unwrap();
        append_parts(&dest, &work, &parts).unwrap();
        assert_eq!(
            names(&dest),
            [
                "old.csv",
                "part-00000-new.csv",
                "part-00001-new.csv",
                "part-00002-new.csv"
            ]
        );
        // Once more: already done, nothing changes.
        append_parts(&dest, &work, &parts).unwrap();
        assert_eq!(names(&dest).len(), 4);
        assert!(!work.exists());
    }

    #[test]
    fn a_file_written_during_the_commit_is_kept() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("out");
        std::fs::create_dir_all(&dest).unwrap();
        let parts = staged(&d.path().join("staging"), 1);
        // The work directory as the swap leaves it: the old state, with a file
        // another program wrote into the output after the links were made.
        let work = d.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::write(work.join("late.csv"), "late").unwrap();
        std::fs::rename(&parts[0].staged, dest.join(&parts[0].name)).unwrap();
        append_parts(&dest, &work, &parts).unwrap();
        assert_eq!(names(&dest), ["late.csv", "part-00000-new.csv"]);
    }

    #[test]
    fn a_part_that_is_nowhere_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("out");
        let parts = vec![NewPart {
            staged: d.path().join("gone"),
            name: "part-00000-x.csv".into(),
        }];
        let err = append_parts(&dest, &d.path().join("work"), &parts)
            .unwrap_err()
            .to_string();
        assert!(err.contains("gone"), "{err}");
    }
}
