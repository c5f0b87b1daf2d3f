//! [`OutputArgs`]: where `regatta sql` and `regatta submit` write a result.

/// `--output`, `--output-format`, `--output-mode`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
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
    #[arg(long, value_name = "FORMAT")]
    pub output_format: Option<regatta::FileFormat>,
    /// What --output does to an existing output: `create` (it must not exist or
    /// be empty), `append` or `overwrite`.
    #[arg(long, value_name = "MODE", default_value_t = regatta::WriteMode::Create)]
    pub output_mode: regatta::WriteMode,
    /// Write the rows that functions give up on under `on_error = 'record'`
    /// as a Parquet table here (a directory or object-store prefix): each
    /// row's key (URL or path), function, error class, message, attempt, job
    /// and time.
    #[arg(long, value_name = "URL")]
    pub errors: Option<String>,
    /// Fail the job once more rows than this fail (skip or record).
    #[arg(long, value_name = "N")]
    pub max_failed_rows: Option<u64>,
    /// Fail the job when more than this share of the rows fail (skip or
    /// record), judged when the rows are all read. Default 0.05; 1 allows all.
    #[arg(long, value_name = "FRACTION")]
    pub max_failed_fraction: Option<f64>,
    /// Make the job resumable on this column of the source, which the output
    /// keeps: rows whose key --output already holds are skipped before any
    /// function runs on them, the rest appended, and the output committed as
    /// the job goes. Rerun the same command after a failure or a lost
    /// cluster to do only what is left.
    #[arg(long, value_name = "COLUMN", requires = "output")]
    pub resume_key: Option<String>,
}

impl OutputArgs {
    /// These flags as a command line gives them, for a `regatta submit` run
    /// elsewhere (the Ray job); `locate` rewrites local paths for that place.
    pub fn to_args(&self, locate: impl Fn(&str) -> String) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(o) = &self.output {
            args.extend(["-o".to_string(), locate(o)]);
            if let Some(format) = self.output_format {
                args.extend(["--output-format".to_string(), format.to_string()]);
            }
            args.extend(["--output-mode".to_string(), self.output_mode.to_string()]);
        }
        if let Some(errors) = &self.errors {
            args.extend(["--errors".to_string(), locate(errors)]);
        }
        if let Some(n) = self.max_failed_rows {
            args.extend(["--max-failed-rows".to_string(), n.to_string()]);
        }
        if let Some(f) = self.max_failed_fraction {
            args.extend(["--max-failed-fraction".to_string(), f.to_string()]);
        }
        if let Some(key) = &self.resume_key {
            args.extend(["--resume-key".to_string(), key.clone()]);
        }
        args
    }

    /// What the job does with rows its functions give up on.
    pub fn row_error_policy(&self) -> crate::Result<regatta::RowErrorPolicy> {
        let mut budget = regatta::FailureBudget {
            max_failed_rows: self.max_failed_rows,
            ..regatta::FailureBudget::default()
        };
        if let Some(f) = self.max_failed_fraction {
            if !(0.0..=1.0).contains(&f) {
                return Err(crate::CliError::Usage(format!(
                    "--max-failed-fraction must be between 0 and 1, got {f}"
                )));
            }
            budget.max_failed_fraction = Some(f);
        }
        Ok(regatta::RowErrorPolicy {
            errors_url: self.errors.clone(),
            budget,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::OutputArgs;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        out: OutputArgs,
    }

    fn parse(args: &[String]) -> OutputArgs {
        Cli::try_parse_from(std::iter::once("regatta".to_string()).chain(args.iter().cloned()))
            .unwrap()
            .out
    }

    #[test]
    fn every_flag_survives_the_trip_to_another_command_line() {
        let given: Vec<String> = [
            "-o",
            "out",
            "--output-format",
            "csv",
            "--output-mode",
            "append",
            "--errors",
            "errs",
            "--max-failed-rows",
            "3",
            "--max-failed-fraction",
            "0.25",
            "--resume-key",
            "id",
        ]
        .map(String::from)
        .to_vec();
        let first = parse(&given);
        let again = parse(&first.to_args(|p| format!("/abs/{p}")));
        assert_eq!(again.output.as_deref(), Some("/abs/out"));
        assert_eq!(again.errors.as_deref(), Some("/abs/errs"));
        assert_eq!(
            OutputArgs {
                output: first.output.clone().map(|p| format!("/abs/{p}")),
                errors: first.errors.clone().map(|p| format!("/abs/{p}")),
                ..first
            },
            again
        );
        // Nothing given, nothing passed on.
        assert!(parse(&[]).to_args(|p| p.to_string()).is_empty());
    }
}
