//! Turns a submitted plan or SQL into stages the state machine can run.

use std::sync::Arc;

use datafusion::prelude::SessionContext;
use datafusion_proto::bytes::{
    logical_plan_from_bytes, physical_plan_to_bytes_with_extension_codec,
};
use regatta_common::{JobId, Resources};
use regatta_engine::functions::ModelProvider;
use regatta_engine::io::FileFormat;
use regatta_engine::{Engine, EngineOptions};
use regatta_proto::{submit_request, SubmitRequest};
use regatta_shuffle::RegattaCodec;

use crate::{split_into_stages, Command, Result, SchedulerError, StageSpec};

/// Plans jobs with a fresh engine each, so one job's tables never leak into another.
#[derive(Clone, Default)]
pub struct Planner {
    pub models: Option<Arc<dyn ModelProvider>>,
}

/// A table's format: as named, else guessed from its path, else Parquet.
fn format_of(name: &str, path: &str, format: &str) -> Result<FileFormat> {
    if format.is_empty() {
        return Ok(FileFormat::from_path(path).unwrap_or(FileFormat::Parquet));
    }
    FileFormat::parse(format).map_err(|e| SchedulerError::Plan(format!("table {name}: {e}")))
}

impl Planner {
    /// The engine a job is planned with: as many partitions as the cluster has CPUs.
    fn engine(&self, partitions: usize) -> Result<Engine> {
        let options = EngineOptions {
            target_partitions: partitions.max(1),
            ..EngineOptions::default()
        };
        let engine = Engine::new(options)?;
        if let Some(m) = &self.models {
            engine.set_model_provider(m.clone());
        }
        Ok(engine)
    }

    /// Plans `request` as job `job` over `partitions` partitions.
    pub async fn plan(
        &self,
        job: JobId,
        request: &SubmitRequest,
        partitions: usize,
        task_memory: u64,
    ) -> Result<Command> {
        let engine = self.engine(partitions)?;
        for t in &request.tables {
            if t.name.is_empty() || t.path.is_empty() {
                return Err(SchedulerError::Plan(
                    "every table needs a name and a path".into(),
                ));
            }
            let format = format_of(&t.name, &t.path, &t.format)?;
            engine
                .register(&t.name, &t.path, format)
                .await
                .map_err(|e| SchedulerError::Plan(format!("table {}: {e}", t.name)))?;
        }
        let df = match &request.plan {
            Some(submit_request::Plan::Sql(sql)) => engine.sql(sql).await?,
            Some(submit_request::Plan::LogicalPlan(bytes)) => {
                let ctx: &SessionContext = engine.context();
                let plan = logical_plan_from_bytes(bytes, &ctx.task_ctx())
                    .map_err(|e| SchedulerError::Plan(format!("malformed logical plan: {e}")))?;
                ctx.execute_logical_plan(plan).await?
            }
            None => {
                return Err(SchedulerError::Plan(
                    "the request has no plan or SQL".into(),
                ))
            }
        };
        let physical = engine.physical_plan(df).await?;
        let codec = RegattaCodec::encoder();
        let demand = Resources {
            cpus: 1.0,
            gpus: 0.0,
            memory: task_memory,
        };
        let stages = split_into_stages(job, physical, partitions)?
            .into_iter()
            .map(|s| {
                let tasks = s.tasks();
                let output_partitions = s.plan.output_partitions() as u32;
                let plan = physical_plan_to_bytes_with_extension_codec(s.plan.clone(), &codec)?;
                Ok(StageSpec {
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
        let output = if request.output_path.is_empty() {
            None
        } else {
            let out = crate::JobOutput {
                path: request.output_path.clone(),
                format: request.output_format.clone(),
            };
            super::results::output_format(&out)?;
            if std::path::Path::new(&out.path).exists() {
                return Err(SchedulerError::Plan(format!(
                    "output {} already exists; a job writes only to a new path",
                    out.path
                )));
            }
            Some(out)
        };
        Ok(Command::SubmitJob {
            job,
            name,
            stages,
            output,
            request_id: request.request_id.clone(),
        })
    }
}
