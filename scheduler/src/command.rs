//! The commands that change driver state. Everything the driver decides or learns
//! becomes one of these first, so replaying them rebuilds the state exactly.

use regatta_common::{
    FileFormat, JobId, OperatorSummary, RequestId, Resources, StageId, WorkerId, WriteMode,
};
use regatta_engine::{RowErrorPolicy, RowFailureCounts};
use serde::{Deserialize, Serialize};

use crate::FailureClass;

/// One task: a stage's work on one input partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskKey {
    pub job: JobId,
    pub stage: StageId,
    pub partition: u32,
}

impl std::fmt::Display for TaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/partition-{}",
            self.job, self.stage, self.partition
        )
    }
}

/// A stage as planned: its tasks, the stages it reads and its serialized plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageSpec {
    pub stage: StageId,
    pub tasks: u32,
    pub inputs: Vec<StageId>,
    /// Partitions of its output, as the next stage reads them.
    pub output_partitions: u32,
    /// What one task asks of a worker.
    pub demand: Resources,
    /// datafusion-proto bytes of the stage's plan (a ShuffleWriteExec root).
    pub plan: Vec<u8>,
    /// What each task reads, when the stage scans files (its file group), so a
    /// task that fails for good is named by its input; empty otherwise.
    #[serde(default)]
    pub task_inputs: Vec<String>,
}

/// A worker as it registered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerSpec {
    /// Its Arrow Flight shuffle server, `host:port`.
    pub address: String,
    pub host: String,
    pub resources: Resources,
    /// Where a launcher started it, e.g. `ray:<node id>`; empty when self-hosted.
    #[serde(default)]
    pub node_label: String,
    /// Its GPUs' physical ids, by ordinal.
    #[serde(default)]
    pub gpu_ids: Vec<String>,
    /// Its shuffle directory and the token written there (direct reads on the
    /// same machine); empty when it offers none.
    #[serde(default)]
    pub shuffle_root: String,
    #[serde(default)]
    pub shuffle_token: String,
    /// Its Prometheus endpoint, `host:port`; empty when it serves none.
    #[serde(default)]
    pub metrics_address: String,
    /// [`regatta_proto::worker_secret_digest`] of the credential it got when it
    /// joined: replicated, so every replica checks the worker's calls, and a
    /// new leader refuses forged ones before the worker has found it. Empty in
    /// a record written before credentials were replicated (not checked).
    #[serde(default)]
    pub credential_digest: String,
}

/// What one task wrote to one output partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputStats {
    pub partition: u32,
    pub rows: u64,
    pub bytes: u64,
}

/// Where a job writes its result: its last stage's tasks write staged parts,
/// and the leader commits them once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOutput {
    /// A file or directory (Parquet, CSV, JSON) or a Lance dataset.
    pub path: String,
    pub format: FileFormat,
    pub mode: OutputMode,
    /// The rows' schema as an Arrow IPC stream with no batches (the commit of
    /// a new Lance dataset needs it).
    pub schema_ipc: Vec<u8>,
    /// Set for a resumable job (`--resume-key`): the key column its rerun
    /// skips the rows of, and each finished task's part is committed as soon
    /// as it is reported, so a cluster lost mid-job keeps what was done.
    #[serde(default)]
    pub resume_key: Option<String>,
}

/// The tag job `job`'s output is staged and committed under: its submission's
/// identity, which no other submission shares, so a commit never takes another
/// job's files (or Lance version) for its own, even after a lone driver
/// restarts its job numbers. A job replicated before every submission had an
/// identity keeps its number.
pub fn commit_tag(job: JobId, request_id: &RequestId) -> String {
    if request_id.is_empty() {
        job.to_string()
    } else {
        format!("req-{request_id}")
    }
}

impl OutputMode {
    /// How rows are written; None for a job that adds columns instead.
    pub fn write_mode(self) -> Option<WriteMode> {
        match self {
            Self::Create => Some(WriteMode::Create),
            Self::Append => Some(WriteMode::Append),
            Self::Overwrite => Some(WriteMode::Overwrite),
            Self::AddColumns => None,
        }
    }
}

/// What a job does to its output: a [`WriteMode`]'s write, or new columns
/// for a Lance dataset (the protocol's `WriteMode` as the Raft log records it,
/// kept flat so entries written before stay readable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputMode {
    Create,
    Append,
    Overwrite,
    /// The job's rows are new columns of an existing Lance dataset (appended
    /// last: earlier log entries keep their encoding).
    AddColumns,
}

/// One change to the driver's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// A job was accepted and planned; `stages` in dependency order, the last one
    /// produces the result.
    SubmitJob {
        job: JobId,
        name: String,
        stages: Vec<StageSpec>,
        /// Where the result goes; `None` keeps it with the driver for clients.
        output: Option<JobOutput>,
        /// The client's key for this submission (empty: none). A second
        /// SubmitJob with the same key is refused, so a submit retried across
        /// a leader change never starts the job twice.
        request_id: RequestId,
        /// The leader's clock when it accepted the job (Unix ms).
        #[serde(default)]
        submitted_unix_ms: u64,
        /// Where rows its functions give up on go, and how many may.
        #[serde(default)]
        row_errors: RowErrorPolicy,
    },
    /// A job failed for good (planning, or a task out of retries).
    FailJob {
        job: JobId,
        reason: String,
    },
    /// A client cancelled a job.
    CancelJob {
        job: JobId,
    },
    /// The job's result is in: its rows stay on the workers that made them
    /// (or were committed to the job's output); only their count is recorded.
    CompleteJob {
        job: JobId,
        rows: u64,
        /// The leader's clock when it completed (Unix ms), for retention.
        finished_unix_ms: u64,
    },
    /// A succeeded job's result partitions are dropped from its workers.
    ReleaseResults {
        job: JobId,
        why: crate::job_state::Released,
    },
    WorkerJoined {
        worker: WorkerId,
        spec: WorkerSpec,
    },
    WorkerLost {
        worker: WorkerId,
        reason: String,
    },
    TaskAssigned {
        task: TaskKey,
        worker: WorkerId,
    },
    TaskFinished {
        task: TaskKey,
        worker: WorkerId,
        attempt: u32,
        outputs: Vec<OutputStats>,
        spilled_bytes: u64,
        /// What a write task staged (JSON), empty for other tasks.
        written: String,
        /// Its plan's operators and what each did.
        #[serde(default)]
        operators: Vec<OperatorSummary>,
        /// Rows its functions gave up on, of the rows they read.
        #[serde(default)]
        row_failures: RowFailureCounts,
    },
    TaskFailed {
        task: TaskKey,
        worker: WorkerId,
        attempt: u32,
        error: String,
        /// The worker whose shuffle output the task could not read, if that was why.
        lost_input: Option<WorkerId>,
        /// Why it failed: only retryable classes are tried again.
        #[serde(default)]
        class: FailureClass,
    },
    /// A task its worker does not know of (the order was lost with a leader), to
    /// be placed again without counting against it.
    TaskRequeued {
        task: TaskKey,
        worker: WorkerId,
        attempt: u32,
    },
    /// Several commands applied in order, each on its own (one log entry for a
    /// whole scheduling round).
    Batch(Vec<Command>),
}
