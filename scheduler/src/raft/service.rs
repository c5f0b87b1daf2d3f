//! [`ReplicationService`]: the gRPC side of a driver replica: Raft's messages
//! from peers, the cluster check a starting peer makes, and membership admin.

use std::time::Duration;

use openraft::error::{ClientWriteError, InstallSnapshotError, RaftError};
use openraft::BasicNode;
use regatta_proto::driver_replication_server::DriverReplication;
use regatta_proto::{
    AddDriverRequest, DriverInfo, HelloRequest, HelloResponse, ListDriversRequest,
    ListDriversResponse, RaftMessage, RemoveDriverRequest,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

use super::replica::unavailable_naming;
use super::{NodeId, Replica};

/// Serves one replica's peers and admins.
#[derive(Clone)]
pub struct ReplicationService {
    replica: Replica,
}

impl ReplicationService {
    pub fn new(replica: Replica) -> Self {
        Self { replica }
    }
}

/// The metadata key on Raft messages naming the sender's cluster.
pub const CLUSTER_HEADER: &str = "regatta-cluster";

impl ReplicationService {
    /// Refuses Raft messages from a replica of another cluster.
    fn same_cluster(&self, request: &Request<RaftMessage>) -> Result<(), Status> {
        let theirs = request
            .metadata()
            .get(CLUSTER_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mine = &self.replica.options().cluster_id;
        if theirs != mine {
            return Err(Status::failed_precondition(format!(
                "driver {} belongs to cluster '{mine}', not '{theirs}'",
                self.replica.id()
            )));
        }
        Ok(())
    }
}

fn decode<T: DeserializeOwned>(msg: RaftMessage, what: &str) -> Result<T, Status> {
    bincode::deserialize(&msg.payload)
        .map_err(|e| Status::invalid_argument(format!("malformed Raft {what} message: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Response<RaftMessage>, Status> {
    let payload = bincode::serialize(value)
        .map_err(|e| Status::internal(format!("encoding a Raft reply: {e}")))?;
    Ok(Response::new(RaftMessage { payload }))
}

#[tonic::async_trait]
impl DriverReplication for ReplicationService {
    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.same_cluster(&request)?;
        let req = decode(request.into_inner(), "append-entries")?;
        let reply: Result<_, RaftError<NodeId>> = self.replica.raft().append_entries(req).await;
        encode(&reply)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.same_cluster(&request)?;
        let req = decode(request.into_inner(), "vote")?;
        let reply: Result<_, RaftError<NodeId>> = self.replica.raft().vote(req).await;
        encode(&reply)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.same_cluster(&request)?;
        let req = decode(request.into_inner(), "install-snapshot")?;
        let reply: Result<_, RaftError<NodeId, InstallSnapshotError>> =
            self.replica.raft().install_snapshot(req).await;
        encode(&reply)
    }

    async fn hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloResponse>, Status> {
        let h = request.into_inner();
        let mine = &self.replica.options().cluster_id;
        if &h.cluster_id != mine {
            return Err(Status::failed_precondition(format!(
                "driver {} at {} belongs to cluster '{}', not '{}': check cluster.id on both",
                self.replica.id(),
                self.replica.options().address,
                mine,
                h.cluster_id
            )));
        }
        Ok(Response::new(HelloResponse {
            cluster_id: mine.clone(),
            node_id: self.replica.id(),
            me: Some(self.replica.info()),
        }))
    }

    async fn list_drivers(
        &self,
        _request: Request<ListDriversRequest>,
    ) -> Result<Response<ListDriversResponse>, Status> {
        Ok(Response::new(self.replica.list_drivers().await))
    }

    async fn add_driver(
        &self,
        request: Request<AddDriverRequest>,
    ) -> Result<Response<ListDriversResponse>, Status> {
        let r = request.into_inner();
        if r.node_id == 0 || r.address.is_empty() {
            return Err(Status::invalid_argument(
                "add driver: give a node id above 0 and its address",
            ));
        }
        self.replica.require_leader()?;
        let raft = self.replica.raft();
        // A learner first, so it catches up before it counts toward a quorum.
        tokio::time::timeout(
            Duration::from_secs(30),
            raft.add_learner(r.node_id, BasicNode::new(&r.address), true),
        )
        .await
        .map_err(|_| {
            Status::deadline_exceeded(format!(
                "driver {} at {} did not catch up within 30 s: is it running?",
                r.node_id, r.address
            ))
        })?
        .map_err(|e| membership_error(&format!("add driver {}", r.node_id), e))?;
        let mut voters: std::collections::BTreeSet<NodeId> = self.replica.voters();
        voters.insert(r.node_id);
        raft.change_membership(voters, false)
            .await
            .map_err(|e| membership_error(&format!("add driver {}", r.node_id), e))?;
        Ok(Response::new(self.replica.list_drivers().await))
    }

    async fn remove_driver(
        &self,
        request: Request<RemoveDriverRequest>,
    ) -> Result<Response<ListDriversResponse>, Status> {
        let id = request.into_inner().node_id;
        self.replica.require_leader()?;
        let mut voters = self.replica.voters();
        if !voters.remove(&id) {
            return Err(Status::not_found(format!("driver {id} is not a member")));
        }
        if voters.is_empty() {
            return Err(Status::failed_precondition("cannot remove the last driver"));
        }
        self.replica
            .raft()
            .change_membership(voters, false)
            .await
            .map_err(|e| membership_error(&format!("remove driver {id}"), e))?;
        Ok(Response::new(self.replica.list_drivers().await))
    }
}

/// A failed membership change as gRPC: leadership moved (or an election is on)
/// is `Unavailable`, naming the leader when known, so clients retry it there.
fn membership_error(
    action: &str,
    e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>,
) -> Status {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => unavailable_naming(
            format!("{action}: this driver stopped leading; retry on the leader"),
            f.leader_node.map(|n| n.addr),
        ),
        e => Status::failed_precondition(format!("{action}: {e}")),
    }
}

/// The info of a replica that did not answer.
pub fn unreachable(node_id: NodeId, address: &str) -> DriverInfo {
    DriverInfo {
        node_id,
        address: address.to_string(),
        role: regatta_proto::DriverRole::Unreachable as i32,
        ..DriverInfo::default()
    }
}
