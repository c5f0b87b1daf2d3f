//! Helpers for reading the constant arguments of multimodal functions.

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::ColumnarValue;

/// What a function does with a row it cannot process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Fail the query with an error naming the row.
    #[default]
    Raise,
    /// Give the row a null and go on.
    Null,
    /// Drop the row and go on; it counts toward the job's failure budget.
    Skip,
    /// Drop the row and write it, with its cause, to the job's error table.
    Record,
}

impl OnError {
    /// Parses `raise`, `null`, `skip` or `record`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "raise" => Ok(Self::Raise),
            "null" => Ok(Self::Null),
            "skip" => Ok(Self::Skip),
            "record" => Ok(Self::Record),
            _ => Err(DataFusionError::Plan(format!(
                "on_error must be 'raise', 'null', 'skip' or 'record', got {s:?}"
            ))),
        }
    }

    /// The name used in SQL.
    pub fn name(self) -> &'static str {
        match self {
            Self::Raise => "raise",
            Self::Null => "null",
            Self::Skip => "skip",
            Self::Record => "record",
        }
    }

    /// Handles a row a guarded decoder gave no result for: its own failure is
    /// the row's data error and a timeout the row's timeout, both under
    /// `on_error`; too many decoders stuck in the process fails the task as
    /// out of resources, whatever `on_error` says (another worker may do it).
    pub fn fail_decode(
        self,
        function: &'static str,
        row: usize,
        source: Option<String>,
        error: crate::decoder_guard::GuardError,
    ) -> Result<()> {
        use super::row_failures::RowErrorClass;
        use crate::decoder_guard::GuardError;
        match error {
            GuardError::Failed(m) => self.fail_row(function, row, source, RowErrorClass::Data, m),
            e @ GuardError::TimedOut { .. } => {
                self.fail_row(function, row, source, RowErrorClass::Timeout, e.to_string())
            }
            e @ GuardError::Stuck { .. } => Err(DataFusionError::ResourcesExhausted(format!(
                "{function}: {e}"
            ))),
        }
    }

    /// Handles a row `function` could not process: an error naming the row
    /// (`raise`), or `Ok` after which the caller gives the row a null (which
    /// `skip` and `record` then drop, see [`super::row_failures`]).
    pub fn fail_row(
        self,
        function: &'static str,
        row: usize,
        source: Option<String>,
        class: super::row_failures::RowErrorClass,
        message: String,
    ) -> Result<()> {
        match self {
            Self::Raise => Err(row_error(function, row, source, message)),
            Self::Null => {
                log::debug!(
                    "{function}: row {row}{}: {}",
                    source.map(|s| format!(" ({s})")).unwrap_or_default(),
                    super::row_failures::redact_urls(&message)
                );
                Ok(())
            }
            Self::Skip | Self::Record => {
                super::row_failures::report(super::row_failures::RowFailure {
                    function,
                    row,
                    source,
                    class,
                    message,
                    record: self == Self::Record,
                })
            }
        }
    }
}

/// Every argument as an array of `rows` rows (constants are expanded).
pub fn arrays(args: &[ColumnarValue], rows: usize) -> Result<Vec<ArrayRef>> {
    args.iter().map(|a| a.to_array(rows)).collect()
}

/// The argument at `i` as an array of `rows` rows (constants are expanded).
pub fn array_arg(args: &[ColumnarValue], i: usize, rows: usize) -> Result<ArrayRef> {
    args.get(i)
        .ok_or_else(|| DataFusionError::Plan(format!("missing argument {}", i + 1)))?
        .to_array(rows)
}

/// The argument at `i`, which must be a constant string; `None` when absent.
pub fn str_arg(args: &[ColumnarValue], i: usize, func: &str, what: &str) -> Result<Option<String>> {
    match args.get(i) {
        None => Ok(None),
        Some(ColumnarValue::Scalar(s)) => match s {
            ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
                Ok(v.clone())
            }
            other => Err(DataFusionError::Plan(format!(
                "{func}: {what} must be a string constant, got {}",
                other.data_type()
            ))),
        },
        Some(ColumnarValue::Array(a)) => Err(DataFusionError::Plan(format!(
            "{func}: {what} must be a constant, got a column of {}",
            a.data_type()
        ))),
    }
}

/// The argument at `i`, which must be a constant integer; `None` when absent.
pub fn int_arg(args: &[ColumnarValue], i: usize, func: &str, what: &str) -> Result<Option<i64>> {
    let bad = |t: String| {
        DataFusionError::Plan(format!(
            "{func}: {what} must be an integer constant, got {t}"
        ))
    };
    match args.get(i) {
        None => Ok(None),
        Some(ColumnarValue::Scalar(s)) => {
            if s.is_null() {
                return Ok(None);
            }
            match s {
                ScalarValue::Int8(Some(v)) => Ok(Some(i64::from(*v))),
                ScalarValue::Int16(Some(v)) => Ok(Some(i64::from(*v))),
                ScalarValue::Int32(Some(v)) => Ok(Some(i64::from(*v))),
                ScalarValue::Int64(Some(v)) => Ok(Some(*v)),
                ScalarValue::UInt8(Some(v)) => Ok(Some(i64::from(*v))),
                ScalarValue::UInt16(Some(v)) => Ok(Some(i64::from(*v))),
                ScalarValue::UInt32(Some(v)) => Ok(Some(i64::from(*v))),
                ScalarValue::UInt64(Some(v)) => i64::try_from(*v)
                    .map(Some)
                    .map_err(|_| bad(format!("{v} (too large)"))),
                other => Err(bad(other.data_type().to_string())),
            }
        }
        Some(ColumnarValue::Array(a)) => Err(bad(format!("a column of {}", a.data_type()))),
    }
}

/// A non-negative integer constant that fits u32.
pub fn u32_arg(args: &[ColumnarValue], i: usize, func: &str, what: &str) -> Result<u32> {
    let v = int_arg(args, i, func, what)?
        .ok_or_else(|| DataFusionError::Plan(format!("{func}: missing {what}")))?;
    u32::try_from(v).map_err(|_| {
        DataFusionError::Plan(format!("{func}: {what} must be in 0..=4294967295, got {v}"))
    })
}

/// Wraps a row-level failure so the morsel operator can add the row's context.
pub fn row_error(
    function: &'static str,
    row: usize,
    source_value: Option<String>,
    message: String,
) -> DataFusionError {
    DataFusionError::External(Box::new(crate::EngineError::Row {
        function,
        row,
        source_value,
        message,
    }))
}

/// Checks an argument count against an inclusive range.
pub fn check_arity(func: &str, n: usize, min: usize, max: usize, usage: &str) -> Result<()> {
    if n < min || n > max {
        return Err(DataFusionError::Plan(format!(
            "{func} takes {} arguments, got {n}; usage: {usage}",
            if min == max {
                min.to_string()
            } else {
                format!("{min} to {max}")
            }
        )));
    }
    Ok(())
}

/// Rows that are valid in `a`.
pub fn is_valid(a: &dyn Array, i: usize) -> bool {
    a.is_valid(i)
}
