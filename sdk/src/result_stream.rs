//! [`ResultStream`]: a cluster job's rows, read straight from the workers that
//! made them over Arrow Flight, partition by partition in order, in bounded
//! memory. The driver only says where the partitions are.
//!
//! Partitions are read as soon as they are done, so a map-only job streams
//! while it runs. A partition whose worker is lost mid-read is made again from
//! lineage by the driver; the reader waits for its new location and resumes
//! after the rows it already delivered.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use regatta_common::{JobId, StageId};
use regatta_engine::arrow::record_batch::RecordBatch;
use regatta_proto::{JobStatus, ResultPartition, ResultsState};
use regatta_shuffle::{MapLocation, ShuffleFetcher};
use tokio::sync::mpsc;

use crate::cluster::ClusterClient;
use crate::{Error, Result};

/// Batches handed over ahead of the consumer. One: the fetch below already reads
/// a couple of batches ahead, and result batches can be tens of megabytes (a
/// morsel of downloaded images), so every extra slot here was client memory
/// that a slow consumer (one writing JSON) kept full.
const READ_AHEAD: usize = 1;
/// How long a partition may stay unreadable (its worker lost, its
/// recomputation not done) before the read gives up.
const LOST_PATIENCE: Duration = Duration::from_secs(300);

/// A job's result rows as they arrive. Dropping it stops the read.
pub struct ResultStream {
    rx: mpsc::Receiver<Result<RecordBatch>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ResultStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stream for ResultStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl ResultStream {
    /// Starts reading `job`'s results through `client`.
    pub(crate) fn start(client: ClusterClient, job: u64) -> Self {
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        let task = tokio::spawn(async move {
            let mut reader = Reader {
                fetcher: Arc::new(client.fetcher()),
                client,
                job,
                tx,
                delivered_in_partition: 0,
            };
            if let Err(e) = reader.run().await {
                let _ = reader.tx.send(Err(e)).await;
            }
        });
        Self { rx, task }
    }
}

struct Reader {
    client: ClusterClient,
    fetcher: Arc<ShuffleFetcher>,
    job: u64,
    tx: mpsc::Sender<Result<RecordBatch>>,
    /// Rows of the partition being read that went out already.
    delivered_in_partition: u64,
}

/// How reading one partition ended.
enum PartitionRead {
    Done,
    /// Its worker could not serve it (lost); `delivered` rows went out before.
    Lost(String),
    /// The consumer is gone.
    Closed,
}

impl Reader {
    async fn run(&mut self) -> Result<()> {
        let mut next = 0u32;
        let mut delivered = 0u64;
        let mut wait = Duration::from_millis(20);
        let mut stuck_since: Option<(Instant, String)> = None;
        let mut watch: Option<tonic::Streaming<regatta_proto::JobInfo>> = None;
        let mut watch_ended = false;
        loop {
            let loc = self.client.result_locations(self.job).await?;
            let info = loc.job.clone().unwrap_or_default();
            match info.status() {
                JobStatus::Failed | JobStatus::Cancelled => {
                    return Err(Error::JobFailed {
                        job: self.job,
                        status: info.status().word().to_string(),
                        message: info.error,
                    })
                }
                _ => {}
            }
            match info.results() {
                ResultsState::Released => {
                    return Err(Error::ResultsGone {
                        job: self.job,
                        why: info.results_note,
                    })
                }
                ResultsState::Written => return Ok(()),
                _ => {}
            }
            let mut progressed = false;
            let start = next;
            for p in loc.done.iter().skip_while(|p| p.partition < start) {
                if p.partition != next {
                    break;
                }
                match self
                    .read(StageId(u64::from(loc.stage_id)), p, delivered)
                    .await?
                {
                    PartitionRead::Done => {
                        next += 1;
                        delivered = 0;
                        progressed = true;
                        stuck_since = None;
                    }
                    PartitionRead::Closed => return Ok(()),
                    PartitionRead::Lost(why) => {
                        let since =
                            stuck_since.get_or_insert_with(|| (Instant::now(), why.clone()));
                        if since.0.elapsed() > LOST_PATIENCE {
                            return Err(Error::Unreachable {
                                address: p.flight_address.clone(),
                                message: format!(
                                    "result partition {next} of job-{} stayed unreadable for {:?}: {}",
                                    self.job, LOST_PATIENCE, since.1
                                ),
                            });
                        }
                        // Resumes after the rows already sent.
                        delivered = self.delivered_in_partition;
                        break;
                    }
                }
            }
            if next >= loc.partitions && info.status() == JobStatus::Succeeded {
                return Ok(());
            }
            if progressed {
                wait = Duration::from_millis(20);
            } else {
                // Nothing new is done yet: wait for the driver's next progress
                // message (it pushes one when a task ends), at most `wait`, so
                // the end of a job is seen when it happens, not at the next poll.
                if watch.is_none() && !watch_ended {
                    watch = self.client.watch_stream(self.job).await.ok();
                    watch_ended = watch.is_none();
                }
                match watch.as_mut() {
                    Some(w) => match tokio::time::timeout(wait, w.message()).await {
                        Ok(Ok(Some(_))) | Err(_) => {}
                        // Ended (the job did, or the leader changed) or failed:
                        // polling alone from here.
                        Ok(_) => {
                            watch = None;
                            watch_ended = true;
                        }
                    },
                    None => tokio::time::sleep(wait).await,
                }
                wait = (wait * 2).min(Duration::from_millis(500));
            }
        }
    }

    /// Sends partition `p`'s rows after the first `skip`.
    async fn read(
        &mut self,
        stage: StageId,
        p: &ResultPartition,
        skip: u64,
    ) -> Result<PartitionRead> {
        self.delivered_in_partition = skip;
        if p.rows == 0 {
            return Ok(PartitionRead::Done);
        }
        let map = MapLocation {
            map_partition: p.partition,
            worker: p.worker_id,
            address: p.flight_address.clone(),
            partitions: vec![p.partition],
            shuffle_root: p.shuffle_root.clone(),
            shuffle_token: p.shuffle_token.clone(),
        };
        let mut stream = match self
            .fetcher
            .fetch((JobId(self.job), stage), &map, p.partition)
            .await
        {
            Ok(s) => s,
            Err(e) => return Ok(PartitionRead::Lost(e.to_string())),
        };
        let mut seen = 0u64;
        while let Some(batch) = stream.next().await {
            let batch = match batch {
                Ok(b) => b,
                Err(e) => return Ok(PartitionRead::Lost(e.to_string())),
            };
            let rows = batch.num_rows() as u64;
            let start = seen;
            seen += rows;
            if seen <= self.delivered_in_partition {
                continue;
            }
            let from = self.delivered_in_partition.saturating_sub(start) as usize;
            let batch = batch.slice(from, batch.num_rows() - from);
            let sent = batch.num_rows() as u64;
            if self.tx.send(Ok(batch)).await.is_err() {
                return Ok(PartitionRead::Closed);
            }
            self.delivered_in_partition += sent;
        }
        Ok(PartitionRead::Done)
    }
}
