//! Driver replication with openraft 0.9: the replicated log of [`Command`]s, kept
//! on disk, the state machine that applies them, and Raft's traffic over tonic.

mod log_store;
mod network;
mod replica;
mod service;
mod state_machine;

use std::io::Cursor;

use serde::{Deserialize, Serialize};

pub use log_store::DiskLogStore;
#[cfg(feature = "link-cuts")]
pub use network::LinkCuts;
pub use network::PeerNetwork;
pub use replica::{Replica, ReplicaOptions, LEADER_HEADER};
pub use service::{ReplicationService, CLUSTER_HEADER};
pub use state_machine::DiskStateMachine;

use crate::{Command, Refusal};

/// A driver replica's Raft id.
pub type NodeId = u64;

/// What applying one log entry did: for each command in it, why it was refused
/// (`None` when it was applied), typed as on a lone driver.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied(pub Vec<Option<Refusal>>);

openraft::declare_raft_types!(
    /// openraft's types for the driver: the log carries [`Command`]s and nodes are
    /// known by their gRPC address.
    pub DriverRaft:
        D = Command,
        R = Applied,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<DriverRaft>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A running Raft node of the driver.
pub type RaftHandle = openraft::Raft<DriverRaft>;
pub type StorageError = openraft::StorageError<NodeId>;
