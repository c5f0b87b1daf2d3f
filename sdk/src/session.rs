//! [`Session`]: where DataFrames come from.

use crate::cluster::ClusterClient;
use regatta_engine::video::VideoOptions;
use std::sync::Arc;

use regatta_actors::{ActorRuntime, ModelFactory, NodeResources, PoolConfig, ResourceOverrides};
use regatta_engine::arrow::array::{Array, AsArray, StringArray};
use regatta_engine::arrow::datatypes::Float32Type;
use regatta_engine::arrow::record_batch::RecordBatch;
use regatta_engine::datafusion::logical_expr::{Expr, ScalarUDF};
use regatta_engine::functions::{BatchUdf, ModelPool, ModelPoolStats};
use regatta_engine::io::FileFormat;
use regatta_engine::{Engine, EngineOptions};

use crate::{DataFrame, Error, Result};

/// A regatta session: an in-process engine with its registered tables and functions.
///
/// Clones share the same engine.
#[derive(Debug, Clone)]
pub struct Session {
    engine: Engine,
    actors: Arc<ActorRuntime>,
    /// Set by [`Session::connect`]: queries run on this cluster.
    cluster: Option<ClusterClient>,
}

impl Session {
    /// A session on the embedded local engine with default options (ignoring the
    /// environment; see [`Session::local_from_env`]) and this machine's resources.
    pub fn local() -> Self {
        Self::assemble(
            Engine::with_defaults(),
            NodeResources::detect(ResourceOverrides::default()),
        )
    }

    /// A local session with `options` whose model actors lease from `resources`
    /// (declare fake GPUs here to test placement on a machine without any).
    pub fn local_with_resources(
        options: EngineOptions,
        resources: Arc<NodeResources>,
    ) -> Result<Self> {
        Ok(Self::assemble(Engine::new(options)?, resources))
    }

    /// A local session finding the models queries name in `store` (its
    /// configured entries first, then the built-in models' variables, the user
    /// cache and paths).
    pub fn local_with_models(
        options: EngineOptions,
        resources: Arc<NodeResources>,
        store: regatta_actors::ModelStore,
    ) -> Result<Self> {
        Ok(Self::assemble_with(Engine::new(options)?, resources, store))
    }

    fn assemble(engine: Engine, resources: Arc<NodeResources>) -> Self {
        Self::assemble_with(engine, resources, regatta_actors::ModelStore::default())
    }

    fn assemble_with(
        engine: Engine,
        resources: Arc<NodeResources>,
        store: regatta_actors::ModelStore,
    ) -> Self {
        let actors = ActorRuntime::with_store(resources, store);
        engine.set_model_provider(actors.clone());
        Self {
            engine,
            actors,
            cluster: None,
        }
    }

    /// A local session whose options come from `REGATTA_*` environment variables
    /// over the defaults ([`EngineOptions::from_env`]).
    pub fn local_from_env() -> Result<Self> {
        let resources = NodeResources::detect(ResourceOverrides::from_env()?);
        Self::local_with_resources(EngineOptions::from_env()?, resources)
    }

    /// A local session with custom engine options (morsel size, concurrency, bounds).
    pub fn local_with(options: EngineOptions) -> Result<Self> {
        Self::local_with_resources(options, NodeResources::detect(ResourceOverrides::default()))
    }

    /// The actors and resources behind this session's models.
    pub fn actors(&self) -> &Arc<ActorRuntime> {
        &self.actors
    }

    /// Serves `factory`'s model from a pool of actors configured by `config`, callable
    /// as `name` in SQL and through the returned function. Each actor builds the model
    /// once; the pool lives as long as the session. Fails at once on a bad
    /// configuration or a resource request this node can never grant.
    pub fn register_model(
        &self,
        name: &str,
        factory: Arc<dyn ModelFactory>,
        config: PoolConfig,
    ) -> Result<ModelFunction> {
        let pool = self.actors.create_pool(name, factory, config)?;
        Ok(ModelFunction {
            udf: self.engine.register_model(pool),
        })
    }

    /// What model `name`'s pool has done so far, if it exists.
    pub fn model_stats(&self, name: &str) -> Option<ModelPoolStats> {
        self.actors.get_pool(name).map(|p| p.stats())
    }

    /// Embeds `text` with `model` (as `embed_text` does in a query).
    pub async fn embed_query(&self, text: &str, model: &str) -> Result<Vec<f32>> {
        let pool = self.model_pool(model)?;
        let input: Arc<dyn Array> = Arc::new(StringArray::from(vec![text]));
        let out = pool.infer(vec![input], 1).await.map_err(Error::from)?;
        let list = out.as_fixed_size_list_opt().ok_or_else(|| {
            Error::InvalidArgument(format!("model {model} does not return vectors"))
        })?;
        Ok(list
            .value(0)
            .as_primitive::<Float32Type>()
            .values()
            .to_vec())
    }

    fn model_pool(&self, model: &str) -> Result<Arc<dyn ModelPool>> {
        use regatta_engine::functions::ModelProvider;
        self.actors
            .pool(model)
            .map_err(Error::from)?
            .ok_or_else(|| Error::InvalidArgument(format!("unknown model {model:?}")))
    }

    /// The `k` rows of the Lance dataset at `path` whose vector `column` is nearest to
    /// `query` (L2), nearest first, with `_distance`.
    pub async fn nearest(
        &self,
        path: &str,
        column: &str,
        query: &[f32],
        k: usize,
    ) -> Result<RecordBatch> {
        Ok(regatta_engine::io::lance::nearest(path, column, query, k).await?)
    }

    /// The `k` rows of the Lance dataset at `path` whose embedding `column` is nearest
    /// to `text` embedded by `model`.
    pub async fn nearest_text(
        &self,
        path: &str,
        column: &str,
        text: &str,
        model: &str,
        k: usize,
    ) -> Result<RecordBatch> {
        let query = self.embed_query(text, model).await?;
        self.nearest(path, column, &query, k).await
    }

    /// The engine underneath (for integrations that need DataFusion directly).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn wrap(&self, df: regatta_engine::datafusion::dataframe::DataFrame) -> DataFrame {
        DataFrame::new(df, self.engine.clone(), self.cluster.clone())
    }

    /// A session whose queries run on the cluster of the driver at `url`
    /// (`http://host:port`), with the token in `REGATTA_TOKEN` (empty if unset).
    /// DataFrames are built here exactly as on a local session; running one sends
    /// its plan to the driver and streams the rows back. Files must be visible to
    /// the workers at the same paths.
    pub async fn connect(url: &str) -> Result<Self> {
        let token = std::env::var("REGATTA_TOKEN").unwrap_or_default();
        Self::connect_with_token(url, &token).await
    }

    /// [`Session::connect`] with an explicit cluster token.
    pub async fn connect_with_token(url: &str, token: &str) -> Result<Self> {
        let cluster = ClusterClient::connect(url, token).await?;
        let mut s = Self::local();
        s.cluster = Some(cluster);
        Ok(s)
    }

    /// The cluster this session runs on, if it is connected to one.
    pub fn cluster(&self) -> Option<&ClusterClient> {
        self.cluster.as_ref()
    }

    /// Reads Parquet from a file, a directory, a glob or a `file://` URL.
    pub async fn read_parquet(&self, path: &str) -> Result<DataFrame> {
        self.read(path, FileFormat::Parquet).await
    }

    /// Reads CSV (with a header row).
    pub async fn read_csv(&self, path: &str) -> Result<DataFrame> {
        self.read(path, FileFormat::Csv).await
    }

    /// Reads newline-delimited JSON.
    pub async fn read_json(&self, path: &str) -> Result<DataFrame> {
        self.read(path, FileFormat::Json).await
    }

    /// Reads a Lance dataset (its latest version). On a connected session the
    /// DataFrame reads that version fragment by fragment, so the workers can run
    /// it; a local one reads through Lance's own provider.
    pub async fn read_lance(&self, path: &str) -> Result<DataFrame> {
        if self.cluster.is_some() {
            return Ok(self.wrap(self.engine.read_lance_fragments(path).await?));
        }
        self.read(path, FileFormat::Lance).await
    }

    /// Reads `path` as `format`.
    pub async fn read(&self, path: &str, format: FileFormat) -> Result<DataFrame> {
        Ok(self.wrap(self.engine.read(path, format).await?))
    }

    /// The frames of the videos `input` names (a file, directory, glob, `file://`
    /// or object-store URL): `{url, frame_index, pts_seconds, image}` per frame,
    /// decoded as the rows are read (a few frames in memory per partition). In SQL:
    /// `video_frames('glob' [, 'size=640x640, every=5, limit=100, on_error=null'])`.
    pub fn read_video_frames(&self, input: &str, options: VideoOptions) -> Result<DataFrame> {
        Ok(self.wrap(self.engine.read_video_frames(input, options)?))
    }

    /// A DataFrame over in-memory Arrow batches (all with the same schema).
    pub fn from_batches(&self, batches: Vec<RecordBatch>) -> Result<DataFrame> {
        let schema = batches.first().map(|b| b.schema()).ok_or_else(|| {
            Error::InvalidArgument("from_batches needs at least one batch".into())
        })?;
        Ok(self.wrap(self.engine.read_batches(schema, batches)?))
    }

    /// Registers a file or dataset as table `name` for SQL; the format comes from the
    /// extension (`.parquet`, `.csv`, `.json`, `.lance`) unless given.
    pub async fn register(&self, name: &str, path: &str, format: Option<FileFormat>) -> Result<()> {
        let format = match format {
            Some(f) => f,
            None => guess_format(path)?,
        };
        self.engine.register(name, path, format).await?;
        Ok(())
    }

    /// Registers a DataFrame as a view `name` for SQL.
    pub fn register_dataframe(&self, name: &str, df: DataFrame) -> Result<()> {
        self.engine
            .context()
            .register_table(name, df.into_inner().into_view())
            .map_err(Error::from)?;
        Ok(())
    }

    /// Runs SQL over the registered tables, lazily.
    pub async fn sql(&self, query: &str) -> Result<DataFrame> {
        Ok(self.wrap(self.engine.sql(query).await?))
    }

    /// Registers a user batch function; returns it for use in expressions. It is
    /// callable by name in SQL too.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use regatta::arrow::array::{ArrayRef, AsArray, Int64Array};
    /// use regatta::arrow::datatypes::{DataType, Int64Type};
    /// use regatta::prelude::*;
    ///
    /// # #[tokio::main(flavor = "multi_thread")]
    /// # async fn main() -> regatta::Result<()> {
    /// let session = Session::local();
    /// // Sees 256 rows per call (fewer only at the end).
    /// let square = session.register_batch_udf(BatchUdf::new("square", DataType::Int64, 256, |cols: &[ArrayRef]| {
    ///     let x = cols[0].as_primitive::<Int64Type>();
    ///     Ok(Arc::new(Int64Array::from_iter_values(x.values().iter().map(|v| v * v))) as ArrayRef)
    /// }));
    /// let df = session.sql("SELECT 12 AS x").await?.select(vec![square.call(vec![col("x")]).alias("y")])?;
    /// let out = df.collect().await?;
    /// assert_eq!(out[0].column(0).as_primitive::<Int64Type>().value(0), 144);
    /// # Ok(())
    /// # }
    /// ```
    pub fn register_batch_udf(&self, udf: BatchUdf) -> BatchFunction {
        BatchFunction {
            udf: self.engine.register_batch_udf(udf),
        }
    }

    /// Computes `expr` over the Lance dataset at `path` and adds it as column `name`
    /// without rewriting the existing columns. Returns the new dataset version.
    ///
    /// On a cluster the workers compute it fragment by fragment (a task per
    /// fragment of the version read), each writing its fragment's new data file,
    /// and the driver adds them in one commit tagged with the job, so a failover
    /// never adds the column twice. `expr` must be computed row by row from the
    /// dataset's own columns; the dataset must be where every worker, the driver
    /// and this client can reach it (a shared path or an object store).
    pub async fn add_lance_column(&self, path: &str, name: &str, expr: Expr) -> Result<u64> {
        let expr = self.engine.bind(expr)?;
        let Some(cluster) = &self.cluster else {
            return Ok(self.engine.add_lance_column(path, name, expr).await?);
        };
        use datafusion_proto::bytes::Serializeable;
        let bytes = expr.to_bytes().map_err(|e| {
            Error::InvalidArgument(format!(
                "the expression for column {name} cannot be sent to a cluster: {e}"
            ))
        })?;
        let request = regatta_proto::SubmitRequest {
            output_path: path.to_string(),
            output_format: regatta_proto::FileFormat::Lance as i32,
            output_mode: regatta_proto::WriteMode::AddColumns as i32,
            new_column: Some(regatta_proto::NewColumn {
                name: name.to_string(),
                expr: bytes.to_vec(),
            }),
            ..Default::default()
        };
        cluster.run_to_end(request).await?;
        let ds = regatta_engine::io::lance::open(path).await?;
        Ok(ds.version().version)
    }
}

/// A registered batch function, ready to be called in expressions.
#[derive(Debug, Clone)]
pub struct BatchFunction {
    udf: Arc<ScalarUDF>,
}

impl BatchFunction {
    /// The expression calling this function on `args`.
    pub fn call(&self, args: Vec<Expr>) -> Expr {
        self.udf.call(args)
    }
}

/// The format a path's extension names.
pub fn guess_format(path: &str) -> Result<FileFormat> {
    FileFormat::from_path(path).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "cannot tell the format of {path:?} from its extension; name it (parquet, csv, json, lance)"
        ))
    })
}

/// A model served by an actor pool, for use in expressions: `f.call(vec![col("x")])`.
#[derive(Debug, Clone)]
pub struct ModelFunction {
    udf: Arc<ScalarUDF>,
}

impl ModelFunction {
    /// Calls the model on `args`.
    pub fn call(&self, args: Vec<Expr>) -> Expr {
        self.udf.call(args)
    }
}
