//! Reads shuffle files from the local spill directory, batch by batch.

use std::fs::File;
use std::io::BufReader;

use arrow::ipc::reader::FileReader;
use arrow::record_batch::RecordBatch;
use futures::stream::BoxStream;
use futures::StreamExt;
use regatta_common::{JobId, MapPartition, StageId};

use crate::error::{arrow_err, io_err};
use crate::{Result, ShuffleLayout};

/// Batches read ahead of the consumer per open shuffle file: a file is streamed,
/// never loaded whole, however large it is.
const READ_AHEAD: usize = 2;

/// A reader of the file one map task wrote for `partition`; None when it wrote
/// nothing there.
pub fn open_map_output(
    layout: &ShuffleLayout,
    (job, stage, task): (JobId, StageId, MapPartition),
    partition: u32,
) -> Result<Option<FileReader<BufReader<File>>>> {
    let path = layout.file(job, stage, partition, task);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path)(e)),
    };
    FileReader::try_new(BufReader::new(file), None)
        .map(Some)
        .map_err(arrow_err(&path))
}

/// Every batch one map task wrote for `partition`; none when it wrote nothing there.
/// Loads them all: for tests and small outputs; [`stream_map_output`] streams.
pub fn read_map_output(
    layout: &ShuffleLayout,
    ids: (JobId, StageId, MapPartition),
    partition: u32,
) -> Result<Vec<RecordBatch>> {
    let path = layout.file(ids.0, ids.1, partition, ids.2);
    match open_map_output(layout, ids, partition)? {
        None => Ok(Vec::new()),
        Some(reader) => reader
            .map(|b| b.map_err(arrow_err(&path)))
            .collect::<Result<Vec<_>>>(),
    }
}

/// The batches one map task wrote for `partition`, read on a blocking thread a
/// couple of batches ahead of the consumer. Dropping the stream stops the read.
pub fn stream_map_output(
    layout: &ShuffleLayout,
    ids: (JobId, StageId, MapPartition),
    partition: u32,
) -> BoxStream<'static, Result<RecordBatch>> {
    let layout = layout.clone();
    let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    // The reading thread ends at the file's end or when the receiver is gone
    // (its next send fails), so nothing outlives the stream for long.
    tokio::task::spawn_blocking(move || {
        let path = layout.file(ids.0, ids.1, partition, ids.2);
        let reader = match open_map_output(&layout, ids, partition) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        for batch in reader {
            if tx.blocking_send(batch.map_err(arrow_err(&path))).is_err() {
                return;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx).boxed()
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
        let ids = (JobId(1), StageId(2), MapPartition(0));
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
        // Streamed, batch by batch, the same rows.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let streamed: Vec<RecordBatch> = rt
            .block_on(async {
                use futures::TryStreamExt;
                stream_map_output(&layout, ids, 2).try_collect().await
            })
            .unwrap();
        assert_eq!(streamed, b);
        layout.remove_job(JobId(1)).unwrap();
        assert!(!layout.job_dir(JobId(1)).exists());
    }
}
