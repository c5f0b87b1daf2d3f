//! [`Consensus`]: how commands reach the driver state: applied at once on a
//! lone driver, committed through Raft on a replicated one. Both refuse a
//! command with the same typed [`Refusal`](crate::Refusal), so a client sees
//! one gRPC status whichever driver it talks to.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tonic::Status;

use crate::raft::Replica;
use crate::{Command, DriverState, Refusal, Result, SchedulerError, SharedState};

/// How long a replicated command may wait for a quorum.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a worker call waits for a new leader to apply its predecessors' log.
const TAKE_UP_WAIT: Duration = Duration::from_secs(5);

pub struct Consensus {
    shared: Arc<SharedState>,
    /// The Raft replica; none on a lone driver.
    replica: Option<Replica>,
    /// The term this replica leads in and has taken up (applied every command
    /// of earlier terms); 0 while it does not lead. Set by the leadership loop.
    taken_up: watch::Sender<u64>,
}

impl Consensus {
    /// A lone driver's: `shared` changes as commands are applied.
    pub fn lone(shared: Arc<SharedState>) -> Self {
        Self {
            shared,
            replica: None,
            taken_up: watch::Sender::new(0),
        }
    }

    /// A replica's: `shared` is the state `replica` applies commits to.
    pub fn replicated(shared: Arc<SharedState>, replica: Replica) -> Self {
        Self {
            shared,
            replica: Some(replica),
            taken_up: watch::Sender::new(0),
        }
    }

    /// The Raft replica, when replicated.
    pub fn replica(&self) -> Option<&Replica> {
        self.replica.as_ref()
    }

    /// The state the commands change.
    pub fn state(&self) -> &SharedState {
        &self.shared
    }

    /// True when this driver may schedule (always, for a lone one).
    pub fn is_leader(&self) -> bool {
        self.replica.as_ref().is_none_or(Replica::is_leader)
    }

    /// The leader's term (0 for a lone driver); orders carry it.
    pub fn term(&self) -> u64 {
        self.replica.as_ref().map_or(0, Replica::term)
    }

    /// Refuses a call on a replica that does not lead, naming the leader.
    pub fn require_leader(&self) -> std::result::Result<(), Status> {
        match &self.replica {
            Some(r) => r.require_leader(),
            None => Ok(()),
        }
    }

    /// The term this replica has taken up (0: none).
    pub fn taken_up_term(&self) -> u64 {
        *self.taken_up.borrow()
    }

    /// Records that this replica took up `term` (0: it no longer leads).
    pub fn set_taken_up(&self, term: u64) {
        self.taken_up.send_replace(term);
    }

    /// Waits until this replica has taken up the leadership of its term, that
    /// is applied every command of earlier terms, so that a returning worker or
    /// a task report is reconciled against the whole state, not a stale one (a
    /// report or an adoption checked too early is lost and its task hangs). A
    /// lone driver has nothing to wait for; a follower fails at once.
    pub async fn taken_up(&self) -> Result<()> {
        let Some(replica) = &self.replica else {
            return Ok(());
        };
        let not_leader = || SchedulerError::NotLeader {
            leader: replica.leader_address(),
        };
        let term = replica.term();
        if !replica.is_leader() || term == 0 {
            return Err(not_leader());
        }
        let mut taken_up = self.taken_up.subscribe();
        // The guard `wait_for` returns borrows the receiver: keep only whether it came.
        let came = tokio::time::timeout(TAKE_UP_WAIT, taken_up.wait_for(|t| *t == term))
            .await
            .is_ok_and(|r| r.is_ok());
        if came && replica.is_leader() {
            Ok(())
        } else {
            Err(not_leader())
        }
    }

    /// Applies `cmd` (through Raft when replicated); for each command in it, why
    /// it was refused, `None` where it was applied.
    pub async fn propose(&self, cmd: Command) -> Result<Vec<Option<Refusal>>> {
        match &self.replica {
            None => Ok(self.shared.apply_all(&cmd)),
            Some(r) => Ok(r.commit(cmd, COMMIT_TIMEOUT).await?.0),
        }
    }

    /// Applies one command; a refusal is an error, of the same variant on a
    /// lone driver and a replicated one.
    pub async fn apply(&self, cmd: Command) -> Result<()> {
        match self.propose(cmd).await?.into_iter().flatten().next() {
            Some(refused) => Err(refused.into()),
            None => Ok(()),
        }
    }

    /// Reads the state.
    pub fn read<R>(&self, f: impl FnOnce(&DriverState) -> R) -> R {
        self.shared.read(f)
    }
}
