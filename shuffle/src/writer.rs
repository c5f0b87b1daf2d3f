//! Hash-partitions a map task's batches into per-partition IPC files.

use std::collections::hash_map::DefaultHasher;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use arrow::array::UInt32Array;
use arrow::compute::take_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::writer::{FileWriter, IpcWriteOptions};
use arrow::ipc::CompressionType;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use regatta_common::{JobId, StageId, TaskId};

use crate::error::{arrow_err, io_err};
use crate::{Result, ShuffleError, ShuffleLayout};

/// What a map task wrote for one partition.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionOutput {
    pub partition: u32,
    pub rows: u64,
    pub path: PathBuf,
}

/// Writes one map task's output, partitioned by the hash of key columns.
pub struct ShuffleWriter {
    layout: ShuffleLayout,
    job: JobId,
    stage: StageId,
    task: TaskId,
    schema: SchemaRef,
    keys: Vec<usize>,
    converter: RowConverter,
    writers: Vec<Option<(FileWriter<File>, u64)>>,
}

impl ShuffleWriter {
    /// A writer for `partitions` partitions hashing the columns at `keys`.
    pub fn new(
        layout: ShuffleLayout,
        (job, stage, task): (JobId, StageId, TaskId),
        schema: SchemaRef,
        keys: Vec<usize>,
        partitions: u32,
    ) -> Result<Self> {
        if partitions == 0 || keys.is_empty() {
            return Err(ShuffleError::Invalid(
                "need at least one partition and one key column".into(),
            ));
        }
        let fields = keys
            .iter()
            .map(|&k| {
                schema
                    .fields()
                    .get(k)
                    .map(|f| SortField::new(f.data_type().clone()))
                    .ok_or_else(|| ShuffleError::Invalid(format!("key column {k} not in schema")))
            })
            .collect::<Result<Vec<_>>>()?;
        let converter =
            RowConverter::new(fields).map_err(|e| ShuffleError::Invalid(e.to_string()))?;
        Ok(Self {
            layout,
            job,
            stage,
            task,
            schema,
            keys,
            converter,
            writers: (0..partitions).map(|_| None).collect(),
        })
    }

    /// Routes every row of `batch` to its partition's file.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let n = self.writers.len() as u64;
        let cols: Vec<_> = self.keys.iter().map(|&k| batch.column(k).clone()).collect();
        let rows = self
            .converter
            .convert_columns(&cols)
            .map_err(|e| ShuffleError::Invalid(e.to_string()))?;
        let mut per_part: Vec<Vec<u32>> = vec![Vec::new(); self.writers.len()];
        for (i, row) in rows.iter().enumerate() {
            let mut h = DefaultHasher::new();
            row.as_ref().hash(&mut h);
            per_part[(h.finish() % n) as usize].push(i as u32);
        }
        for (p, idx) in per_part.into_iter().enumerate() {
            if idx.is_empty() {
                continue;
            }
            let part = take_record_batch(batch, &UInt32Array::from(idx))
                .map_err(|e| ShuffleError::Invalid(e.to_string()))?;
            self.append(p as u32, &part)?;
        }
        Ok(())
    }

    fn append(&mut self, partition: u32, batch: &RecordBatch) -> Result<()> {
        let path = self.layout.file(self.job, self.stage, partition, self.task);
        let slot = &mut self.writers[partition as usize];
        if slot.is_none() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io_err(dir))?;
            }
            let file = File::create(&path).map_err(io_err(&path))?;
            let opts = IpcWriteOptions::default()
                .try_with_compression(Some(CompressionType::LZ4_FRAME))
                .map_err(arrow_err(&path))?;
            let w = FileWriter::try_new_with_options(file, &self.schema, opts)
                .map_err(arrow_err(&path))?;
            *slot = Some((w, 0));
        }
        if let Some((w, rows)) = slot.as_mut() {
            w.write(batch).map_err(arrow_err(&path))?;
            *rows += batch.num_rows() as u64;
        }
        Ok(())
    }

    /// Closes every file and lists what was written.
    pub fn finish(mut self) -> Result<Vec<PartitionOutput>> {
        let mut out = Vec::new();
        for (p, slot) in self.writers.iter_mut().enumerate() {
            if let Some((mut w, rows)) = slot.take() {
                let path = self.layout.file(self.job, self.stage, p as u32, self.task);
                w.finish().map_err(arrow_err(&path))?;
                out.push(PartitionOutput {
                    partition: p as u32,
                    rows,
                    path,
                });
            }
        }
        Ok(out)
    }
}
