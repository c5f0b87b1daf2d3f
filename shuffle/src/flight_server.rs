//! The Arrow Flight service a worker runs to serve its shuffle files to others.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::ipc::writer::IpcWriteOptions;
use arrow::ipc::CompressionType;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use futures::stream::{self, Stream};
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use regatta_common::{JobId, MapPartition, StageId};
use regatta_proto::{ShuffleTicket, TokenCheck};
use tonic::{Request, Response, Status, Streaming};

use crate::{open_map_output, ShuffleLayout};

/// Batches a Flight response reads ahead of the network.
const SEND_AHEAD: usize = 2;

/// `reader`'s batches, read on a blocking thread a little ahead of the consumer.
fn blocking_batches(
    reader: arrow::ipc::reader::FileReader<std::io::BufReader<std::fs::File>>,
    path: std::path::PathBuf,
) -> futures::stream::BoxStream<'static, Result<arrow::record_batch::RecordBatch, FlightError>> {
    let (tx, rx) = tokio::sync::mpsc::channel(SEND_AHEAD);
    // Ends at the file's end or when the client goes (the send fails).
    tokio::task::spawn_blocking(move || {
        for batch in reader {
            let item = batch.map_err(|e| {
                FlightError::ExternalError(format!("shuffle file {}: {e}", path.display()).into())
            });
            if tx.blocking_send(item).is_err() {
                return;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx).boxed()
}

type BoxedStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Serves `do_get(ShuffleTicket)` from one spill directory; every other Flight call
/// is refused. Callers must present the cluster token.
#[derive(Debug, Clone)]
pub struct ShuffleFlightService {
    layout: ShuffleLayout,
    token: TokenCheck,
    served: Arc<AtomicU64>,
}

impl ShuffleFlightService {
    pub fn new(layout: ShuffleLayout, token: String) -> Self {
        Self {
            layout,
            token: TokenCheck::new(&token),
            served: Arc::default(),
        }
    }

    /// Bytes of Flight data it has sent, over its life (shared: read it while
    /// the service runs).
    pub fn served_bytes(&self) -> Arc<AtomicU64> {
        self.served.clone()
    }
}

fn refused<T>(what: &str) -> Result<T, Status> {
    Err(Status::unimplemented(format!(
        "{what} is not offered: this Flight server only serves shuffle data via do_get"
    )))
}

#[tonic::async_trait]
impl FlightService for ShuffleFlightService {
    type HandshakeStream = BoxedStream<HandshakeResponse>;
    type ListFlightsStream = BoxedStream<FlightInfo>;
    type DoGetStream = BoxedStream<FlightData>;
    type DoPutStream = BoxedStream<PutResult>;
    type DoActionStream = BoxedStream<arrow_flight::Result>;
    type ListActionsStream = BoxedStream<ActionType>;
    type DoExchangeStream = BoxedStream<FlightData>;

    async fn handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        refused("handshake")
    }

    async fn list_flights(
        &self,
        _request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        refused("list_flights")
    }

    async fn get_flight_info(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        refused("get_flight_info")
    }

    async fn poll_flight_info(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        refused("poll_flight_info")
    }

    async fn get_schema(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        refused("get_schema")
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        self.token.verify(request.metadata())?;
        let ticket = ShuffleTicket::decode(request.into_inner().ticket)
            .map_err(|e| Status::invalid_argument(format!("bad shuffle ticket: {e}")))?;
        let layout = self.layout.clone();
        let ids = (
            JobId(ticket.job_id),
            StageId(u64::from(ticket.stage_id)),
            MapPartition(u64::from(ticket.map_partition)),
        );
        let partition = ticket.partition;
        // Opened here so a missing job or a damaged file is refused at once;
        // then sent batch by batch as the file is read, never loaded whole.
        let path = layout.file(ids.0, ids.1, partition, ids.2);
        let reader = tokio::task::spawn_blocking(move || open_map_output(&layout, ids, partition))
            .await
            .map_err(|e| Status::internal(format!("shuffle read task: {e}")))?
            .map_err(|e| Status::not_found(e.to_string()))?;
        let input = match reader {
            None => stream::empty().boxed(),
            Some(reader) => blocking_batches(reader, path),
        };
        let served = self.served.clone();
        // Files are stored uncompressed for same-machine readers; what crosses
        // the network is LZ4-compressed, which the client's decoder undoes.
        let options = IpcWriteOptions::default()
            .try_with_compression(Some(CompressionType::LZ4_FRAME))
            .map_err(|e| Status::internal(format!("shuffle compression: {e}")))?;
        let out = FlightDataEncoderBuilder::new()
            .with_options(options)
            .build(input)
            .map_ok(move |d| {
                let n = d.data_body.len() + d.data_header.len();
                served.fetch_add(n as u64, Ordering::Relaxed);
                d
            })
            .map_err(|e| Status::internal(e.to_string()));
        Ok(Response::new(out.boxed()))
    }

    async fn do_put(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        refused("do_put")
    }

    async fn do_action(
        &self,
        _request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        refused("do_action")
    }

    async fn list_actions(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        refused("list_actions")
    }

    async fn do_exchange(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        refused("do_exchange")
    }
}
