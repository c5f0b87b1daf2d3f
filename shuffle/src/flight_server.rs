//! The Arrow Flight service a worker runs to serve its shuffle files to others.

use std::pin::Pin;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use futures::stream::{self, Stream};
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use regatta_common::{JobId, StageId, TaskId};
use regatta_proto::{ShuffleTicket, TokenCheck};
use tonic::{Request, Response, Status, Streaming};

use crate::{read_map_output, ShuffleLayout};

type BoxedStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Serves `do_get(ShuffleTicket)` from one spill directory; every other Flight call
/// is refused. Callers must present the cluster token.
#[derive(Debug, Clone)]
pub struct ShuffleFlightService {
    layout: ShuffleLayout,
    token: TokenCheck,
}

impl ShuffleFlightService {
    pub fn new(layout: ShuffleLayout, token: String) -> Self {
        Self {
            layout,
            token: TokenCheck::new(&token),
        }
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
            TaskId(u64::from(ticket.map_partition)),
        );
        let partition = ticket.partition;
        let batches = tokio::task::spawn_blocking(move || read_map_output(&layout, ids, partition))
            .await
            .map_err(|e| Status::internal(format!("shuffle read task: {e}")))?
            .map_err(|e| Status::not_found(e.to_string()))?;
        let input = stream::iter(batches.into_iter().map(Ok));
        let out = FlightDataEncoderBuilder::new()
            .build(input)
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
