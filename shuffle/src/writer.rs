//! Writes one map task's output into per-partition IPC files.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use arrow::datatypes::SchemaRef;
use arrow::ipc::writer::FileWriter;
use arrow::record_batch::RecordBatch;
use regatta_common::{JobId, StageId, TaskId};

use crate::error::{arrow_err, io_err};
use crate::{Result, ShuffleError, ShuffleLayout};

/// What a map task wrote for one partition.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionOutput {
    pub partition: u32,
    pub rows: u64,
    pub bytes: u64,
    pub path: PathBuf,
}

/// Writes one map task's output, batch by batch, to the partition each batch
/// belongs to. Files are written under a temporary name and renamed by
/// [`finish`](Self::finish), so a reader never sees a half-written file and a retried
/// task replaces its earlier attempt's output whole.
pub struct ShuffleWriter {
    layout: ShuffleLayout,
    job: JobId,
    stage: StageId,
    task: TaskId,
    schema: SchemaRef,
    writers: Vec<Option<(FileWriter<BufWriter<File>>, u64)>>,
}

impl ShuffleWriter {
    /// A writer for `partitions` output partitions.
    pub fn new(
        layout: ShuffleLayout,
        (job, stage, task): (JobId, StageId, TaskId),
        schema: SchemaRef,
        partitions: u32,
    ) -> Result<Self> {
        if partitions == 0 {
            return Err(ShuffleError::Invalid("need at least one partition".into()));
        }
        Ok(Self {
            layout,
            job,
            stage,
            task,
            schema,
            writers: (0..partitions).map(|_| None).collect(),
        })
    }

    fn temp_path(&self, partition: u32) -> PathBuf {
        self.layout
            .file(self.job, self.stage, partition, self.task)
            .with_extension("arrow.tmp")
    }

    /// Appends `batch` to `partition`'s file.
    pub fn append(&mut self, partition: u32, batch: &RecordBatch) -> Result<()> {
        if partition as usize >= self.writers.len() {
            return Err(ShuffleError::Invalid(format!(
                "partition {partition} out of {}",
                self.writers.len()
            )));
        }
        let path = self.temp_path(partition);
        let slot = &mut self.writers[partition as usize];
        if slot.is_none() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io_err(dir))?;
            }
            let file = File::create(&path).map_err(io_err(&path))?;
            // Uncompressed on disk: most reads are by a task on the same machine,
            // which maps the file straight into batches; compressing there cost
            // the map task more than the bytes saved. Reads from another machine
            // are compressed on the wire instead (see the Flight server).
            let w = FileWriter::try_new(BufWriter::new(file), &self.schema)
                .map_err(arrow_err(&path))?;
            *slot = Some((w, 0));
        }
        if let Some((w, rows)) = slot.as_mut() {
            w.write(batch).map_err(arrow_err(&path))?;
            *rows += batch.num_rows() as u64;
        }
        Ok(())
    }

    /// Closes every file, makes it visible, and lists what was written.
    pub fn finish(mut self) -> Result<Vec<PartitionOutput>> {
        let mut out = Vec::new();
        for p in 0..self.writers.len() {
            let Some((w, rows)) = self.writers[p].take() else {
                continue;
            };
            let tmp = self.temp_path(p as u32);
            // Finishing writes the footer; unwrapping the buffer flushes it, so a
            // failed write is an error here, not lost in a drop.
            let buffered = w.into_inner().map_err(arrow_err(&tmp))?;
            buffered
                .into_inner()
                .map_err(|e| io_err(&tmp)(e.into_error()))?;
            let path = self.layout.file(self.job, self.stage, p as u32, self.task);
            std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
            let bytes = std::fs::metadata(&path).map_err(io_err(&path))?.len();
            out.push(PartitionOutput {
                partition: p as u32,
                rows,
                bytes,
                path,
            });
        }
        Ok(out)
    }
}
