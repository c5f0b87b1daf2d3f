//! Reading files into DataFusion DataFrames.

use std::sync::Arc;

use datafusion::dataframe::DataFrame;
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionContext};

use super::lance::open_lance_provider;
use super::paths::expand_input;
use super::sinks::FileFormat;
use crate::access::{check_input, policy_of, AccessPolicy};
use crate::{storage, Result};

/// The files (or objects, as URLs) `input` names, each one allowed by `policy`.
pub async fn input_files(input: &str, ext: &str, policy: &AccessPolicy) -> Result<Vec<String>> {
    check_input(policy, input)?;
    if storage::is_object_url(input) {
        let url = storage::ObjectUrl::parse(input)?;
        return Ok(storage::remote::expand_objects(&url, ext)
            .await?
            .into_iter()
            .map(|u| u.to_string())
            .collect());
    }
    let mut files = Vec::new();
    for path in expand_input(input, ext)? {
        if policy.local_roots.is_some() {
            policy.check_local(&path)?;
        }
        files.push(path.to_string_lossy().to_string());
    }
    Ok(files)
}

/// Reads `input` (a file, a directory, a glob, a `file://` URL, or an object,
/// prefix or glob in an object store) as `format`.
pub async fn read(ctx: &SessionContext, input: &str, format: FileFormat) -> Result<DataFrame> {
    let policy = policy_of(ctx.state().config());
    let path_strings = |ext: &'static str| input_files(input, ext, &policy);
    let df = match format {
        FileFormat::Parquet => {
            let files = path_strings(".parquet").await?;
            ctx.read_parquet(files, ParquetReadOptions::default().file_extension(""))
                .await?
        }
        FileFormat::Csv => {
            let files = path_strings(".csv").await?;
            ctx.read_csv(files, CsvReadOptions::new().file_extension(""))
                .await?
        }
        FileFormat::Json => {
            let files = path_strings(".json").await?;
            ctx.read_json(files, JsonReadOptions::default().file_extension(""))
                .await?
        }
        FileFormat::Lance => {
            check_input(&policy, input)?;
            let provider = open_lance_provider(input).await?;
            ctx.read_table(Arc::new(provider))?
        }
    };
    Ok(df)
}
