//! Reading files into DataFusion DataFrames.

use std::sync::Arc;

use datafusion::dataframe::DataFrame;
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionContext};

use super::lance::open_lance_provider;
use super::paths::expand_input;
use super::sinks::FileFormat;
use crate::Result;

fn path_strings(input: &str, ext: &str) -> Result<Vec<String>> {
    Ok(expand_input(input, ext)?
        .into_iter()
        .map(|p| p.to_string_lossy().to_string())
        .collect())
}

/// Reads `input` (a file, a directory, a glob or a `file://` URL) as `format`.
pub async fn read(ctx: &SessionContext, input: &str, format: FileFormat) -> Result<DataFrame> {
    let df = match format {
        FileFormat::Parquet => {
            let files = path_strings(input, ".parquet")?;
            ctx.read_parquet(files, ParquetReadOptions::default().file_extension(""))
                .await?
        }
        FileFormat::Csv => {
            let files = path_strings(input, ".csv")?;
            ctx.read_csv(files, CsvReadOptions::new().file_extension(""))
                .await?
        }
        FileFormat::Json => {
            let files = path_strings(input, ".json")?;
            ctx.read_json(files, JsonReadOptions::default().file_extension(""))
                .await?
        }
        FileFormat::Lance => {
            let provider = open_lance_provider(input).await?;
            ctx.read_table(Arc::new(provider))?
        }
    };
    Ok(df)
}
