//! [`DiskStateMachine`]: applies committed [`Command`]s to the driver state and
//! keeps the latest snapshot of it on disk.
//!
//! The state itself lives in memory (the services read it); on restart it is the
//! last snapshot plus the log after it, which the log store kept.

use std::fs::File;
use std::io::{self, Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};

use super::{Applied, DriverRaft, NodeId, StorageError};
use crate::shared_state::SharedState;
use crate::DriverState;

const SNAPSHOT_FILE: &str = "snapshot.bin";

type Meta = SnapshotMeta<NodeId, openraft::BasicNode>;
type Membership = StoredMembership<NodeId, openraft::BasicNode>;

/// What a snapshot holds: the state and how far into the log it reaches.
#[derive(Serialize, Deserialize)]
struct SnapshotData {
    last_applied: Option<LogId<NodeId>>,
    membership: Membership,
    state: DriverState,
}

/// The snapshot file: its metadata and its bytes, as sent to peers.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: Meta,
    data: Vec<u8>,
}

/// The state machine; clones share it (the snapshot builder is a clone).
#[derive(Clone)]
pub struct DiskStateMachine {
    shared: Arc<SharedState>,
    inner: Arc<Mutex<Applying>>,
    dir: PathBuf,
}

#[derive(Default)]
struct Applying {
    last_applied: Option<LogId<NodeId>>,
    membership: Membership,
    current: Option<SnapshotFile>,
    built: u64,
}

fn sm_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_state_machine(AnyError::new(&e)).into()
}

fn snap_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_snapshot(None, AnyError::new(&e)).into()
}

fn save(dir: &Path, snap: &SnapshotFile) -> io::Result<()> {
    let bytes = bincode::serialize(snap).map_err(io::Error::other)?;
    let tmp = dir.join("snapshot.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(SNAPSHOT_FILE))?;
    File::open(dir)?.sync_all()
}

impl DiskStateMachine {
    /// Opens the state machine under `dir`, restoring its last snapshot into `shared`.
    pub fn open(dir: &Path, shared: Arc<SharedState>) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut applying = Applying::default();
        let path = dir.join(SNAPSHOT_FILE);
        if path.exists() {
            let bytes = std::fs::read(&path)?;
            let file: SnapshotFile = bincode::deserialize(&bytes).map_err(|e| {
                io::Error::other(format!(
                    "{}: not a snapshot this regatta can read ({e}); was it written by \
                     another regatta version?",
                    path.display()
                ))
            })?;
            let data: SnapshotData = bincode::deserialize(&file.data).map_err(|e| {
                io::Error::other(format!(
                    "{}: snapshot data this regatta cannot read ({e}); corrupt, or written \
                     by another regatta version?",
                    path.display()
                ))
            })?;
            shared.replace(data.state);
            applying.last_applied = data.last_applied;
            applying.membership = data.membership;
            applying.current = Some(file);
        }
        Ok(Self {
            shared,
            inner: Arc::new(Mutex::new(applying)),
            dir: dir.to_path_buf(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Applying> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The last log index applied, for `regatta drivers`.
    pub fn applied_index(&self) -> u64 {
        self.lock().last_applied.map_or(0, |l| l.index)
    }
}

impl RaftSnapshotBuilder<DriverRaft> for DiskStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<DriverRaft>, StorageError> {
        let (data, meta) = {
            let mut a = self.lock();
            a.built += 1;
            let data = SnapshotData {
                last_applied: a.last_applied,
                membership: a.membership.clone(),
                state: self.shared.read(Clone::clone),
            };
            let id = match a.last_applied {
                Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, a.built),
                None => format!("none-{}", a.built),
            };
            let meta = Meta {
                last_log_id: a.last_applied,
                last_membership: a.membership.clone(),
                snapshot_id: id,
            };
            (data, meta)
        };
        let bytes = bincode::serialize(&data).map_err(snap_err)?;
        let file = SnapshotFile {
            meta: meta.clone(),
            data: bytes.clone(),
        };
        save(&self.dir, &file).map_err(snap_err)?;
        self.lock().current = Some(file);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<DriverRaft> for DiskStateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId<NodeId>>, Membership), StorageError> {
        let a = self.lock();
        Ok((a.last_applied, a.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry<DriverRaft>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut out = Vec::new();
        let mut a = self.lock();
        for e in entries {
            a.last_applied = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => out.push(Applied::default()),
                EntryPayload::Normal(cmd) => out.push(Applied(self.shared.apply_all(&cmd))),
                EntryPayload::Membership(m) => {
                    a.membership = StoredMembership::new(Some(e.log_id), m);
                    out.push(Applied::default());
                }
            }
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let bytes = snapshot.into_inner();
        let data: SnapshotData = bincode::deserialize(&bytes).map_err(sm_err)?;
        let file = SnapshotFile {
            meta: meta.clone(),
            data: bytes,
        };
        save(&self.dir, &file).map_err(snap_err)?;
        self.shared.replace(data.state);
        let mut a = self.lock();
        a.last_applied = meta.last_log_id;
        a.membership = meta.last_membership.clone();
        a.current = Some(file);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<DriverRaft>>, StorageError> {
        Ok(self.lock().current.as_ref().map(|f| Snapshot {
            meta: f.meta.clone(),
            snapshot: Box::new(Cursor::new(f.data.clone())),
        }))
    }
}
