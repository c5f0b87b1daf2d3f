//! Writes one map task's output into per-partition IPC files.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use arrow::datatypes::SchemaRef;
use arrow::ipc::writer::FileWriter;
use arrow::record_batch::RecordBatch;
use regatta_common::{JobId, MapPartition, StageId};

use crate::error::{arrow_err, io_err};
use crate::{Result, ShuffleError, ShuffleLayout};

/// The most bytes one stored batch holds. Every reader of a shuffle file (a
/// reduce task, a client reading results) keeps a few batches in flight, so
/// batch size times that is its memory: a morsel of downloaded images can be
/// tens of megabytes, which would make a reader's memory follow the rows'
/// width. Relational batches (thousands of narrow rows) stay far below it.
const MAX_BATCH_BYTES: usize = 4 << 20;

/// `batch` cut by rows into pieces of at most about [`MAX_BATCH_BYTES`] (zero-copy
/// slices; the IPC writer stores only each slice's part of the buffers).
fn pieces(batch: &RecordBatch) -> Vec<RecordBatch> {
    let rows = batch.num_rows();
    let bytes = batch.get_array_memory_size();
    let parts = bytes.div_ceil(MAX_BATCH_BYTES).clamp(1, rows.max(1));
    if parts == 1 {
        return vec![batch.clone()];
    }
    let per = rows.div_ceil(parts);
    (0..rows)
        .step_by(per)
        .map(|offset| batch.slice(offset, per.min(rows - offset)))
        .collect()
}

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
    task: MapPartition,
    schema: SchemaRef,
    writers: Vec<Option<(FileWriter<BufWriter<File>>, u64)>>,
}

impl ShuffleWriter {
    /// A writer for `partitions` output partitions.
    pub fn new(
        layout: ShuffleLayout,
        (job, stage, task): (JobId, StageId, MapPartition),
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
            // which reads the file straight back into batches; compressing there cost
            // the map task more than the bytes saved. Reads from another machine
            // are compressed on the wire instead (see the Flight server).
            let w = FileWriter::try_new(BufWriter::new(file), &self.schema)
                .map_err(arrow_err(&path))?;
            *slot = Some((w, 0));
        }
        if let Some((w, rows)) = slot.as_mut() {
            for piece in pieces(batch) {
                w.write(&piece).map_err(arrow_err(&path))?;
            }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::BinaryArray;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::read_map_output;

    #[test]
    fn a_wide_batch_is_stored_in_pieces_of_a_few_megabytes_without_copies_of_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let layout = ShuffleLayout::new(dir.path());
        let schema = Arc::new(Schema::new(vec![Field::new("b", DataType::Binary, false)]));
        // 64 rows of 256 KiB: one 16 MiB batch, as a morsel of images can be.
        let values: Vec<Vec<u8>> = (0..64u8).map(|i| vec![i; 256 << 10]).collect();
        let column = BinaryArray::from_iter_values(values.iter());
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(column)]).unwrap();
        let ids = (JobId(1), StageId(1), MapPartition(0));
        let mut w = ShuffleWriter::new(layout.clone(), ids, schema, 1).unwrap();
        w.append(0, &batch).unwrap();
        let out = w.finish().unwrap();
        assert_eq!(out[0].rows, 64);
        // Each piece holds only its own rows' bytes: the file is the data once.
        assert!(
            out[0].bytes < (16 << 20) + (1 << 20),
            "{} bytes",
            out[0].bytes
        );
        let back = read_map_output(&layout, ids, 0).unwrap();
        assert!(back.len() >= 4, "{} batches", back.len());
        // Rows of 256 KiB: at most 4 MiB of values per stored batch.
        let rows: Vec<usize> = back.iter().map(|b| b.num_rows()).collect();
        assert!(
            rows.iter().all(|&r| r * (256 << 10) <= MAX_BATCH_BYTES),
            "{rows:?}"
        );
        let joined = arrow::compute::concat_batches(&back[0].schema(), &back).unwrap();
        assert_eq!(joined, batch);
    }

    #[test]
    fn a_narrow_batch_is_stored_whole() {
        let schema = Arc::new(Schema::new(vec![Field::new("b", DataType::Binary, false)]));
        let column = BinaryArray::from_iter_values((0..8192u32).map(|i| i.to_le_bytes()));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(column)]).unwrap();
        assert_eq!(pieces(&batch), vec![batch]);
    }
}
