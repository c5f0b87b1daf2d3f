//! Where shuffle files live: `<root>/<job>/<stage>/<partition>/<task>.arrow`.

use std::path::{Path, PathBuf};

use regatta_common::{JobId, MapPartition, StageId};

use crate::error::io_err;
use crate::Result;

/// A spill directory holding shuffle files.
#[derive(Debug, Clone)]
pub struct ShuffleLayout {
    root: PathBuf,
}

impl ShuffleLayout {
    /// Shuffle files under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The spill directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of one job.
    pub fn job_dir(&self, job: JobId) -> PathBuf {
        self.root.join(job.to_string())
    }

    /// The directory of one output partition of a stage.
    pub fn partition_dir(&self, job: JobId, stage: StageId, partition: u32) -> PathBuf {
        self.job_dir(job)
            .join(stage.to_string())
            .join(format!("part-{partition}"))
    }

    /// The file one map task writes for one partition.
    pub fn file(&self, job: JobId, stage: StageId, partition: u32, task: MapPartition) -> PathBuf {
        self.partition_dir(job, stage, partition)
            .join(format!("{task}.arrow"))
    }

    /// The file holding this directory's owner token.
    fn token_file(&self) -> PathBuf {
        self.root.join(".owner-token")
    }

    /// Claims the directory for a new owner: writes a fresh random token into
    /// it (readers on the same machine check it before reading directly).
    pub fn claim(&self) -> Result<String> {
        std::fs::create_dir_all(&self.root).map_err(io_err(&self.root))?;
        let token = regatta_common::random_hex_128();
        let path = self.token_file();
        std::fs::write(&path, &token).map_err(io_err(&path))?;
        Ok(token)
    }

    /// True when `token` (not empty) is this directory's owner token.
    pub fn has_token(&self, token: &str) -> bool {
        !token.is_empty()
            && !self.root.as_os_str().is_empty()
            && std::fs::read_to_string(self.token_file()).is_ok_and(|t| t == token)
    }

    /// Removes every file of `job` (a finished or cancelled job).
    pub fn remove_job(&self, job: JobId) -> Result<()> {
        let dir = self.job_dir(job);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&dir)(e)),
            _ => Ok(()),
        }
    }
}
