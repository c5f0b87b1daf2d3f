//! openraft's storage conformance suite against the driver's on-disk log and
//! state machine, plus what the suite does not cover: surviving a restart and a
//! torn write.

use std::sync::Arc;

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{Entry, EntryPayload, LogId, RaftLogReader, StorageError, Vote};
use regatta_common::{Resources, WorkerId};
use regatta_scheduler::raft::{DiskLogStore, DiskStateMachine, DriverRaft, NodeId};
use regatta_scheduler::{Command, DriverState, SharedState, WorkerSpec};

struct OnDisk;

impl StoreBuilder<DriverRaft, DiskLogStore, DiskStateMachine, tempfile::TempDir> for OnDisk {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, DiskLogStore, DiskStateMachine), StorageError<NodeId>> {
        let dir = tempfile::tempdir().map_err(|e| {
            StorageError::from(openraft::StorageIOError::<NodeId>::write(
                openraft::AnyError::new(&e),
            ))
        })?;
        let log = DiskLogStore::open(dir.path()).unwrap();
        let shared = Arc::new(SharedState::new(DriverState::default()));
        let sm = DiskStateMachine::open(dir.path(), shared).unwrap();
        Ok((dir, log, sm))
    }
}

#[test]
fn the_on_disk_store_passes_openraft_conformance() {
    Suite::test_all(OnDisk).unwrap();
}

fn joined(index: u64, worker: u64) -> Entry<DriverRaft> {
    Entry {
        log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Command::WorkerJoined {
            worker: WorkerId(worker),
            spec: WorkerSpec {
                address: format!("127.0.0.1:{}", 9000 + worker),
                host: "h".into(),
                resources: Resources {
                    cpus: 2.0,
                    gpus: 0.0,
                    memory: 1 << 30,
                },
                ..WorkerSpec::default()
            },
        }),
    }
}

async fn append(log: &mut DiskLogStore, entries: Vec<Entry<DriverRaft>>) {
    // The suite's helper flushes through a callback; here a blocking append is enough.
    use openraft::storage::RaftLogStorageExt;
    log.blocking_append(entries).await.unwrap();
}

#[tokio::test]
async fn log_vote_and_snapshot_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = DiskLogStore::open(dir.path()).unwrap();
        append(&mut log, (1..=5).map(|i| joined(i, i)).collect()).await;
        log.save_vote(&Vote::new(3, 2)).await.unwrap();
        log.truncate(LogId::new(openraft::CommittedLeaderId::new(1, 1), 5))
            .await
            .unwrap();
        let shared = Arc::new(SharedState::new(DriverState::default()));
        let mut sm = DiskStateMachine::open(dir.path(), shared.clone()).unwrap();
        sm.apply(vec![joined(1, 1), joined(2, 2)]).await.unwrap();
        use openraft::RaftSnapshotBuilder;
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        sm.apply(vec![joined(3, 3)]).await.unwrap();
    }
    let mut log = DiskLogStore::open(dir.path()).unwrap();
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(3, 2)));
    let entries = log.try_get_log_entries(0..100).await.unwrap();
    assert_eq!(
        entries.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
        vec![1, 2, 3, 4],
        "entry 5 was truncated"
    );
    // The state comes back as of the snapshot: two workers, applied up to 2.
    let shared = Arc::new(SharedState::new(DriverState::default()));
    let mut sm = DiskStateMachine::open(dir.path(), shared.clone()).unwrap();
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied.map(|l| l.index), Some(2));
    assert_eq!(shared.read(|s| s.workers().count()), 2);
}

#[tokio::test]
async fn a_torn_record_at_the_end_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = DiskLogStore::open(dir.path()).unwrap();
        append(&mut log, (1..=3).map(|i| joined(i, i)).collect()).await;
    }
    // A crash in the middle of writing a fourth record leaves half of it.
    let path = dir.path().join("raft.log");
    let mut bytes = std::fs::read(&path).unwrap();
    let whole = bytes.len();
    bytes.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&path, &bytes).unwrap();
    let mut log = DiskLogStore::open(dir.path()).unwrap();
    let entries = log.try_get_log_entries(0..100).await.unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, whole);
    // And appending after it works.
    append(&mut log, vec![joined(4, 4)]).await;
    drop(log);
    let mut log = DiskLogStore::open(dir.path()).unwrap();
    assert_eq!(log.try_get_log_entries(0..100).await.unwrap().len(), 4);
}
