//! [`PeerNetwork`]: Raft's messages to peer drivers over the DriverReplication
//! gRPC service, with the cluster token; built with the `link-cuts` feature
//! (partition tests only), a switch that cuts links.

#[cfg(feature = "link-cuts")]
use std::collections::BTreeSet;
#[cfg(feature = "link-cuts")]
use std::sync::{Arc, Mutex};

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use regatta_proto::driver_replication_client::DriverReplicationClient;
use regatta_proto::{AuthChannel, RaftMessage, TokenInterceptor};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::ClientTlsConfig;

use super::{DriverRaft, NodeId};

/// Links that are cut: messages between the two ends are dropped as if the
/// network were down (both directions are listed when a node is isolated).
/// A test hook: only in builds with the `link-cuts` feature.
#[cfg(feature = "link-cuts")]
#[derive(Debug, Default)]
pub struct LinkCuts {
    cut: Mutex<BTreeSet<(NodeId, NodeId)>>,
}

#[cfg(feature = "link-cuts")]
impl LinkCuts {
    /// Cuts `node` off from every node in `others`, both ways.
    pub fn isolate(&self, node: NodeId, others: &[NodeId]) {
        let mut cut = self.cut.lock().unwrap_or_else(|p| p.into_inner());
        for o in others {
            cut.insert((node, *o));
            cut.insert((*o, node));
        }
    }

    pub fn heal(&self) {
        self.cut.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.cut
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&(from, to))
    }
}

/// Makes a client per peer.
#[derive(Clone)]
pub struct PeerNetwork {
    me: NodeId,
    cluster: String,
    token: String,
    tls: Option<ClientTlsConfig>,
    #[cfg(feature = "link-cuts")]
    cuts: Arc<LinkCuts>,
}

impl PeerNetwork {
    pub fn new(
        me: NodeId,
        cluster: &str,
        token: &str,
        tls: Option<ClientTlsConfig>,
        #[cfg(feature = "link-cuts")] cuts: Arc<LinkCuts>,
    ) -> Self {
        Self {
            me,
            cluster: cluster.to_string(),
            token: token.to_string(),
            tls,
            #[cfg(feature = "link-cuts")]
            cuts,
        }
    }

    /// A lazily connecting client for `address`.
    pub fn client(&self, address: &str) -> Result<DriverReplicationClient<AuthChannel>, String> {
        let channel = regatta_proto::endpoint(address, self.tls.as_ref())?
            .connect_timeout(std::time::Duration::from_millis(500))
            .connect_lazy();
        Ok(
            DriverReplicationClient::with_interceptor(channel, TokenInterceptor::new(&self.token))
                .max_decoding_message_size(256 << 20)
                .max_encoding_message_size(256 << 20),
        )
    }
}

impl RaftNetworkFactory<DriverRaft> for PeerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        PeerClient {
            me: self.me,
            cluster: self.cluster.clone(),
            target,
            address: node.addr.clone(),
            client: self.client(&node.addr),
            #[cfg(feature = "link-cuts")]
            cuts: self.cuts.clone(),
        }
    }
}

/// Raft's connection to one peer.
pub struct PeerClient {
    me: NodeId,
    cluster: String,
    target: NodeId,
    address: String,
    client: Result<DriverReplicationClient<AuthChannel>, String>,
    #[cfg(feature = "link-cuts")]
    cuts: Arc<LinkCuts>,
}

#[derive(Debug, thiserror::Error)]
// Each replica's log names the peers it cannot reach; `from` says which
// replica's view it is when several logs are read together.
#[error("driver {node} at {address} (seen from driver {from}): {message}")]
struct PeerError {
    from: NodeId,
    node: NodeId,
    address: String,
    message: String,
}

enum Rpc {
    Append,
    Vote,
    Snapshot,
}

impl PeerClient {
    fn error(&self, message: impl Into<String>) -> PeerError {
        PeerError {
            from: self.me,
            node: self.target,
            address: self.address.clone(),
            message: message.into(),
        }
    }

    /// Sends one message; a cut link, a refused connection or a timeout is
    /// "unreachable" (Raft backs off), anything else a network error.
    async fn call<Req, Resp, E>(
        &mut self,
        rpc: Rpc,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        #[cfg(feature = "link-cuts")]
        if self.cuts.is_cut(self.me, self.target) {
            return Err(RPCError::Unreachable(Unreachable::new(
                &self.error("link cut"),
            )));
        }
        let payload = bincode::serialize(req)
            .map_err(|e| RPCError::Network(NetworkError::new(&self.error(e.to_string()))))?;
        let client = match &self.client {
            Ok(c) => c.clone(),
            Err(e) => {
                return Err(RPCError::Unreachable(Unreachable::new(
                    &self.error(e.clone()),
                )))
            }
        };
        let mut client = client;
        let mut msg = tonic::Request::new(RaftMessage { payload });
        if let Ok(v) = self.cluster.parse() {
            msg.metadata_mut().insert(super::CLUSTER_HEADER, v);
        }
        let sent = tokio::time::timeout(option.hard_ttl(), async move {
            match rpc {
                Rpc::Append => client.append_entries(msg).await,
                Rpc::Vote => client.vote(msg).await,
                Rpc::Snapshot => client.install_snapshot(msg).await,
            }
        })
        .await;
        let reply = match sent {
            Err(_) => {
                return Err(RPCError::Unreachable(Unreachable::new(
                    &self.error("timed out"),
                )))
            }
            Ok(Err(status)) => {
                let e = self.error(format!("{}: {}", status.code(), status.message()));
                return Err(match status.code() {
                    tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => {
                        RPCError::Unreachable(Unreachable::new(&e))
                    }
                    _ => RPCError::Network(NetworkError::new(&e)),
                });
            }
            Ok(Ok(r)) => r.into_inner(),
        };
        let result: Result<Resp, RaftError<NodeId, E>> = bincode::deserialize(&reply.payload)
            .map_err(|e| RPCError::Network(NetworkError::new(&self.error(e.to_string()))))?;
        result.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                BasicNode::new(&self.address),
                e,
            ))
        })
    }
}

impl RaftNetwork<DriverRaft> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<DriverRaft>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Rpc::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<DriverRaft>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(Rpc::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Rpc::Vote, &rpc, &option).await
    }
}
