//! [`Replica`]: one driver's Raft node: its on-disk log and state machine, its
//! peers, and what the driver asks of it (am I leader, in which term, commit this).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Config, ServerState, SnapshotPolicy};
use regatta_proto::{DriverInfo, DriverRole, HelloRequest, ListDriversResponse};
use tonic::transport::ClientTlsConfig;
use tonic::Status;

#[cfg(feature = "link-cuts")]
use super::network::LinkCuts;
use super::service::unreachable;
use super::{Applied, DiskLogStore, DiskStateMachine, NodeId, PeerNetwork, RaftHandle};
use crate::shared_state::SharedState;
use crate::{Command, Result, SchedulerError};

/// The metadata key on a redirect that names the leader's address.
pub use regatta_proto::LEADER_HEADER;

/// How a replica runs.
#[derive(Debug, Clone)]
pub struct ReplicaOptions {
    pub node_id: NodeId,
    /// The address peers, workers and clients reach this replica at.
    pub address: String,
    /// The first members, this one included; empty for a replica that waits to
    /// be added to a running cluster.
    pub members: BTreeMap<NodeId, String>,
    /// Where the log and snapshots live.
    pub data_dir: PathBuf,
    /// Replicas of another cluster are refused.
    pub cluster_id: String,
    pub token: String,
    pub tls: Option<ClientTlsConfig>,
    /// Raft's heartbeat; elections time out after 5 to 10 of them.
    pub heartbeat: Duration,
    /// Cut links, for partition tests.
    #[cfg(feature = "link-cuts")]
    pub cuts: Arc<LinkCuts>,
}

/// A running replica; clones share it.
#[derive(Clone)]
pub struct Replica {
    inner: Arc<Inner>,
}

struct Inner {
    raft: RaftHandle,
    log: DiskLogStore,
    sm: DiskStateMachine,
    network: PeerNetwork,
    options: ReplicaOptions,
    /// (term, unix ms) of this replica's first task placement as leader.
    first_placement: std::sync::Mutex<(u64, u64)>,
}

fn storage(dir: &std::path::Path, e: impl std::fmt::Display) -> SchedulerError {
    SchedulerError::Storage {
        path: dir.display().to_string(),
        message: e.to_string(),
    }
}

impl Replica {
    /// Opens the replica's storage under `options.data_dir` (restoring `shared`
    /// from it) and starts its Raft node.
    pub async fn start(options: ReplicaOptions, shared: Arc<SharedState>) -> Result<Self> {
        let dir = options.data_dir.clone();
        let log = DiskLogStore::open(&dir).map_err(|e| storage(&dir, e))?;
        let sm = DiskStateMachine::open(&dir, shared).map_err(|e| storage(&dir, e))?;
        let beat = options.heartbeat.as_millis().max(10) as u64;
        let config = Config {
            cluster_name: options.cluster_id.clone(),
            heartbeat_interval: beat,
            election_timeout_min: beat * 5,
            election_timeout_max: beat * 10,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(2000),
            max_in_snapshot_log_to_keep: 500,
            purge_batch_size: 256,
            ..Config::default()
        }
        .validate()
        .map_err(|e| SchedulerError::Replication(e.to_string()))?;
        let network = PeerNetwork::new(
            options.node_id,
            &options.cluster_id,
            &options.token,
            options.tls.clone(),
            #[cfg(feature = "link-cuts")]
            options.cuts.clone(),
        );
        let raft = openraft::Raft::new(
            options.node_id,
            Arc::new(config),
            network.clone(),
            log.clone(),
            sm.clone(),
        )
        .await
        .map_err(|e| SchedulerError::Replication(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                raft,
                log,
                sm,
                network,
                options,
                first_placement: std::sync::Mutex::new((0, 0)),
            }),
        })
    }

    pub fn raft(&self) -> &RaftHandle {
        &self.inner.raft
    }

    pub fn id(&self) -> NodeId {
        self.inner.options.node_id
    }

    pub fn options(&self) -> &ReplicaOptions {
        &self.inner.options
    }

    /// Asks every other first member whether it is of this cluster. A peer that
    /// refuses (another cluster id, another token) stops this replica from
    /// starting; one that does not answer yet is fine.
    pub async fn check_peers(&self) -> Result<()> {
        let o = &self.inner.options;
        for (id, address) in o.members.iter().filter(|(id, _)| **id != o.node_id) {
            let mut client = self
                .inner
                .network
                .client(address)
                .map_err(SchedulerError::Refused)?;
            let hello = HelloRequest {
                cluster_id: o.cluster_id.clone(),
                node_id: o.node_id,
                address: o.address.clone(),
            };
            let answer = tokio::time::timeout(Duration::from_secs(2), client.hello(hello)).await;
            match answer {
                Ok(Ok(r)) if r.get_ref().node_id != *id => {
                    return Err(SchedulerError::Refused(format!(
                        "driver.addresses says driver {id} is at {address}, but driver {} answers there",
                        r.get_ref().node_id
                    )))
                }
                Ok(Ok(_)) => {}
                Ok(Err(s)) if s.code() == tonic::Code::Unauthenticated => {
                    return Err(SchedulerError::Refused(format!(
                        "driver {id} at {address} refused this driver's token: cluster.token must be the same on every driver ({})",
                        s.message()
                    )))
                }
                Ok(Err(s)) if s.code() == tonic::Code::FailedPrecondition => {
                    return Err(SchedulerError::Refused(s.message().to_string()))
                }
                Ok(Err(s)) => log::info!("driver {id} at {address} not ready yet: {}", s.message()),
                Err(_) => log::info!("driver {id} at {address} does not answer yet"),
            }
        }
        Ok(())
    }

    /// Makes the first members the cluster's membership, once, on a new replica.
    pub async fn initialize_if_new(&self) -> Result<()> {
        let o = &self.inner.options;
        if o.members.is_empty() {
            return Ok(());
        }
        let raft = &self.inner.raft;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| SchedulerError::Replication(e.to_string()))?;
        if initialized {
            return Ok(());
        }
        let members: BTreeMap<NodeId, BasicNode> = o
            .members
            .iter()
            .map(|(id, a)| (*id, BasicNode::new(a)))
            .collect();
        // Every first member does this with the same membership; the entry is the
        // same on each, so it does not matter who is first.
        if let Err(e) = raft.initialize(members).await {
            log::info!("driver {}: cluster already initialized: {e}", o.node_id);
        }
        Ok(())
    }

    /// True while this replica leads and a quorum has heard from it lately (a
    /// leader cut off from the majority stops acting as one).
    pub fn is_leader(&self) -> bool {
        // Generous: a loaded leader (big batches, slow fsyncs) hears back late, and
        // commits need a quorum anyway; this only makes a cut-off leader step
        // aside promptly.
        let window = (self.inner.options.heartbeat.as_millis() as u64 * 20).max(1000);
        self.holds_leadership()
            && self
                .inner
                .raft
                .metrics()
                .borrow()
                .millis_since_quorum_ack
                .is_some_and(|ms| ms < window)
    }

    /// True while Raft has this replica as leader, however long since a quorum
    /// answered (a deposed leader learns of the new term and stops being one).
    pub fn holds_leadership(&self) -> bool {
        let m = self.inner.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.id())
    }

    pub fn term(&self) -> u64 {
        self.inner.raft.metrics().borrow().current_term
    }

    /// The leader's address, if one is known.
    pub fn leader_address(&self) -> Option<String> {
        let m = self.inner.raft.metrics();
        let m = m.borrow();
        let leader = m.current_leader?;
        m.membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
    }

    /// A gRPC error for a call only the leader takes, naming the leader.
    pub fn require_leader(&self) -> std::result::Result<(), Status> {
        if self.is_leader() {
            return Ok(());
        }
        let leader = self
            .leader_address()
            .filter(|a| *a != self.inner.options.address);
        let err = SchedulerError::NotLeader {
            leader: leader.clone(),
        };
        Err(unavailable_naming(
            format!("driver {}: {err}", self.id()),
            leader,
        ))
    }

    /// Commits `cmd` through Raft and returns what applying it did.
    pub async fn commit(&self, cmd: Command, timeout: Duration) -> Result<Applied> {
        let written = tokio::time::timeout(timeout, self.inner.raft.client_write(cmd))
            .await
            .map_err(|_| {
                SchedulerError::Replication(format!(
                    "no quorum acknowledged the command within {timeout:?}"
                ))
            })?;
        match written {
            Ok(r) => Ok(r.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(SchedulerError::NotLeader {
                    leader: f.leader_node.map(|n| n.addr),
                })
            }
            Err(e) => Err(SchedulerError::Replication(e.to_string())),
        }
    }

    /// The voting members.
    pub fn voters(&self) -> BTreeSet<NodeId> {
        self.inner
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }

    /// Notes that this replica, leading in `term`, placed tasks; the first
    /// time per term is kept (what [`Self::info`] reports).
    pub fn placed_tasks_in(&self, term: u64) -> bool {
        let mut first = self
            .inner
            .first_placement
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if first.0 == term {
            return false;
        }
        *first = (term, crate::unix_ms_now());
        true
    }

    /// How this replica stands.
    pub fn info(&self) -> DriverInfo {
        let m = self.inner.raft.metrics();
        let m = m.borrow();
        let role = match m.state {
            ServerState::Leader => DriverRole::Leader,
            ServerState::Follower => DriverRole::Follower,
            ServerState::Candidate => DriverRole::Candidate,
            ServerState::Learner => DriverRole::Learner,
            ServerState::Shutdown => DriverRole::Shutdown,
        };
        let (placed_term, placed_ms) = *self
            .inner
            .first_placement
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        DriverInfo {
            node_id: self.id(),
            address: self.inner.options.address.clone(),
            role: role as i32,
            first_placement_unix_ms: if placed_term == m.current_term {
                placed_ms
            } else {
                0
            },
            term: m.current_term,
            last_log_index: self.inner.log.last_index(),
            applied_index: self.inner.sm.applied_index(),
            voter: m
                .membership_config
                .membership()
                .voter_ids()
                .any(|v| v == self.id()),
        }
    }

    /// Every member as it answers for itself (or as unreachable).
    pub async fn list_drivers(&self) -> ListDriversResponse {
        let (nodes, leader, voters) = {
            let m = self.inner.raft.metrics();
            let m = m.borrow();
            let nodes: Vec<(NodeId, String)> = m
                .membership_config
                .membership()
                .nodes()
                .map(|(id, n)| (*id, n.addr.clone()))
                .collect();
            let voters: BTreeSet<NodeId> = m.membership_config.membership().voter_ids().collect();
            (nodes, m.current_leader.unwrap_or(0), voters)
        };
        let mut drivers = Vec::new();
        for (id, address) in nodes {
            if id == self.id() {
                drivers.push(self.info());
                continue;
            }
            let hello = HelloRequest {
                cluster_id: self.inner.options.cluster_id.clone(),
                node_id: self.id(),
                address: self.inner.options.address.clone(),
            };
            let answer = match self.inner.network.client(&address) {
                Ok(mut c) => tokio::time::timeout(Duration::from_secs(1), c.hello(hello))
                    .await
                    .ok()
                    .and_then(|r| r.ok())
                    .and_then(|r| r.into_inner().me),
                Err(_) => None,
            };
            let mut info = answer.unwrap_or_else(|| unreachable(id, &address));
            info.voter = voters.contains(&id);
            drivers.push(info);
        }
        ListDriversResponse {
            drivers,
            leader_id: leader,
        }
    }
}

/// `Unavailable` with the leader's address (when known) in the header clients
/// follow, so they retry there.
pub(crate) fn unavailable_naming(message: String, leader: Option<String>) -> Status {
    let mut status = Status::unavailable(message);
    if let Some(v) = leader.and_then(|l| l.parse().ok()) {
        status.metadata_mut().insert(LEADER_HEADER, v);
    }
    status
}
