//! [`FileFormat`] and [`WriteMode`]: what a table is stored as and what a write
//! does to an output that exists, one type each from the CLI and the SDK through
//! the protocol (`regatta_proto`'s wire enums convert to and from these) to the
//! driver's Raft log and the engine's readers and writers.

use serde::{Deserialize, Serialize};

use crate::{CommonError, Result};

/// A file format regatta reads and writes.
///
/// Serialised (in the driver's Raft log) by variant name, as before it moved
/// here, so earlier logs read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FileFormat {
    Parquet,
    Csv,
    /// Newline-delimited JSON.
    Json,
    Lance,
}

impl FileFormat {
    pub const ALL: [FileFormat; 4] = [Self::Parquet, Self::Csv, Self::Json, Self::Lance];

    /// Parses `parquet`, `csv`, `json`/`ndjson` or `lance` (any case).
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "parquet" | "pq" => Ok(Self::Parquet),
            "csv" => Ok(Self::Csv),
            "json" | "ndjson" | "jsonl" => Ok(Self::Json),
            "lance" => Ok(Self::Lance),
            _ => Err(CommonError::UnknownName {
                what: "format",
                input: s.to_string(),
                expected: "parquet, csv, json or lance",
            }),
        }
    }

    /// Guesses the format from a path's extension.
    pub fn from_path(path: &str) -> Option<Self> {
        let lower = path.trim_end_matches('/').to_ascii_lowercase();
        let ext = lower.rsplit('.').next()?;
        Self::parse(ext).ok()
    }

    /// The spelling people type and [`Self::parse`] reads back.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Parquet => "parquet",
            Self::Csv => "csv",
            Self::Json => "json",
            Self::Lance => "lance",
        }
    }

    /// The file (or dataset directory) extension, with its dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Parquet => ".parquet",
            Self::Csv => ".csv",
            Self::Json => ".json",
            Self::Lance => ".lance",
        }
    }
}

impl std::fmt::Display for FileFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for FileFormat {
    type Err = CommonError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// What a write does when its destination already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum WriteMode {
    /// Fail if the destination exists and is not empty.
    #[default]
    Create,
    /// Add to what is there.
    Append,
    /// Replace what is there, only once the new data is completely written.
    Overwrite,
}

impl WriteMode {
    pub const ALL: [WriteMode; 3] = [Self::Create, Self::Append, Self::Overwrite];

    /// Parses `create`, `append` or `overwrite` (any case).
    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| CommonError::UnknownName {
                what: "write mode",
                input: s.to_string(),
                expected: "create, append or overwrite",
            })
    }

    /// The spelling people type and [`Self::parse`] reads back.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Append => "append",
            Self::Overwrite => "overwrite",
        }
    }
}

impl std::fmt::Display for WriteMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for WriteMode {
    type Err = CommonError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_reads_back() {
        for f in FileFormat::ALL {
            assert_eq!(FileFormat::parse(f.as_str()).unwrap(), f);
            assert_eq!(
                FileFormat::from_path(&format!("out/x{}", f.extension())),
                Some(f)
            );
        }
        for m in WriteMode::ALL {
            assert_eq!(m.as_str().parse::<WriteMode>().unwrap(), m);
        }
        assert_eq!(FileFormat::parse("NDJSON").unwrap(), FileFormat::Json);
    }

    #[test]
    fn unknown_names_say_what_is_accepted() {
        let e = FileFormat::parse("xlsx").unwrap_err().to_string();
        assert!(
            e.contains("\"xlsx\"") && e.contains("parquet, csv, json or lance"),
            "{e}"
        );
        let e = WriteMode::parse("upsert").unwrap_err().to_string();
        assert!(
            e.contains("\"upsert\"") && e.contains("create, append or overwrite"),
            "{e}"
        );
    }

    #[test]
    fn the_raft_log_spelling_is_the_variant_name() {
        // Entries written before these types moved to common spelled them so.
        assert_eq!(
            serde_json::to_string(&FileFormat::Lance).unwrap(),
            "\"Lance\""
        );
        assert_eq!(
            serde_json::to_string(&WriteMode::Append).unwrap(),
            "\"Append\""
        );
    }
}
