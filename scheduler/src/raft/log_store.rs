//! [`DiskLogStore`]: the Raft log, the vote and the commit index in one
//! append-only file, fsynced before anything is acknowledged.
//!
//! The file starts with a header naming its format; every change is a
//! checksummed record appended after it. On open the file is replayed; a torn
//! record at the end (a crash mid-write) is cut off, but a damaged record with
//! more after it, or one this build cannot decode, stops the open with an error:
//! cutting there would drop committed entries. When the log is purged behind a
//! snapshot and most of the file is dead, it is rewritten to a new file that
//! replaces the old one atomically.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, Entry, LogId, LogState, OptionalSend, RaftLogId, RaftLogReader, StorageIOError, Vote,
};
use serde::{Deserialize, Serialize};

use super::{DriverRaft, NodeId, StorageError};

const LOG_FILE: &str = "raft.log";
/// The first bytes of the file: a tag and the record format's version, bumped
/// whenever a [`Record`] (or a command inside one) changes its encoding.
const HEADER: &[u8; 8] = b"rgtlog04";
/// Rewrite the file once this many records are dead and they outnumber the live.
const COMPACT_AFTER: u64 = 4096;

#[derive(Serialize, Deserialize)]
enum Record {
    // Boxed: a command is far larger than the other records.
    Entry(Box<Entry<DriverRaft>>),
    /// Every entry from this index on was removed (a conflicting leader's).
    TruncateFrom(u64),
    Purge(LogId<NodeId>),
    Vote(Vote<NodeId>),
    Committed(Option<LogId<NodeId>>),
}

/// The on-disk log store; clones share it (the log reader is a clone).
#[derive(Clone)]
pub struct DiskLogStore {
    inner: Arc<Mutex<LogFile>>,
}

struct LogFile {
    dir: PathBuf,
    file: File,
    entries: BTreeMap<u64, Entry<DriverRaft>>,
    last_purged: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    /// Records in the file that no longer matter.
    dead: u64,
}

fn io_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_logs(AnyError::new(&e)).into()
}

/// FNV-1a: enough to tell a torn or garbled record from a whole one.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn encode(record: &Record) -> io::Result<Vec<u8>> {
    let payload = bincode::serialize(record).map_err(io::Error::other)?;
    let mut out = Vec::with_capacity(payload.len() + 12);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&checksum(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// The error for a file whose first bytes (`read` of them) are not [`HEADER`].
fn wrong_header(path: &Path, head: &[u8; 8], read: bool) -> io::Error {
    let found = if read && head.starts_with(b"rgtlog") {
        format!(
            "log format {}",
            String::from_utf8_lossy(&head[6..]).trim_matches(char::from(0))
        )
    } else {
        "no regatta log header (a log from a regatta before format 02, or not a log)".into()
    };
    io::Error::other(format!(
        "{}: {found}, but this regatta reads log format {}; start it on an empty \
         driver.data_dir (the replica then catches up from its peers) or run the \
         regatta that wrote it",
        path.display(),
        String::from_utf8_lossy(&HEADER[6..])
    ))
}

/// Checks the header and reads the whole records after it; returns them with
/// the length of the good prefix. A torn last record ends the read; a damaged
/// record with more after it, or a whole one that does not decode, is an error
/// naming its offset.
fn read_records(path: &Path) -> io::Result<(Vec<Record>, u64)> {
    let size = std::fs::metadata(path)?.len();
    let mut records = Vec::new();
    let mut good = HEADER.len() as u64;
    let mut r = BufReader::new(File::open(path)?);
    let mut head = [0u8; 8];
    let read = r.read_exact(&mut head).is_ok();
    if !read || &head != HEADER {
        return Err(wrong_header(path, &head, read));
    }
    loop {
        let mut head = [0u8; 12];
        if r.read_exact(&mut head).is_err() {
            break;
        }
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let sum = u64::from_le_bytes([
            head[4], head[5], head[6], head[7], head[8], head[9], head[10], head[11],
        ]);
        let end = good + 12 + len as u64;
        let mut payload = vec![0u8; len];
        if r.read_exact(&mut payload).is_err() {
            break;
        }
        if checksum(&payload) != sum {
            if end == size {
                break; // The last record, half written.
            }
            return Err(io::Error::other(format!(
                "{}: the record at byte {good} is damaged (bad checksum) and {} bytes \
                 follow it; the log is corrupt, not torn, so nothing is cut off",
                path.display(),
                size - end
            )));
        }
        match bincode::deserialize(&payload) {
            Ok(rec) => records.push(rec),
            Err(e) => {
                return Err(io::Error::other(format!(
                    "{}: the record at byte {good} is whole but does not decode ({e}); \
                     was it written by another regatta version?",
                    path.display()
                )))
            }
        }
        good = end;
    }
    Ok((records, good))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl LogFile {
    fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(LOG_FILE);
        let mut log = Self {
            dir: dir.to_path_buf(),
            file: OpenOptions::new().create(true).append(true).open(&path)?,
            entries: BTreeMap::new(),
            last_purged: None,
            vote: None,
            committed: None,
            dead: 0,
        };
        if log.file.metadata()?.len() == 0 {
            log.file.write_all(HEADER)?;
            log.file.sync_all()?;
        }
        let (records, good) = read_records(&path)?;
        if good < log.file.metadata()?.len() {
            log::warn!(
                "{}: cutting a torn record off the end at byte {good}",
                path.display()
            );
            log.file.set_len(good)?;
            log.file.sync_all()?;
        }
        for rec in records {
            log.replay(rec);
        }
        Ok(log)
    }

    fn replay(&mut self, rec: Record) {
        match rec {
            Record::Entry(e) => {
                if self.entries.insert(e.log_id.index, *e).is_some() {
                    self.dead += 1;
                }
            }
            Record::TruncateFrom(index) => {
                let gone = self.entries.split_off(&index);
                self.dead += gone.len() as u64 + 1;
            }
            Record::Purge(id) => {
                let keep = self.entries.split_off(&(id.index + 1));
                self.dead += self.entries.len() as u64 + 1;
                self.entries = keep;
                self.last_purged = Some(id);
            }
            Record::Vote(v) => {
                self.dead += u64::from(self.vote.is_some());
                self.vote = Some(v);
            }
            Record::Committed(c) => {
                self.dead += u64::from(self.committed.is_some());
                self.committed = c;
            }
        }
    }

    /// Appends records; `sync` makes them durable before returning.
    fn write(&mut self, records: Vec<Record>, sync: bool) -> io::Result<()> {
        let mut buf = Vec::new();
        for r in &records {
            buf.extend(encode(r)?);
        }
        self.file.write_all(&buf)?;
        if sync {
            self.file.sync_data()?;
        }
        for r in records {
            self.replay(r);
        }
        Ok(())
    }

    /// Rewrites the file with only what is live, once enough of it is dead.
    fn compact_if_worth_it(&mut self) -> io::Result<()> {
        if self.dead < COMPACT_AFTER || self.dead < self.entries.len() as u64 {
            return Ok(());
        }
        let tmp = self.dir.join("raft.log.tmp");
        let mut out = File::create(&tmp)?;
        let mut head = HEADER.to_vec();
        if let Some(v) = self.vote {
            head.extend(encode(&Record::Vote(v))?);
        }
        head.extend(encode(&Record::Committed(self.committed))?);
        if let Some(p) = self.last_purged {
            head.extend(encode(&Record::Purge(p))?);
        }
        out.write_all(&head)?;
        for e in self.entries.values() {
            out.write_all(&encode(&Record::Entry(Box::new(e.clone())))?)?;
        }
        out.sync_all()?;
        std::fs::rename(&tmp, self.dir.join(LOG_FILE))?;
        sync_dir(&self.dir)?;
        self.file = OpenOptions::new()
            .append(true)
            .open(self.dir.join(LOG_FILE))?;
        self.dead = 0;
        Ok(())
    }
}

impl DiskLogStore {
    /// Opens (or creates) the log under `dir`.
    pub fn open(dir: &Path) -> io::Result<Self> {
        Ok(Self {
            inner: Arc::new(Mutex::new(LogFile::open(dir)?)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, LogFile> {
        // Records are applied whole, so a poisoned lock still holds a consistent log.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The last log index held, for `regatta drivers`.
    pub fn last_index(&self) -> u64 {
        let log = self.lock();
        log.entries
            .keys()
            .next_back()
            .copied()
            .or(log.last_purged.map(|p| p.index))
            .unwrap_or(0)
    }
}

impl RaftLogReader<DriverRaft> for DiskLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<DriverRaft>>, StorageError> {
        Ok(self
            .lock()
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<DriverRaft> for DiskLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<DriverRaft>, StorageError> {
        let log = self.lock();
        let last = log
            .entries
            .values()
            .next_back()
            .map(|e| *e.get_log_id())
            .or(log.last_purged);
        Ok(LogState {
            last_purged_log_id: log.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        self.lock()
            .write(vec![Record::Vote(*vote)], true)
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        Ok(self.lock().vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError> {
        // Not fsynced: a lost commit index is only a hint, learned again from peers.
        self.lock()
            .write(vec![Record::Committed(committed)], false)
            .map_err(io_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError> {
        Ok(self.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<DriverRaft>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<DriverRaft>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let records = entries
            .into_iter()
            .map(|e| Record::Entry(Box::new(e)))
            .collect();
        let written = self.lock().write(records, true);
        match written {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let msg = e.to_string();
                callback.log_io_completed(Err(e));
                Err(io_err(io::Error::other(msg)))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        self.lock()
            .write(vec![Record::TruncateFrom(log_id.index)], true)
            .map_err(io_err)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        let mut log = self.lock();
        log.write(vec![Record::Purge(log_id)], true)
            .map_err(io_err)?;
        log.compact_if_worth_it().map_err(io_err)
    }
}
