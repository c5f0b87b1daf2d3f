//! `regatta sql` and `regatta explain`.

use futures::StreamExt;
use regatta::{FileFormat, Session};

use crate::output::{write_batches, PrintFormat};
use crate::progress::rows_spinner;
use crate::{CliError, Result};

/// `regatta sql "<query>"`.
#[derive(Debug, clap::Args)]
pub struct SqlArgs {
    /// The query. Files can be named directly: SELECT * FROM 'data/x.parquet'.
    pub query: String,
    /// Register a table: NAME=PATH (format from the extension: parquet, csv, json, lance).
    #[arg(long = "table", short = 't', value_name = "NAME=PATH")]
    pub tables: Vec<String>,
    /// How to print the result.
    #[arg(long, short = 'f', value_enum, default_value_t = PrintFormat::Table)]
    pub format: PrintFormat,
    #[command(flatten)]
    pub out: crate::output_args::OutputArgs,
    /// A cluster file whose `[storage]` says how to reach object stores and
    /// whose `[models]` name the models queries call.
    #[command(flatten)]
    pub cluster: crate::cluster_cmds::ClusterArgs,
}

/// `regatta explain "<query>"`.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The query.
    pub query: String,
    /// Register a table: NAME=PATH.
    #[arg(long = "table", short = 't', value_name = "NAME=PATH")]
    pub tables: Vec<String>,
    /// Run the query and show each operator's metrics.
    #[arg(long)]
    pub analyze: bool,
    /// A cluster file whose `[storage]` and `[models]` the query plans with,
    /// as `regatta sql -c` runs it.
    #[command(flatten)]
    pub cluster: crate::cluster_cmds::ClusterArgs,
}

/// A local session with `tables` registered, finding models in `store`.
async fn session_with(tables: &[String], store: regatta::models::ModelStore) -> Result<Session> {
    // REGATTA_* and DATAFUSION_* overrides, as the SDK's local_from_env reads them.
    let session = Session::local_with_models(
        regatta::EngineOptions::from_env().map_err(regatta::Error::from)?,
        regatta::models::NodeResources::detect(regatta::models::ResourceOverrides::default()),
        store,
    )?;
    for t in tables {
        let (name, path) = t
            .split_once('=')
            .ok_or_else(|| CliError::Usage(format!("--table expects NAME=PATH, got {t:?}")))?;
        if name.is_empty() || path.is_empty() {
            return Err(CliError::Usage(format!(
                "--table expects NAME=PATH, got {t:?}"
            )));
        }
        session.register(name, path, None).await?;
    }
    Ok(session)
}

/// Runs `regatta sql`.
pub async fn run_sql(args: SqlArgs) -> Result<()> {
    // The cluster file's [models] (names, precision, batch sizes) serve a
    // local query as they serve the cluster's.
    let cfg = args.cluster.load()?;
    let session = session_with(&args.tables, crate::cluster_cmds::model_store(&cfg)).await?;
    let df = session
        .sql(&args.query)
        .await?
        .with_row_error_policy(args.out.row_error_policy()?);
    if let Some(dest) = &args.out.output {
        let format = args
            .out
            .output_format
            .or_else(|| FileFormat::from_path(dest))
            .unwrap_or(FileFormat::Parquet);
        let mode = args.out.output_mode;
        let df = match &args.out.resume_key {
            Some(key) => df.resume_on(key),
            None => df,
        };
        let rows = df.write(dest, format, mode).await?;
        println!("wrote {rows} rows to {dest}");
        return Ok(());
    }
    let mut stream = df.stream().await?;
    let pb = rows_spinner("running");
    let mut batches = Vec::new();
    while let Some(b) = stream.next().await {
        let b = b.map_err(regatta::Error::from)?;
        pb.inc(b.num_rows() as u64);
        batches.push(b);
    }
    pb.finish_and_clear();
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    write_batches(&mut lock, &batches, args.format)
}

/// Runs `regatta explain`.
pub async fn run_explain(args: ExplainArgs) -> Result<()> {
    let cfg = args.cluster.load()?;
    let session = session_with(&args.tables, crate::cluster_cmds::model_store(&cfg)).await?;
    let df = session.sql(&args.query).await?;
    let text = if args.analyze {
        df.explain_analyze().await?
    } else {
        df.explain().await?
    };
    println!("{text}");
    Ok(())
}
