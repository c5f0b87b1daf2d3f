//! openraft's storage conformance suite against the driver's on-disk log and
//! state machine, plus what the suite does not cover: surviving a restart and a
//! torn write.

// Test scaffolding: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

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

#[tokio::test]
async fn a_damaged_record_with_more_after_it_stops_the_open_and_cuts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = DiskLogStore::open(dir.path()).unwrap();
        append(&mut log, (1..=3).map(|i| joined(i, i)).collect()).await;
    }
    // One flipped bit in the first record's payload (header 8 + record head 12).
    let path = dir.path().join("raft.log");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8 + 12 + 3] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let err = DiskLogStore::open(dir.path())
        .err()
        .expect("a damaged log opened");
    let msg = err.to_string();
    assert!(
        msg.contains("raft.log") && msg.contains("byte 8") && msg.contains("corrupt"),
        "{msg}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "the log was changed");
}

#[tokio::test]
async fn a_log_of_another_format_is_refused_naming_it_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft.log");
    // A log from before the header: a bare record.
    std::fs::write(&path, [4, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 9]).unwrap();
    let msg = DiskLogStore::open(dir.path())
        .err()
        .expect("opened")
        .to_string();
    assert!(
        msg.contains("no regatta log header") && msg.contains("log format 04"),
        "{msg}"
    );
    // A log of another format (the one before results left the log).
    std::fs::write(&path, b"rgtlog02").unwrap();
    let msg = DiskLogStore::open(dir.path())
        .err()
        .expect("opened")
        .to_string();
    assert!(msg.contains("log format 02"), "{msg}");
    assert_eq!(std::fs::read(&path).unwrap(), b"rgtlog02");
}

#[tokio::test]
async fn a_whole_record_that_does_not_decode_stops_the_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = DiskLogStore::open(dir.path()).unwrap();
        append(&mut log, vec![joined(1, 1)]).await;
    }
    // A record with a good checksum whose payload is no Record (another version's).
    let path = dir.path().join("raft.log");
    let mut bytes = std::fs::read(&path).unwrap();
    let payload = [0xff_u8; 8];
    let sum = payload.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    let at = bytes.len();
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&sum.to_le_bytes());
    bytes.extend_from_slice(&payload);
    std::fs::write(&path, &bytes).unwrap();
    let msg = DiskLogStore::open(dir.path())
        .err()
        .expect("opened")
        .to_string();
    assert!(
        msg.contains(&format!("byte {at}")) && msg.contains("does not decode"),
        "{msg}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "the log was changed");
}
