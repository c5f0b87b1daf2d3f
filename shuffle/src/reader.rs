//! Reads one partition of a stage: every map task's file for it.

use std::fs::File;

use arrow::ipc::reader::FileReader;
use arrow::record_batch::RecordBatch;
use regatta_common::{JobId, StageId};

use crate::error::{arrow_err, io_err};
use crate::{Result, ShuffleLayout};

/// All batches of `partition`, map task by map task.
pub fn read_partition(
    layout: &ShuffleLayout,
    job: JobId,
    stage: StageId,
    partition: u32,
) -> Result<Vec<RecordBatch>> {
    let dir = layout.partition_dir(job, stage, partition);
    let mut files: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "arrow"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&dir)(e)),
    };
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let file = File::open(&path).map_err(io_err(&path))?;
        let reader = FileReader::try_new(file, None).map_err(arrow_err(&path))?;
        for b in reader {
            out.push(b.map_err(arrow_err(&path))?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use regatta_common::TaskId;

    use super::*;
    use crate::ShuffleWriter;

    #[test]
    fn partitions_round_trip_and_keys_stay_together() {
        let dir = tempfile::tempdir().unwrap();
        let layout = ShuffleLayout::new(dir.path());
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Utf8, false),
        ]));
        let keys: Vec<i64> = (0..1000).map(|i| i % 37).collect();
        let vals: Vec<String> = (0..1000).map(|i| format!("v{i}")).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(keys)),
                Arc::new(StringArray::from(vals)),
            ],
        )
        .unwrap();
        let (job, stage) = (JobId(1), StageId(2));
        for task in 0..2 {
            let mut w = ShuffleWriter::new(
                layout.clone(),
                (job, stage, TaskId(task)),
                schema.clone(),
                vec![0],
                4,
            )
            .unwrap();
            w.write(&batch).unwrap();
            w.finish().unwrap();
        }
        let mut total = 0;
        let mut seen = std::collections::HashMap::new();
        for p in 0..4 {
            for b in read_partition(&layout, job, stage, p).unwrap() {
                total += b.num_rows();
                let k = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                for i in 0..k.len() {
                    let prev = seen.insert(k.value(i), p);
                    assert!(
                        prev.is_none() || prev == Some(p),
                        "key {} in two partitions",
                        k.value(i)
                    );
                }
            }
        }
        assert_eq!(total, 2000);
        layout.remove_job(job).unwrap();
        assert!(!layout.job_dir(job).exists());
    }
}
