//! [`OutputArgs`]: where `regatta sql` and `regatta submit` write a result.

/// `--output`, `--output-format`, `--output-mode`.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Write the result here instead of printing the rows: a path or an
    /// object-store URL (`s3://bucket/prefix`). A directory of Parquet, CSV or
    /// JSON part files, or a Lance dataset; locally, a name ending in the
    /// format's extension is one file. On a cluster the workers write their
    /// parts and the leader commits them exactly once.
    #[arg(long, short = 'o')]
    pub output: Option<String>,
    /// `parquet`, `csv`, `json` or `lance` for --output (default: guessed from
    /// the name, else Parquet).
    #[arg(long, default_value = "")]
    pub output_format: String,
    /// What --output does to an existing output: `create` (it must not exist or
    /// be empty), `append` or `overwrite`.
    #[arg(long, default_value = "create")]
    pub output_mode: String,
}
