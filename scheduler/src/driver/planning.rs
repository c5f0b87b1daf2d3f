//! Turns a submitted plan or SQL into stages the state machine can run.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::prelude::SessionContext;
use datafusion_proto::bytes::{
    logical_plan_from_bytes_with_extension_codec, physical_plan_to_bytes_with_extension_codec,
};
use regatta_common::{JobId, RequestId, Resources};
use regatta_engine::access::{check_output, check_plan, AccessPolicy};
use regatta_engine::functions::{ModelPool, ModelProvider};
use regatta_engine::io::lance_scan::LanceFragmentTable;
use regatta_engine::io::resume::ResumeTarget;
use regatta_engine::io::FileFormat;
use regatta_engine::{Engine, EngineOptions};
use regatta_proto::{submit_request, SubmitRequest, WriteMode as ProtoMode};
use regatta_shuffle::{OutputSink, RegattaCodec, SinkMode};

use crate::{
    commit_tag, split_into_stages, Command, JobOutput, OutputMode, Result, SchedulerError,
    StageSpec,
};

/// Plans jobs with a fresh engine each, so one job's tables never leak into another.
#[derive(Clone, Default)]
pub struct Planner {
    pub models: Option<Arc<dyn ModelProvider>>,
}

/// The models a job's planning asked for, by the names nodes list them under
/// (those given by path left out), so the driver can check its workers have them.
#[derive(Debug)]
struct RecordedModels {
    inner: Arc<dyn ModelProvider>,
    used: Arc<Mutex<BTreeSet<String>>>,
}

impl ModelProvider for RecordedModels {
    fn pool(&self, name: &str) -> datafusion::error::Result<Option<Arc<dyn ModelPool>>> {
        let pool = self.inner.pool(name)?;
        if let (Some(_), Some(listed)) = (&pool, self.inner.listed_name(name)) {
            self.used
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(listed);
        }
        Ok(pool)
    }

    fn known(&self) -> Vec<String> {
        self.inner.known()
    }

    fn listed_name(&self, name: &str) -> Option<String> {
        self.inner.listed_name(name)
    }
}

/// A planned job: the command that submits it and the models it calls.
pub struct PlannedJob {
    pub command: Command,
    /// As `regatta models list` names them; models given by path are not here.
    pub models: BTreeSet<String>,
}

/// A table's or an output's format: as named, else guessed from its path,
/// else Parquet.
fn format_of(path: &str, named: regatta_proto::FileFormat) -> FileFormat {
    named
        .known()
        .or_else(|| FileFormat::from_path(path))
        .unwrap_or(FileFormat::Parquet)
}

impl Planner {
    /// The engine a job is planned with: as many partitions as the cluster has CPUs.
    fn engine(
        &self,
        partitions: usize,
        access: &AccessPolicy,
        used: &Arc<Mutex<BTreeSet<String>>>,
    ) -> Result<Engine> {
        let options = EngineOptions {
            target_partitions: partitions.max(1),
            access: access.clone(),
            // DataFusion's own join and scan settings: stages are cut at the
            // hash repartitions that the local plan settings would remove.
            datafusion: Vec::new(),
            ..EngineOptions::default()
        };
        let engine = Engine::new(options)?;
        if let Some(m) = &self.models {
            engine.set_model_provider(Arc::new(RecordedModels {
                inner: m.clone(),
                used: used.clone(),
            }));
        }
        Ok(engine)
    }

    /// Plans `request` as job `job` over `partitions` partitions; a job with an
    /// output gets its last stage writing there, staged under the commit tag
    /// of `request_id`.
    pub async fn plan(
        &self,
        (job, request_id): (JobId, &RequestId),
        request: &SubmitRequest,
        partitions: usize,
        options: &super::DriverOptions,
    ) -> Result<PlannedJob> {
        let task_memory = options.task_memory;
        let used = Arc::new(Mutex::new(BTreeSet::new()));
        let engine = self.engine(partitions, &options.access, &used)?;
        for t in &request.tables {
            if t.name.is_empty() || t.path.is_empty() {
                return Err(SchedulerError::Plan(
                    "every table needs a name and a path".into(),
                ));
            }
            let format = format_of(&t.path, t.format());
            let table_err = |e| SchedulerError::Plan(format!("table {}: {e}", t.name));
            if format == FileFormat::Lance {
                // Read fragment by fragment, a scan the workers can run.
                engine
                    .register_lance_fragments(&t.name, &t.path, false)
                    .await
                    .map_err(table_err)?;
            } else {
                engine
                    .register(&t.name, &t.path, format)
                    .await
                    .map_err(table_err)?;
            }
        }
        let (df, new_column) = match (&request.new_column, &request.plan) {
            (Some(_), _) => {
                let (df, target) = new_column_frame(&engine, request).await?;
                (df, Some(target))
            }
            (None, Some(submit_request::Plan::Sql(sql))) => (engine.sql(sql).await?, None),
            (None, Some(submit_request::Plan::LogicalPlan(bytes))) => {
                let ctx: &SessionContext = engine.context();
                let codec = regatta_shuffle::RegattaLogicalCodec::default();
                let plan =
                    logical_plan_from_bytes_with_extension_codec(bytes, &ctx.task_ctx(), &codec)
                        .map_err(|e| {
                            SchedulerError::Plan(format!("malformed logical plan: {e}"))
                        })?;
                (ctx.execute_logical_plan(plan).await?, None)
            }
            (None, None) => {
                return Err(SchedulerError::Plan(
                    "the request has no plan or SQL".into(),
                ))
            }
        };
        let resume = resume_target(request)?;
        let df = match &resume {
            Some(target) => {
                if df
                    .schema()
                    .field_with_unqualified_name(&target.key)
                    .is_err()
                {
                    return Err(SchedulerError::Plan(format!(
                        "resume key {:?} is not a column of the job's result (its columns: {})",
                        target.key,
                        df.schema()
                            .fields()
                            .iter()
                            .map(|f| f.name().as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                df.filter(target.filter())?
            }
            None => df,
        };
        let physical = match engine.physical_plan(df).await {
            Err(e) if new_column.is_some() => {
                return Err(SchedulerError::Plan(format!(
                    "output {}: the new column cannot be computed row by row from the \
                     dataset's own rows: {e}",
                    request.output_path
                )))
            }
            planned => planned?,
        };
        // Every file the plan scans, however it was named (a table, SQL's
        // `FROM 'file'`, a client's logical plan).
        check_plan(&physical, &options.access).map_err(|e| SchedulerError::Plan(e.to_string()))?;
        if !request.output_path.is_empty() {
            check_output(&options.access, &request.output_path)
                .map_err(|e| SchedulerError::Plan(format!("output: {e}")))?;
        }
        let output = output_of(request, &physical.schema()).await?;
        let codec = RegattaCodec::encoder();
        let demand = Resources {
            cpus: 1.0,
            gpus: 0.0,
            memory: task_memory,
        };
        // A new column's rows must stay each fragment's, in order: no stage
        // deals them out.
        let cores = if new_column.is_some() { 1 } else { partitions };
        let mut planned = split_into_stages(job, physical, cores)?;
        if let Some(target) = &new_column {
            let tasks = planned.last().map_or(0, |s| s.tasks() as usize);
            if planned.len() != 1 || tasks != target.fragments().len() {
                return Err(SchedulerError::Plan(format!(
                    "output {}: a new column must be computed row by row from the \
                     dataset's own rows (no aggregate, join, sort or window)",
                    request.output_path
                )));
            }
        }
        if let (Some(out), Some(last)) = (&output, planned.last_mut()) {
            let mode = match (out.mode.write_mode(), &new_column) {
                (Some(mode), _) => SinkMode::Write(mode),
                (None, Some(target)) => SinkMode::AddColumns {
                    read_version: target.version(),
                    fragments: target.fragments().to_vec(),
                },
                (None, None) => {
                    return Err(SchedulerError::Plan(format!(
                        "output {}: mode add_columns needs the new column",
                        out.path
                    )))
                }
            };
            let sink = OutputSink {
                path: out.path.clone(),
                format: out.format,
                mode,
                job_tag: commit_tag(job, request_id),
            };
            last.plan = Arc::new((*last.plan).clone().with_sink(Some(sink)));
        }
        let job_files = crate::task_inputs::scanned_files(
            planned
                .iter()
                .map(|s| s.plan.as_ref() as &dyn datafusion::physical_plan::ExecutionPlan),
        );
        let stages = planned
            .into_iter()
            .map(|s| {
                let tasks = s.tasks();
                let output_partitions = s.plan.output_partitions() as u32;
                let plan = physical_plan_to_bytes_with_extension_codec(s.plan.clone(), &codec)?;
                Ok(StageSpec {
                    task_inputs: crate::task_inputs::task_inputs(
                        s.plan.as_ref(),
                        tasks,
                        &job_files,
                    ),
                    stage: s.stage,
                    tasks,
                    inputs: s.inputs,
                    output_partitions,
                    demand,
                    plan: plan.to_vec(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let name = if request.name.is_empty() {
            format!("{job}")
        } else {
            request.name.clone()
        };
        let command = Command::SubmitJob {
            job,
            name,
            stages,
            output,
            request_id: request_id.clone(),
            submitted_unix_ms: crate::unix_ms_now(),
            row_errors: row_errors_of(request)?,
        };
        let models = std::mem::take(
            &mut *used
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        Ok(PlannedJob { command, models })
    }
}

/// What the job does with rows its functions give up on: the request's
/// error table and budget (the default budget when it names none).
fn row_errors_of(request: &SubmitRequest) -> Result<regatta_engine::RowErrorPolicy> {
    let mut budget = regatta_engine::FailureBudget::default();
    if let Some(b) = &request.failure_budget {
        if let Some(f) = b.max_failed_fraction {
            if !(0.0..=1.0).contains(&f) {
                return Err(SchedulerError::Plan(format!(
                    "max_failed_fraction must be between 0 and 1, got {f}"
                )));
            }
        }
        budget = regatta_engine::FailureBudget {
            max_failed_rows: b.max_failed_rows,
            max_failed_fraction: b.max_failed_fraction,
        };
    }
    Ok(regatta_engine::RowErrorPolicy {
        errors_url: (!request.errors_url.is_empty()).then(|| request.errors_url.clone()),
        budget,
    })
}

/// The job's output, checked before it starts: a format regatta writes, a
/// destination the mode allows.
async fn output_of(request: &SubmitRequest, schema: &SchemaRef) -> Result<Option<JobOutput>> {
    if request.output_path.is_empty() {
        return Ok(None);
    }
    let path = request.output_path.clone();
    let format = format_of(&path, request.output_format());
    let resume_key = (!request.resume_key.is_empty()).then(|| request.resume_key.clone());
    let mode = match request.output_mode() {
        // A resumable job adds to what its earlier runs wrote.
        ProtoMode::Create | ProtoMode::Unspecified if resume_key.is_some() => OutputMode::Append,
        ProtoMode::Create | ProtoMode::Unspecified => OutputMode::Create,
        ProtoMode::Append => OutputMode::Append,
        ProtoMode::Overwrite => OutputMode::Overwrite,
        ProtoMode::AddColumns => OutputMode::AddColumns,
    };
    if resume_key.is_some() && mode != OutputMode::Append {
        return Err(SchedulerError::Plan(format!(
            "output {path}: a resumable job appends to its output; mode {} would {}",
            if mode == OutputMode::Overwrite {
                "overwrite"
            } else {
                "add_columns"
            },
            "not keep what earlier runs wrote"
        )));
    }
    if (mode == OutputMode::AddColumns) != request.new_column.is_some() {
        return Err(SchedulerError::Plan(format!(
            "output {path}: a new column goes with mode add_columns, and only it"
        )));
    }
    let plan_err =
        |e: regatta_engine::EngineError| SchedulerError::Plan(format!("output {path}: {e}"));
    match format {
        FileFormat::Lance => {
            let exists = regatta_engine::io::lance::anything_at(&path)
                .await
                .map_err(plan_err)?;
            if exists && mode == OutputMode::Create {
                return Err(SchedulerError::Plan(format!(
                    "output {path} already exists; write with mode append or overwrite"
                )));
            }
        }
        _ => match mode.write_mode() {
            Some(write) => regatta_engine::io::staged::check_output(&path, format, write)
                .await
                .map_err(plan_err)?,
            None => {
                return Err(SchedulerError::Plan(format!(
                    "output {path}: only a Lance dataset takes new columns"
                )))
            }
        },
    }
    let mut schema_ipc = Vec::new();
    let mut w = StreamWriter::try_new(&mut schema_ipc, schema)
        .map_err(|e| SchedulerError::Plan(format!("output {path}: {e}")))?;
    w.finish()
        .map_err(|e| SchedulerError::Plan(format!("output {path}: {e}")))?;
    drop(w);
    Ok(Some(JobOutput {
        path,
        format,
        mode,
        schema_ipc,
        resume_key,
    }))
}

/// A resumable job's filter target: its output and key, and a snapshot name
/// of its own, so no worker reuses the keys it read for an earlier run.
fn resume_target(request: &SubmitRequest) -> Result<Option<ResumeTarget>> {
    if request.resume_key.is_empty() {
        return Ok(None);
    }
    if request.output_path.is_empty() {
        return Err(SchedulerError::Plan(format!(
            "resume key {:?}: a resumable job needs an output to resume",
            request.resume_key
        )));
    }
    let path = &request.output_path;
    let format = format_of(path, request.output_format());
    Ok(Some(ResumeTarget {
        output: path.clone(),
        format,
        key: request.resume_key.clone(),
        snapshot: regatta_common::random_hex_128(),
    }))
}

/// The table a new-column job reads: the dataset it adds to.
const NEW_COLUMN_SOURCE: &str = "__regatta_new_column_source";

/// A new-column job's rows: its expression over every row of the dataset at
/// `output_path`, one partition per fragment, in order; and that dataset.
async fn new_column_frame(
    engine: &Engine,
    request: &SubmitRequest,
) -> Result<(datafusion::prelude::DataFrame, LanceFragmentTable)> {
    use datafusion_proto::bytes::Serializeable;
    let path = &request.output_path;
    let plan_err = |m: String| SchedulerError::Plan(format!("output {path}: {m}"));
    let Some(column) = &request.new_column else {
        return Err(plan_err("no new column".into()));
    };
    if request.plan.is_some() {
        return Err(plan_err(
            "a new-column job computes from the dataset alone; it takes no plan".into(),
        ));
    }
    if column.name.is_empty() {
        return Err(plan_err("the new column has no name".into()));
    }
    let table = engine
        .register_lance_fragments(NEW_COLUMN_SOURCE, path, true)
        .await
        .map_err(|e| plan_err(e.to_string()))?;
    if table.fragments().is_empty() {
        return Err(plan_err(
            "the dataset has no rows to add a column to".into(),
        ));
    }
    let ctx = engine.context();
    if datafusion::datasource::TableProvider::schema(&table)
        .field_with_name(&column.name)
        .is_ok()
    {
        return Err(plan_err(format!("column {} already exists", column.name)));
    }
    let expr = datafusion::prelude::Expr::from_bytes_with_ctx(&column.expr, &ctx.task_ctx())
        .map_err(|e| plan_err(format!("malformed column expression: {e}")))?;
    let df = ctx
        .table(NEW_COLUMN_SOURCE)
        .await?
        .select(vec![expr.alias(&column.name)])?;
    Ok((df, table))
}
