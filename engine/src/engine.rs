//! [`Engine`]: one DataFusion session with regatta's functions and operators.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::dataframe::DataFrame;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::execution::FunctionRegistry as _;
use datafusion::logical_expr::{Expr, ScalarUDF};
use datafusion::optimizer::{Optimizer, OptimizerRule};
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::{execute_stream, ExecutionPlan, SendableRecordBatchStream};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::access::{AccessPolicy, SharedAccess};
use crate::functions::{
    builtin_functions, BatchUdf, DownloadOptions, FunctionCost, FunctionRegistry, ModelCall,
    ModelCallKind, ModelCatalog, ModelPool, ModelProvider,
};
use crate::io::{self, FileFormat, WriteMode};
use crate::morsel::MorselRule;
use crate::{EngineError, EngineOptions, Result};

/// DataFusion's physical optimizer rules with regatta's morsel rule before and after.
fn optimizer_rules(
    registry: &FunctionRegistry,
    options: &EngineOptions,
) -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    let mut rules: Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> = vec![Arc::new(
        MorselRule::first(registry.clone(), options.clone()),
    )];
    rules.extend(PhysicalOptimizer::new().rules);
    rules.push(Arc::new(MorselRule::last(
        registry.clone(),
        options.clone(),
    )));
    rules
}

/// DataFusion 54's logical optimizer rules that move struct field accesses
/// (`s['a']`) towards the scan. Pushed through a projection they replace the
/// column `s` by the expression that made it, once per field: `s['label'],
/// s['score']` over `classify_image(...) AS s` ran the download, the decode and
/// the model twice. regatta's struct columns are mostly such expensive results,
/// so these rules are left out.
const DUPLICATING_RULES: [&str; 2] = ["extract_leaf_expressions", "push_down_leaf_projections"];

/// DataFusion's logical optimizer rules without [`DUPLICATING_RULES`].
fn logical_rules() -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    Optimizer::new()
        .rules
        .into_iter()
        .filter(|r| !DUPLICATING_RULES.contains(&r.name()))
        .collect()
}

/// The memory pool and spill directories of `options`; the directories are made
/// here. An error rather than a quiet fallback: a runtime without the pool would
/// ignore the memory limit.
fn runtime_env(options: &EngineOptions) -> Result<Arc<RuntimeEnv>> {
    let mut builder = RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(crate::storage::StoreRegistry::default()));
    if let Some(limit) = options.memory_limit {
        builder = builder.with_memory_pool(Arc::new(FairSpillPool::new(limit)));
    }
    if !options.spill_dirs.is_empty() {
        for d in &options.spill_dirs {
            std::fs::create_dir_all(d).map_err(|source| EngineError::Io {
                path: d.display().to_string(),
                source,
            })?;
        }
        builder = builder.with_disk_manager_builder(
            DiskManagerBuilder::default()
                .with_mode(DiskManagerMode::Directories(options.spill_dirs.clone())),
        );
    }
    Ok(builder.build_arc()?)
}

/// The single-node engine: cheap to clone, shared by every DataFrame of a session.
#[derive(Clone)]
pub struct Engine {
    ctx: SessionContext,
    options: EngineOptions,
    registry: FunctionRegistry,
    models: ModelCatalog,
    access: Arc<SharedAccess>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("options", &self.options)
            .finish()
    }
}

impl Engine {
    /// An engine with the default options.
    pub fn with_defaults() -> Self {
        let runtime = RuntimeEnvBuilder::new()
            .with_object_store_registry(Arc::new(crate::storage::StoreRegistry::default()))
            .build_arc()
            .unwrap_or_else(|_| Arc::new(RuntimeEnv::default()));
        Self::build(EngineOptions::default(), runtime)
    }

    /// An engine with `options`, which are checked first.
    pub fn new(options: EngineOptions) -> Result<Self> {
        options.validate()?;
        let runtime = runtime_env(&options)?;
        Ok(Self::build(options, runtime))
    }

    fn build(options: EngineOptions, runtime: Arc<RuntimeEnv>) -> Self {
        let registry = FunctionRegistry::default();
        let access = Arc::new(SharedAccess::new(options.access.clone()));
        let mut config = SessionConfig::new()
            .with_target_partitions(options.target_partitions)
            .with_batch_size(options.batch_size)
            .with_information_schema(true)
            .with_extension(access.clone());
        config
            .options_mut()
            .execution
            .enable_file_stream_work_stealing = options.scan_work_sharing;
        for (key, value) in &options.datafusion {
            // Checked by EngineOptions::validate; an engine built without it
            // (with_defaults) has none.
            if let Err(e) = config.options_mut().set(key, value) {
                log::warn!("DataFusion setting {key} = {value:?} not applied: {e}");
            }
        }
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .with_optimizer_rules(logical_rules())
            .with_physical_optimizer_rules(optimizer_rules(&registry, &options))
            .build();
        // URL tables let SQL name files directly: SELECT * FROM 'x.parquet'.
        let ctx = io::url_tables::enable_guarded_url_tables(
            SessionContext::new_with_state(state),
            access.clone(),
        );
        let download = DownloadOptions {
            max_connections: options.max_connections,
            ..DownloadOptions::default()
        };
        for (udf, cost) in builtin_functions(download, access.clone()) {
            if let Some(cost) = cost {
                registry.insert(udf.name(), cost);
            }
            ctx.register_udf(udf);
        }
        ctx.register_udtf(
            crate::io::video_frames::VIDEO_FRAMES,
            Arc::new(crate::io::video_frames::VideoFramesFunction),
        );
        let models = ModelCatalog::new(registry.clone());
        // Planning rewrites embed_text and transcribe into the model's own call;
        // an unrewritten one still gets a bounded operator.
        for kind in ModelCallKind::ALL {
            registry.insert(kind.name(), FunctionCost::Cpu);
            ctx.register_udf(ScalarUDF::new_from_impl(ModelCall::new(
                kind,
                models.clone(),
            )));
        }
        Self {
            ctx,
            options,
            registry,
            models,
            access,
        }
    }

    /// The access policy this engine's jobs read under now.
    pub fn access(&self) -> Arc<AccessPolicy> {
        self.access.get()
    }

    /// Replaces the access policy (a worker takes its cluster's from the driver).
    pub fn set_access(&self, policy: AccessPolicy) {
        self.access.set(policy);
    }

    /// Rebinds calls of regatta's functions in `expr` to this engine's instances (so
    /// they use this engine's connection bounds and registered batch functions).
    pub fn bind(&self, expr: Expr) -> Result<Expr> {
        use datafusion::common::tree_node::{Transformed, TreeNode};
        use datafusion::logical_expr::expr::ScalarFunction;
        let out = expr.transform_up(|e| {
            if let Expr::ScalarFunction(f) = &e {
                let name = f.func.name();
                if self.registry.cost(name).is_some() {
                    if let Ok(mine) = self.ctx.udf(name) {
                        if !Arc::ptr_eq(&mine, &f.func) {
                            return Ok(Transformed::yes(Expr::ScalarFunction(
                                ScalarFunction::new_udf(mine, f.args.clone()),
                            )));
                        }
                    }
                }
            }
            Ok(Transformed::no(e))
        })?;
        Ok(out.data)
    }

    /// Makes `pool`'s model callable by its name in SQL and expressions, fed by a
    /// morsel operator in batches of the pool's batch size.
    pub fn register_model(&self, pool: Arc<dyn ModelPool>) -> Arc<ScalarUDF> {
        let udf = self.models.register(pool);
        self.ctx.register_udf(udf.as_ref().clone());
        udf
    }

    /// Sets who supplies models a query names but nobody registered (built-in ones).
    pub fn set_model_provider(&self, provider: Arc<dyn ModelProvider>) {
        self.models.set_provider(provider);
    }

    /// The function calling model `name` (registered, or made by the provider).
    pub fn model(&self, name: &str) -> Result<Arc<ScalarUDF>> {
        self.models.udf(name).map_err(EngineError::from)
    }

    /// A morsel operator computing `exprs` over `input` with this engine's bounds:
    /// how a worker rebuilds one that arrived in a shipped plan.
    pub fn morsel_operator(
        &self,
        exprs: Vec<datafusion::physical_expr::projection::ProjectionExpr>,
        input: Arc<dyn ExecutionPlan>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let projection =
            datafusion::physical_plan::projection::ProjectionExec::try_new(exprs, input)?;
        Ok(MorselRule::first(self.registry.clone(), self.options.clone()).operator_for(projection))
    }

    /// The DataFusion session underneath.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The options this engine runs with.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// A registered function by name, for building expressions.
    pub fn function(&self, name: &str) -> Result<Arc<ScalarUDF>> {
        self.ctx.udf(name).map_err(EngineError::from)
    }

    /// Calls the registered function `name` on `args`.
    pub fn call(&self, name: &str, args: Vec<Expr>) -> Result<Expr> {
        Ok(self.function(name)?.call(args))
    }

    /// Registers a user batch function, callable by name in SQL and expressions.
    pub fn register_batch_udf(&self, udf: BatchUdf) -> Arc<ScalarUDF> {
        let batch = udf.batch_size();
        let f = ScalarUDF::new_from_impl(udf);
        self.registry.insert(f.name(), FunctionCost::Batch(batch));
        self.ctx.register_udf(f.clone());
        Arc::new(f)
    }

    /// Reads `input` (file, directory, glob or `file://` URL) as `format`.
    pub async fn read(&self, input: &str, format: FileFormat) -> Result<DataFrame> {
        io::read(&self.ctx, input, format).await
    }

    /// The latest version of the Lance dataset at `input`, read fragment by
    /// fragment: a scan a cluster's workers can run (see
    /// [`io::lance_scan::LanceFragmentTable`]).
    pub async fn read_lance_fragments(&self, input: &str) -> Result<DataFrame> {
        crate::access::check_input(&self.access(), input)?;
        let table = io::lance_scan::LanceFragmentTable::open(input, false).await?;
        Ok(self.ctx.read_table(Arc::new(table))?)
    }

    /// The frames of the videos `input` names (a file, directory, glob, `file://`
    /// URL or object-store URL), one row each, decoded as the rows are read.
    pub fn read_video_frames(
        &self,
        input: &str,
        options: crate::video::VideoOptions,
    ) -> Result<DataFrame> {
        let table = io::video_frames::VideoFramesTable::new(input.to_string(), options);
        Ok(self.ctx.read_table(Arc::new(table))?)
    }

    /// A DataFrame over in-memory batches.
    pub fn read_batches(&self, schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<DataFrame> {
        let table = datafusion::datasource::MemTable::try_new(schema, vec![batches])?;
        Ok(self.ctx.read_table(Arc::new(table))?)
    }

    /// Registers `input` as table `name` for SQL.
    pub async fn register(&self, name: &str, input: &str, format: FileFormat) -> Result<()> {
        let df = self.read(input, format).await?;
        self.ctx.register_table(name, df.into_view())?;
        Ok(())
    }

    /// Registers the Lance dataset at `input` as table `name`, read fragment by
    /// fragment at its current version by a scan a cluster can ship to its
    /// workers (one partition per fragment when `per_fragment`). Returns the table.
    pub async fn register_lance_fragments(
        &self,
        name: &str,
        input: &str,
        per_fragment: bool,
    ) -> Result<io::lance_scan::LanceFragmentTable> {
        crate::access::check_input(&self.access(), input)?;
        let table = io::lance_scan::LanceFragmentTable::open(input, per_fragment).await?;
        self.ctx.register_table(name, Arc::new(table.clone()))?;
        Ok(table)
    }

    /// Plans a SQL statement.
    pub async fn sql(&self, query: &str) -> Result<DataFrame> {
        Ok(self.ctx.sql(query).await?)
    }

    /// The physical plan of `df`, optimised, with regatta's operators in place.
    pub async fn physical_plan(&self, df: DataFrame) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(df.create_physical_plan().await?)
    }

    /// Runs a physical plan as one stream.
    pub fn execute(&self, plan: Arc<dyn ExecutionPlan>) -> Result<SendableRecordBatchStream> {
        Ok(execute_stream(plan, self.ctx.task_ctx())?)
    }

    /// A task context whose plans send their failed rows
    /// (`on_error = 'skip' | 'record'`) to `sink`.
    pub fn task_ctx_with_row_errors(
        &self,
        sink: Arc<crate::RowErrorSink>,
    ) -> Arc<datafusion::execution::TaskContext> {
        state_with_row_errors(self.ctx.state(), sink).task_ctx()
    }

    /// `df` with its failed rows (`on_error = 'skip' | 'record'`) going to
    /// `sink`, which then holds their counts and the recorded rows.
    pub fn with_row_errors(&self, df: DataFrame, sink: Arc<crate::RowErrorSink>) -> DataFrame {
        let (state, plan) = df.into_parts();
        DataFrame::new(state_with_row_errors(state, sink), plan)
    }

    /// Writes `df` to files (`format` not Lance). Returns rows written.
    pub async fn write(
        &self,
        df: DataFrame,
        dest: &str,
        format: FileFormat,
        mode: WriteMode,
    ) -> Result<u64> {
        if format == FileFormat::Lance {
            return self.write_lance(df, dest, mode).await;
        }
        io::write(df, dest, format, mode).await
    }

    /// Writes `df` to a Lance dataset. Returns the dataset's rows afterwards.
    pub async fn write_lance(&self, df: DataFrame, dest: &str, mode: WriteMode) -> Result<u64> {
        let stream = df.execute_stream().await?;
        io::lance::write_stream(stream, dest, mode).await
    }

    /// Computes `expr` for every row of the Lance dataset at `dest` and stores it as
    /// the new column `name`, without rewriting the existing columns.
    pub async fn add_lance_column(&self, dest: &str, name: &str, expr: Expr) -> Result<u64> {
        let provider = io::lance::open_lance_provider(dest).await?;
        // One partition keeps the dataset's row order, which Lance needs to line the
        // new column up with the old ones; the morsel operator still runs concurrently.
        let state = SessionStateBuilder::new_from_existing(self.ctx.state())
            .with_config(self.ctx.copied_config().with_target_partitions(1))
            .build();
        let ctx = SessionContext::new_with_state(state);
        let df = ctx
            .read_table(Arc::new(provider))?
            .select(vec![expr.alias(name)])?;
        let stream = df.execute_stream().await?;
        io::lance::add_columns(dest, stream).await
    }
}

/// `state` with `sink` as the extension its morsel operators send failed rows to.
fn state_with_row_errors(state: SessionState, sink: Arc<crate::RowErrorSink>) -> SessionState {
    let config = state.config().clone().with_extension(sink);
    SessionStateBuilder::new_from_existing(state)
        .with_config(config)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::physical_plan::displayable;

    #[test]
    fn the_left_out_rules_exist_under_these_names() {
        let all = Optimizer::new().rules;
        let names: Vec<&str> = all.iter().map(|r| r.name()).collect();
        for rule in DUPLICATING_RULES {
            assert!(
                names.contains(&rule),
                "DataFusion has no rule {rule} now: {names:?}"
            );
        }
        let kept = logical_rules();
        assert_eq!(kept.len(), names.len() - DUPLICATING_RULES.len());
    }

    /// Two fields of one struct-valued call compute the call once.
    #[tokio::test]
    async fn two_fields_of_one_struct_result_compute_it_once() {
        let engine = Engine::with_defaults();
        let df = engine
            .sql(
                "SELECT m['width'] AS w, m['height'] AS h FROM \
                 (SELECT video_metadata(b) AS m FROM (VALUES (X'00'), (X'01')) AS t(b))",
            )
            .await
            .expect("plans");
        let plan = engine.physical_plan(df).await.expect("physical plan");
        let text = displayable(plan.as_ref()).indent(true).to_string();
        assert_eq!(
            text.matches("video_metadata(").count(),
            1,
            "the call is planned more than once:\n{text}"
        );
    }

    /// A DataFusion setting given in the options reaches the session; a key
    /// DataFusion does not know is refused by name before any engine is built.
    #[test]
    fn datafusion_settings_reach_the_session_and_unknown_ones_are_refused() {
        let key = "datafusion.execution.parquet.pushdown_filters";
        let row_filters = |e: &Engine| {
            e.context()
                .copied_config()
                .options()
                .execution
                .parquet
                .pushdown_filters
        };
        // The local plan settings by default; none: DataFusion's own.
        assert!(row_filters(&Engine::with_defaults()));
        let plain = Engine::new(EngineOptions {
            datafusion: Vec::new(),
            ..EngineOptions::default()
        })
        .expect("no settings");
        assert!(!row_filters(&plain));
        // Later entries win: a variable's value over the default's.
        let mut options = EngineOptions::default();
        options.datafusion.push((key.into(), "false".into()));
        assert!(!row_filters(
            &Engine::new(options).expect("a known key and value")
        ));

        let bad = "datafusion.execution.no_such_setting";
        let err = Engine::new(EngineOptions {
            datafusion: vec![(bad.into(), "1".into())],
            ..EngineOptions::default()
        })
        .expect_err("an unknown key is refused");
        assert!(err.to_string().contains(bad), "{err}");
        let err = Engine::new(EngineOptions {
            datafusion: vec![(key.into(), "maybe".into())],
            ..EngineOptions::default()
        })
        .expect_err("a value of the wrong type is refused");
        assert!(err.to_string().contains("maybe"), "{err}");
    }
}
