//! [`RowErrorSink`]: one query's failed rows (`on_error = 'skip' | 'record'`),
//! their counts against the failure budget, and the error table they become.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{ArrayRef, StringBuilder, TimestampMillisecondBuilder, UInt32Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use crate::functions::row_failures::{redact_urls, RowErrorClass, RowFailure};
use crate::{EngineError, Result};

/// How many failed rows a job may drop before it fails: a row count, a share
/// of the rows the failing operators read, or both (either passed fails it).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FailureBudget {
    pub max_failed_rows: Option<u64>,
    /// In [0, 1]. The default is 0.05, as most pipelines over crawled media
    /// expect a few broken inputs but not a broken source.
    pub max_failed_fraction: Option<f64>,
}

impl Default for FailureBudget {
    fn default() -> Self {
        Self {
            max_failed_rows: None,
            max_failed_fraction: Some(0.05),
        }
    }
}

impl FailureBudget {
    /// The budget with no limits (every row may fail).
    pub fn unlimited() -> Self {
        Self {
            max_failed_rows: None,
            max_failed_fraction: None,
        }
    }

    /// Checks the fraction and count, naming what was passed.
    pub fn check(&self, counts: RowFailureCounts) -> Result<()> {
        if let Some(max) = self.max_failed_rows {
            if counts.failed > max {
                return Err(EngineError::FailureBudget(format!(
                    "{} rows failed, more than max_failed_rows = {max}",
                    counts.failed
                )));
            }
        }
        if let Some(max) = self.max_failed_fraction {
            if counts.checked > 0 && counts.failed as f64 > max * counts.checked as f64 {
                return Err(EngineError::FailureBudget(format!(
                    "{} of {} rows failed ({:.1} %), more than max_failed_fraction = {max}",
                    counts.failed,
                    counts.checked,
                    100.0 * counts.failed as f64 / counts.checked as f64
                )));
            }
        }
        Ok(())
    }
}

/// What a job does with rows its functions give up on beyond `on_error`:
/// where recorded rows go and how many may fail.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RowErrorPolicy {
    /// A directory or object-store prefix for the error table; None: recorded
    /// rows are counted and logged, not kept.
    pub errors_url: Option<String>,
    pub budget: FailureBudget,
}

/// Rows failed (dropped under skip or record) and rows read by the operators
/// that could fail them (the largest of those operators' inputs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RowFailureCounts {
    pub failed: u64,
    pub checked: u64,
}

/// Both counts summed (tasks of one job).
impl std::ops::Add for RowFailureCounts {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            failed: self.failed + other.failed,
            checked: self.checked + other.checked,
        }
    }
}

/// One row of the error table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRow {
    /// The row's URL or path (query strings cut), when it has one.
    pub key: Option<String>,
    pub function: String,
    pub class: RowErrorClass,
    pub message: String,
    pub unix_ms: i64,
}

#[derive(Debug, Default)]
struct Inner {
    failed: u64,
    /// Rows read, per operator that evaluates functions which may fail rows.
    checked: HashMap<String, u64>,
    recorded: Vec<RecordedRow>,
}

/// Collects one query's (or one task's) failed rows. Put into the session
/// config as an extension (see [`crate::Engine::with_row_errors`]) so the
/// morsel operators find it; without one each operator keeps its own with
/// the default budget.
#[derive(Debug, Default)]
pub struct RowErrorSink {
    budget: FailureBudget,
    inner: Mutex<Inner>,
}

impl RowErrorSink {
    pub fn new(budget: FailureBudget) -> Arc<Self> {
        Arc::new(Self {
            budget,
            inner: Mutex::new(Inner::default()),
        })
    }

    pub fn budget(&self) -> FailureBudget {
        self.budget
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves counts that are still counts.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes that `operator` read `rows` more rows.
    pub fn add_checked(&self, operator: &str, rows: u64) {
        *self.lock().checked.entry(operator.to_string()).or_default() += rows;
    }

    /// Takes the rows one morsel failed, `keys[i]` the i-th failure's row key.
    /// Fails once `max_failed_rows` is passed (the fraction is judged at the end).
    pub fn add_failures(&self, failures: Vec<(RowFailure, Option<String>)>) -> Result<()> {
        let now = chrono_now_ms();
        let counts = {
            let mut inner = self.lock();
            for (f, key) in failures {
                inner.failed += 1;
                if f.record {
                    inner.recorded.push(RecordedRow {
                        key: key.map(|k| redact_urls(&k)),
                        function: f.function.to_string(),
                        class: f.class,
                        message: redact_urls(&f.message),
                        unix_ms: now,
                    });
                }
            }
            counts_of(&inner)
        };
        FailureBudget {
            max_failed_fraction: None,
            ..self.budget
        }
        .check(counts)
    }

    pub fn counts(&self) -> RowFailureCounts {
        counts_of(&self.lock())
    }

    /// Checks the whole budget against what was counted so far.
    pub fn check(&self) -> Result<()> {
        self.budget.check(self.counts())
    }

    /// The recorded rows so far, taken out.
    pub fn take_recorded(&self) -> Vec<RecordedRow> {
        std::mem::take(&mut self.lock().recorded)
    }
}

fn counts_of(inner: &Inner) -> RowFailureCounts {
    RowFailureCounts {
        failed: inner.failed,
        checked: inner.checked.values().copied().max().unwrap_or(0),
    }
}

fn chrono_now_ms() -> i64 {
    regatta_common::unix_ms_now() as i64
}

/// The error table's schema: one row per recorded failure.
pub fn error_table_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, true),
        Field::new("function", DataType::Utf8, false),
        Field::new("error_class", DataType::Utf8, false),
        Field::new("message", DataType::Utf8, false),
        Field::new("attempt", DataType::UInt32, false),
        Field::new("job_id", DataType::Utf8, false),
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
    ]))
}

/// `rows` as one batch of the error table, for job `job` attempt `attempt`.
pub fn error_table_batch(rows: &[RecordedRow], job: &str, attempt: u32) -> Result<RecordBatch> {
    let mut key = StringBuilder::new();
    let mut function = StringBuilder::new();
    let mut class = StringBuilder::new();
    let mut message = StringBuilder::new();
    let mut job_id = StringBuilder::new();
    let mut time = TimestampMillisecondBuilder::new().with_timezone("UTC");
    for r in rows {
        key.append_option(r.key.as_deref());
        function.append_value(&r.function);
        class.append_value(r.class.as_str());
        message.append_value(&r.message);
        job_id.append_value(job);
        time.append_value(r.unix_ms);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(key.finish()),
        Arc::new(function.finish()),
        Arc::new(class.finish()),
        Arc::new(message.finish()),
        Arc::new(UInt32Array::from(vec![attempt; rows.len()])),
        Arc::new(job_id.finish()),
        Arc::new(time.finish()),
    ];
    Ok(RecordBatch::try_new(error_table_schema(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(record: bool) -> (RowFailure, Option<String>) {
        (
            RowFailure {
                function: "image_decode",
                row: 0,
                source: None,
                class: RowErrorClass::Data,
                message: "bad JPEG from https://h/x.jpg?sig=s3cret".into(),
                record,
            },
            Some("https://h/x.jpg?sig=s3cret".into()),
        )
    }

    #[test]
    fn budget_by_count_fails_as_soon_as_it_is_passed_and_by_fraction_at_the_end() {
        let sink = RowErrorSink::new(FailureBudget {
            max_failed_rows: Some(2),
            max_failed_fraction: Some(0.1),
        });
        sink.add_checked("op", 10);
        sink.add_checked("other", 4);
        sink.add_failures(vec![failure(true)]).unwrap();
        assert_eq!(
            sink.counts(),
            RowFailureCounts {
                failed: 1,
                checked: 10
            }
        );
        sink.check().unwrap();
        // 2 of 10 is over 10 %, but only the count is judged while running.
        sink.add_failures(vec![failure(false)]).unwrap();
        let err = sink.check().unwrap_err().to_string();
        assert!(err.contains("2 of 10 rows failed"), "{err}");
        let err = sink
            .add_failures(vec![failure(true)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_failed_rows = 2"), "{err}");
        // Only recorded rows are kept, their URLs cut at the query string.
        let rows = sink.take_recorded();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].key.as_deref(), Some("https://h/x.jpg"));
        assert!(!rows[0].message.contains("s3cret"));
        let batch = error_table_batch(&rows, "req-1", 2).unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.schema(), error_table_schema());
    }

    #[test]
    fn unlimited_budget_never_fails() {
        let sink = RowErrorSink::new(FailureBudget::unlimited());
        sink.add_checked("op", 1);
        sink.add_failures(vec![failure(true), failure(true)])
            .unwrap();
        sink.check().unwrap();
    }
}
