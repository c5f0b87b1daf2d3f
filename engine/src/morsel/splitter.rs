//! Cuts an input stream into morsels of a requested row count.

use std::collections::VecDeque;

use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;

/// Slices and coalesces input batches into morsels.
pub struct MorselSplitter {
    input: SendableRecordBatchStream,
    schema: SchemaRef,
    buffered: VecDeque<RecordBatch>,
    buffered_rows: usize,
    done: bool,
}

impl MorselSplitter {
    /// Splits `input`.
    pub fn new(input: SendableRecordBatchStream) -> Self {
        let schema = input.schema();
        Self {
            input,
            schema,
            buffered: VecDeque::new(),
            buffered_rows: 0,
            done: false,
        }
    }

    /// The next morsel of `rows` rows (fewer only at the end of the input), or None.
    pub async fn next(&mut self, rows: usize) -> Result<Option<RecordBatch>> {
        let rows = rows.max(1);
        while self.buffered_rows < rows && !self.done {
            match self.input.next().await {
                Some(b) => {
                    let b = b?;
                    if b.num_rows() > 0 {
                        self.buffered_rows += b.num_rows();
                        self.buffered.push_back(b);
                    }
                }
                None => self.done = true,
            }
        }
        if self.buffered_rows == 0 {
            return Ok(None);
        }
        let take = rows.min(self.buffered_rows);
        let mut parts = Vec::new();
        let mut need = take;
        while need > 0 {
            let Some(front) = self.buffered.pop_front() else {
                break;
            };
            if front.num_rows() <= need {
                need -= front.num_rows();
                parts.push(front);
            } else {
                parts.push(front.slice(0, need));
                self.buffered
                    .push_front(front.slice(need, front.num_rows() - need));
                need = 0;
            }
        }
        self.buffered_rows -= take;
        if parts.len() == 1 {
            return Ok(parts.pop());
        }
        Ok(Some(concat_batches(&self.schema, &parts)?))
    }
}
