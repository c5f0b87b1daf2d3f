//! [`OutputSink`]: where a write job's last stage puts its rows, and how a
//! task writes its share there (staged, uncommitted; the leader commits once).

use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::physical_plan::SendableRecordBatchStream;
use regatta_engine::io::{lance, lance_staged, staged, FileFormat, WriteMode};
use regatta_proto::{FileFormat as FormatMsg, OutputSink as SinkMsg, WriteMode as ModeMsg};

/// What a write job's tasks do at the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkMode {
    /// Write rows: a new output, or onto (or over) an existing one.
    Write(WriteMode),
    /// Add the rows' columns to a Lance dataset: partition `p`'s rows are the
    /// new values for fragment `fragments[p]` of version `read_version`.
    AddColumns {
        read_version: u64,
        fragments: Vec<u64>,
    },
}

impl std::fmt::Display for SinkMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Write(m) => write!(f, "{m:?}"),
            Self::AddColumns { read_version, .. } => {
                write!(f, "add columns to version {read_version}")
            }
        }
    }
}

/// A write job's destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSink {
    /// A directory of part files (Parquet, CSV, JSON) or a Lance dataset.
    pub path: String,
    pub format: FileFormat,
    pub mode: SinkMode,
    /// `<cluster id>/job-N`: names the staging area and tags the commit.
    pub job_tag: String,
}

/// What one task of a write stage staged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedOutput {
    pub rows: u64,
    /// For the commit: the staged part's file name (empty: no rows), or the
    /// staged Lance fragments as JSON.
    pub written: String,
}

impl OutputSink {
    /// Writes input partition `partition`'s rows, as attempt `attempt`.
    pub async fn write(
        &self,
        stream: SendableRecordBatchStream,
        partition: u32,
        attempt: u32,
    ) -> DfResult<StagedOutput> {
        let external = |e: regatta_engine::EngineError| DataFusionError::External(Box::new(e));
        let mode = match &self.mode {
            SinkMode::Write(mode) => *mode,
            SinkMode::AddColumns {
                read_version,
                fragments,
            } => {
                let fragment = fragments.get(partition as usize).ok_or_else(|| {
                    DataFusionError::Plan(format!(
                        "output {}: no fragment for partition {partition} (of {})",
                        self.path,
                        fragments.len()
                    ))
                })?;
                let (written, rows) =
                    lance::add_columns_to_fragment(stream, &self.path, *read_version, *fragment)
                        .await
                        .map_err(external)?;
                return Ok(StagedOutput { rows, written });
            }
        };
        match self.format {
            FileFormat::Lance => {
                let (written, rows) = lance_staged::stage_fragments(
                    stream,
                    &self.path,
                    mode,
                    &self.job_tag,
                    partition,
                    attempt,
                )
                .await
                .map_err(external)?;
                Ok(StagedOutput { rows, written })
            }
            format => {
                let name =
                    staged::staged_part_name(partition, attempt, format).map_err(external)?;
                let rows = staged::stage_part(stream, &self.path, &self.job_tag, &name, format)
                    .await
                    .map_err(external)?;
                let written = if rows == 0 { String::new() } else { name };
                Ok(StagedOutput { rows, written })
            }
        }
    }

    /// The wire form.
    pub fn to_msg(&self) -> SinkMsg {
        let (mode, read_version, fragments) = match &self.mode {
            SinkMode::Write(m) => (ModeMsg::from(*m), 0, Vec::new()),
            SinkMode::AddColumns {
                read_version,
                fragments,
            } => (ModeMsg::AddColumns, *read_version, fragments.clone()),
        };
        SinkMsg {
            path: self.path.clone(),
            format: FormatMsg::from(self.format) as i32,
            mode: mode as i32,
            job_tag: self.job_tag.clone(),
            read_version,
            fragments,
        }
    }

    /// From the wire form; a sink naming no known format or mode is refused.
    pub fn from_msg(m: &SinkMsg) -> DfResult<Self> {
        let format = m
            .format()
            .known()
            .ok_or_else(|| DataFusionError::Plan(format!("output {}: no format given", m.path)))?;
        let mode = match m.mode() {
            ModeMsg::AddColumns => SinkMode::AddColumns {
                read_version: m.read_version,
                fragments: m.fragments.clone(),
            },
            // Unspecified writes as create does.
            other => SinkMode::Write(other.write_mode().unwrap_or_default()),
        };
        Ok(Self {
            path: m.path.clone(),
            format,
            mode,
            job_tag: m.job_tag.clone(),
        })
    }
}
