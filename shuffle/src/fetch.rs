//! Fetches map outputs: from the local spill directory when this node holds them,
//! else over Arrow Flight from the worker that does.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::Ticket;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use regatta_common::{JobId, MapPartition, StageId};
use regatta_proto::ShuffleTicket;
use tonic::transport::{Channel, ClientTlsConfig};

use crate::{stream_map_output, Result, ShuffleError, ShuffleLayout};

/// Where one map task's output lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapLocation {
    pub map_partition: u32,
    pub worker: u64,
    pub address: String,
    /// The output partitions it wrote rows to.
    pub partitions: Vec<u32>,
    /// The worker's shuffle directory and its token: a reader on the same
    /// machine that finds that token there reads the file directly.
    pub shuffle_root: String,
    pub shuffle_token: String,
}

/// What a node needs to read shuffle data: its own files and its peers' servers.
#[derive(Debug)]
pub struct ShuffleFetcher {
    /// This node's worker id and spill directory; None where no shuffle files live
    /// (the driver).
    local: Option<(u64, ShuffleLayout)>,
    token: String,
    /// TLS for Flight calls, when the cluster uses it.
    tls: Option<ClientTlsConfig>,
    channels: Mutex<HashMap<String, Channel>>,
}

impl ShuffleFetcher {
    /// The fetcher of worker `local_worker`, whose files are under `layout`.
    pub fn new(local_worker: u64, layout: ShuffleLayout, token: String) -> Self {
        Self {
            local: Some((local_worker, layout)),
            token,
            tls: None,
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// A fetcher that reads everything over Flight (for the driver).
    pub fn remote(token: String) -> Self {
        Self {
            local: None,
            token,
            tls: None,
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// Calls other nodes over TLS.
    pub fn with_tls(mut self, tls: Option<ClientTlsConfig>) -> Self {
        self.tls = tls;
        self
    }

    fn channel(&self, address: &str) -> Result<Channel> {
        let mut map = self
            .channels
            .lock()
            .map_err(|_| ShuffleError::Invalid("shuffle channel cache poisoned".into()))?;
        if let Some(c) = map.get(address) {
            return Ok(c.clone());
        }
        let endpoint = regatta_proto::endpoint(address, self.tls.as_ref())
            .map_err(|e| ShuffleError::Invalid(format!("shuffle address {e}")))?
            .connect_timeout(Duration::from_secs(3));
        let channel = endpoint.connect_lazy();
        map.insert(address.to_string(), channel.clone());
        Ok(channel)
    }

    /// The batches `map` wrote for `partition` of `stage`.
    pub async fn fetch(
        &self,
        (job, stage): (JobId, StageId),
        map: &MapLocation,
        partition: u32,
    ) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        let task = MapPartition(u64::from(map.map_partition));
        if let Some((_, layout)) = self.local.as_ref().filter(|(w, _)| *w == map.worker) {
            return Ok(stream_map_output(layout, (job, stage, task), partition));
        }
        // Another worker on this machine: its files, read from disk, stay off
        // the network. The token proves the directory is that worker's (not a
        // same-named one of another container or an earlier run).
        let layout = ShuffleLayout::new(&map.shuffle_root);
        if layout.has_token(&map.shuffle_token) {
            let file = layout.file(job, stage, partition, task);
            if file.exists() {
                return Ok(stream_map_output(&layout, (job, stage, task), partition));
            }
        }
        let lost = |message: String| ShuffleError::Fetch {
            worker: map.worker,
            address: map.address.clone(),
            message,
        };
        let ticket = ShuffleTicket {
            job_id: job.0,
            stage_id: stage.0 as u32,
            partition,
            map_partition: map.map_partition,
        };
        let mut request = tonic::Request::new(Ticket {
            ticket: ticket.encode_to_vec().into(),
        });
        let value = regatta_proto::bearer(&self.token)
            .parse()
            .map_err(|_| ShuffleError::Invalid("cluster token is not valid ASCII".into()))?;
        request
            .metadata_mut()
            .insert(regatta_proto::TOKEN_HEADER, value);
        let mut client = FlightServiceClient::new(self.channel(&map.address)?)
            .max_decoding_message_size(usize::MAX);
        let response = client
            .do_get(request)
            .await
            .map_err(|s| lost(s.message().to_string()))?;
        let worker = map.worker;
        let address = map.address.clone();
        let stream = FlightRecordBatchStream::new_from_flight_data(
            response.into_inner().map_err(|s| s.into()),
        )
        .map_err(move |e| ShuffleError::Fetch {
            worker,
            address: address.clone(),
            message: e.to_string(),
        });
        Ok(stream.boxed())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use futures::TryStreamExt;

    use super::*;
    use crate::ShuffleWriter;

    fn location(root: &std::path::Path, token: &str) -> MapLocation {
        MapLocation {
            map_partition: 0,
            worker: 7,
            // Nothing listens here: a read that went over the network fails.
            address: "127.0.0.1:1".into(),
            partitions: vec![0],
            shuffle_root: root.to_string_lossy().to_string(),
            shuffle_token: token.into(),
        }
    }

    #[tokio::test]
    async fn another_workers_files_on_this_machine_are_read_from_disk_only_with_its_token() {
        let dir = tempfile::tempdir().unwrap();
        let layout = ShuffleLayout::new(dir.path().join("shuffle"));
        let token = layout.claim().unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        let ids = (JobId(1), StageId(1), MapPartition(0));
        let mut w = ShuffleWriter::new(layout.clone(), ids, schema.clone(), 1).unwrap();
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2, 3]))]).unwrap();
        w.append(0, &batch).unwrap();
        w.finish().unwrap();
        // A fetcher of another worker (id 8), or a client (no local files).
        let reader =
            ShuffleFetcher::new(8, ShuffleLayout::new(dir.path().join("other")), "t".into());
        let got: Vec<RecordBatch> = reader
            .fetch((JobId(1), StageId(1)), &location(layout.root(), &token), 0)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(got, vec![batch]);
        // Another token (the directory was claimed again, or is another
        // machine's): the read goes to the worker's server, here unreachable.
        let wrong = location(layout.root(), "not-the-token");
        let err = match reader.fetch((JobId(1), StageId(1)), &wrong, 0).await {
            Ok(stream) => stream.try_collect::<Vec<_>>().await.unwrap_err(),
            Err(e) => e,
        };
        assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
        assert_eq!(ShuffleError::lost_worker(&err), Some(7));
    }

    #[tokio::test]
    async fn a_remote_read_goes_over_flight_compressed_while_the_file_stays_plain() {
        use std::sync::atomic::Ordering;

        use arrow_flight::flight_service_server::FlightServiceServer;

        use crate::ShuffleFlightService;

        let dir = tempfile::tempdir().unwrap();
        let layout = ShuffleLayout::new(dir.path().join("shuffle"));
        layout.claim().unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        let ids = (JobId(1), StageId(1), MapPartition(0));
        let mut w = ShuffleWriter::new(layout.clone(), ids, schema.clone(), 1).unwrap();
        // 100,000 repetitive values: 800 kB plain, far less under LZ4.
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from_iter_values(
                (0..100_000).map(|i| i % 7),
            ))],
        )
        .unwrap();
        w.append(0, &batch).unwrap();
        let written = w.finish().unwrap();
        assert!(written[0].bytes > 800_000, "stored plain: {written:?}");

        let service = ShuffleFlightService::new(layout.clone(), "t".into());
        let served = service.served_bytes();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(FlightServiceServer::new(service))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        // The client has no local files and another token: it must use the network.
        let mut at = location(layout.root(), "not-the-token");
        at.address = address;
        let got: Vec<RecordBatch> = ShuffleFetcher::remote("t".into())
            .fetch((JobId(1), StageId(1)), &at, 0)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        server.abort();
        assert_eq!(got.iter().map(|b| b.num_rows()).sum::<usize>(), 100_000);
        assert_eq!(
            arrow::compute::concat_batches(&got[0].schema(), &got).unwrap(),
            batch
        );
        let sent = served.load(Ordering::Relaxed);
        assert!(
            sent > 0 && sent < written[0].bytes / 4,
            "{sent} bytes on the wire for a {} byte file",
            written[0].bytes
        );
    }
}
