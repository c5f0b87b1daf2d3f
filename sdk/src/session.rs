//! [`Session`]: where DataFrames come from.

use std::sync::Arc;

use regatta_engine::arrow::record_batch::RecordBatch;
use regatta_engine::datafusion::logical_expr::{Expr, ScalarUDF};
use regatta_engine::functions::BatchUdf;
use regatta_engine::io::FileFormat;
use regatta_engine::{Engine, EngineOptions};

use crate::{DataFrame, Error, Result};

/// A regatta session: an in-process engine with its registered tables and functions.
///
/// Clones share the same engine.
#[derive(Debug, Clone)]
pub struct Session {
    engine: Engine,
}

impl Session {
    /// A session on the embedded local engine with default options (ignoring the
    /// environment; see [`Session::local_from_env`]).
    pub fn local() -> Self {
        Self {
            engine: Engine::with_defaults(),
        }
    }

    /// A local session whose options come from `REGATTA_*` environment variables
    /// over the defaults ([`EngineOptions::from_env`]).
    pub fn local_from_env() -> Result<Self> {
        Self::local_with(EngineOptions::from_env()?)
    }

    /// A local session with custom engine options (morsel size, concurrency, bounds).
    pub fn local_with(options: EngineOptions) -> Result<Self> {
        Ok(Self {
            engine: Engine::new(options)?,
        })
    }

    /// The engine underneath (for integrations that need DataFusion directly).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn wrap(&self, df: regatta_engine::datafusion::dataframe::DataFrame) -> DataFrame {
        DataFrame::new(df, self.engine.clone())
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

    /// Reads a Lance dataset.
    pub async fn read_lance(&self, path: &str) -> Result<DataFrame> {
        self.read(path, FileFormat::Lance).await
    }

    /// Reads `path` as `format`.
    pub async fn read(&self, path: &str, format: FileFormat) -> Result<DataFrame> {
        Ok(self.wrap(self.engine.read(path, format).await?))
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
    pub async fn add_lance_column(&self, path: &str, name: &str, expr: Expr) -> Result<u64> {
        let expr = self.engine.bind(expr)?;
        Ok(self.engine.add_lance_column(path, name, expr).await?)
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
