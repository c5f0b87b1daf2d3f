//! Reads shuffle files from the local spill directory.

use std::fs::File;

use arrow::ipc::reader::FileReader;
use arrow::record_batch::RecordBatch;
use regatta_common::{JobId, StageId, TaskId};

use crate::error::{arrow_err, io_err};
use crate::{Result, ShuffleLayout};

/// Every batch one map task wrote for `partition`; none when it wrote nothing there.
pub fn read_map_output(
    layout: &ShuffleLayout,
    (job, stage, task): (JobId, StageId, TaskId),
    partition: u32,
) -> Result<Vec<RecordBatch>> {
    let path = layout.file(job, stage, partition, task);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&path)(e)),
    };
    let reader = FileReader::try_new(file, None).map_err(arrow_err(&path))?;
    reader
        .map(|b| b.map_err(arrow_err(&path)))
        .collect::<Result<Vec<_>>>()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::ShuffleWriter;

    #[test]
    fn partitions_round_trip_and_files_appear_whole() {
        let dir = tempfile::tempdir().unwrap();
        let layout = ShuffleLayout::new(dir.path());
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        let ids = (JobId(1), StageId(2), TaskId(0));
        let mut w = ShuffleWriter::new(layout.clone(), ids, schema.clone(), 4).unwrap();
        for p in 0..3u32 {
            let b = RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int64Array::from(vec![i64::from(p); 10]))],
            )
            .unwrap();
            w.append(p, &b).unwrap();
        }
        // Nothing is visible before finish.
        assert!(read_map_output(&layout, ids, 0).unwrap().is_empty());
        let out = w.finish().unwrap();
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|o| o.rows == 10 && o.bytes > 0));
        let b = read_map_output(&layout, ids, 2).unwrap();
        let k = b[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(k.len(), 10);
        assert!(k.values().iter().all(|&v| v == 2));
        assert!(read_map_output(&layout, ids, 3).unwrap().is_empty());
        layout.remove_job(JobId(1)).unwrap();
        assert!(!layout.job_dir(JobId(1)).exists());
    }
}
