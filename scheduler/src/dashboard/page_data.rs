//! The JSON the dashboard's page reads, as types: the one definition of the
//! shape `assets/app.js` renders (field names are the page's).

use serde::Serialize;

/// One push of `/api/events`: the overview, and the job the page follows
/// (`null` when it names none known yet; absent when the page follows none).
#[derive(Debug, Serialize)]
pub struct Update {
    pub overview: Overview,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<Option<JobDetail>>,
}

/// `/api/overview`: the replicas, every job (newest first) and every worker.
#[derive(Debug, Serialize)]
pub struct Overview {
    pub now_unix_ms: u64,
    pub drivers: Vec<DriverRow>,
    pub jobs: Vec<JobSummary>,
    pub workers: Vec<WorkerRow>,
}

#[derive(Debug, Serialize)]
pub struct DriverRow {
    pub node_id: u64,
    pub address: String,
    pub role: &'static str,
    pub term: u64,
    pub last_log_index: u64,
    pub applied_index: u64,
    pub voter: bool,
}

#[derive(Debug, Serialize)]
pub struct JobSummary {
    pub id: u64,
    pub name: String,
    pub status: &'static str,
    pub error: String,
    pub progress: f64,
    /// How many stages, in the overview (the detail lists them instead).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stages: Option<u32>,
    pub stages_done: u32,
    pub tasks: u32,
    pub tasks_done: u32,
    pub tasks_running: u32,
    pub retried_tasks: u32,
    pub recomputed_outputs: u32,
    /// Rows its functions gave up on (skipped or recorded), of those checked.
    pub failed_rows: u64,
    pub checked_rows: u64,
    /// Where the recorded rows went (empty: counted, not kept).
    pub errors_url: String,
    pub rows_in: u64,
    pub bytes_in: u64,
    pub rows_out: u64,
    pub bytes_out: u64,
    pub shuffle_bytes: u64,
    pub spilled_bytes: u64,
    pub elapsed_seconds: f64,
    pub submitted_unix_ms: u64,
}

/// `/api/jobs/{id}`: the summary's fields, then the stage graph, operators,
/// failures, tasks by worker and stage timings.
#[derive(Debug, Serialize)]
pub struct JobDetail {
    #[serde(flatten)]
    pub summary: JobSummary,
    pub stages: Vec<StageRow>,
    pub operators: Vec<OperatorRow>,
    pub failures: Vec<FailureRow>,
    pub task_workers: Vec<TaskWorkerRow>,
    pub stage_timings: Vec<StageTimingRow>,
}

#[derive(Debug, Serialize)]
pub struct StageRow {
    pub stage: u64,
    pub inputs: Vec<u64>,
    pub tasks: u32,
    pub done: u32,
    pub running: usize,
}

#[derive(Debug, Serialize)]
pub struct OperatorRow {
    pub stage: u32,
    pub index: u32,
    pub depth: u32,
    pub name: String,
    pub rows_in: u64,
    pub rows_out: u64,
    pub bytes_out: u64,
    pub compute_seconds: f64,
    pub in_flight_peak: u64,
    pub backpressure_seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct FailureRow {
    pub stage: u32,
    pub partition: u32,
    pub attempt: u32,
    pub worker: u64,
    pub error: String,
}

#[derive(Debug, Serialize)]
pub struct TaskWorkerRow {
    pub worker: u64,
    pub running: u32,
    pub done: u32,
    pub failed: u32,
}

#[derive(Debug, Serialize)]
pub struct StageTimingRow {
    pub stage: u32,
    pub started_seconds: f64,
    pub ended_seconds: f64,
    pub task_seconds: f64,
    pub read_seconds: f64,
    pub write_seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct WorkerRow {
    pub id: u64,
    pub address: String,
    pub host: String,
    pub alive: bool,
    pub lost_reason: String,
    pub node_label: String,
    pub metrics_address: String,
    pub cpus: u32,
    pub cpus_leased: u32,
    pub gpus: u32,
    pub gpus_leased: u32,
    pub gpu_ids: Vec<String>,
    pub memory_bytes: u64,
    pub memory_leased_bytes: u64,
    pub memory_used_bytes: u64,
    pub spilled_bytes: u64,
    pub shuffle_written_bytes: u64,
    pub shuffle_served_bytes: u64,
    pub running_tasks: u32,
    pub tasks_done: u64,
    pub actor_devices: Vec<String>,
    pub pools: Vec<PoolRow>,
}

#[derive(Debug, Serialize)]
pub struct PoolRow {
    pub model: String,
    pub actors: u32,
    pub queue_depth: u32,
    pub batches: u64,
    pub builds: u64,
    pub batch_latency_ms: f64,
}
