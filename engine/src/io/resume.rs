//! Resumable jobs: a rerun of a job that writes to the same output skips the
//! source rows whose keys the output already holds.
//!
//! The job's plan gets one filter, `resume_pending(key, output, format,
//! key_column, snapshot)`, which the optimiser pushes down to the source scan
//! (the key is a plain column of the source, so the filter commutes with every
//! projection above it): rows already written never reach a download, decoder
//! or model. The filter reads the output's key column once per process and
//! job (`snapshot`), whatever process runs it: a local session, or each
//! cluster worker, so no key crosses the driver. Exactly once per key follows
//! from the writers: every committed part or Lance version holds whole rows,
//! so a key is either in the output or its row is redone.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::{col, lit};
use futures::TryStreamExt;

use super::key_ranges::KeyRanges;
use super::sinks::FileFormat;
use crate::functions::args::{array_arg, str_arg};
use crate::{EngineError, Result};

/// The filter function's name.
pub const RESUME_PENDING: &str = "resume_pending";

/// Key sets kept per process: a worker runs a job's tasks one after another,
/// and each should not read the output again.
const CACHED_KEY_SETS: usize = 8;

/// What a resumable job checks its source rows against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeTarget {
    /// The job's output (a path or object-store URL).
    pub output: String,
    pub format: FileFormat,
    /// The key column, named as in the output (and in the source).
    pub key: String,
    /// Names this run: the key set is read once per snapshot and process.
    pub snapshot: String,
}

impl ResumeTarget {
    /// The filter keeping the rows whose key the output does not hold yet.
    pub fn filter(&self) -> Expr {
        ScalarUDF::new_from_impl(ResumePending::default()).call(vec![
            col(datafusion::common::Column::new_unqualified(&self.key)),
            lit(self.output.clone()),
            // The extension's word is a name FileFormat::parse reads back.
            lit(self.format.extension().trim_start_matches('.')),
            lit(self.key.clone()),
            lit(self.snapshot.clone()),
        ])
    }

    /// Rows this process skipped so far because the output held their key.
    pub fn skipped_rows(&self) -> u64 {
        cached(self)
            .and_then(|cell| cell.get().and_then(|r| r.as_ref().ok().cloned()))
            .map_or(0, |set| set.skipped.load(Ordering::Relaxed))
    }
}

/// The keys an output holds.
pub struct KeySet {
    held: Held,
    skipped: AtomicU64,
}

/// How a [`KeySet`] holds its keys, chosen by the output's key type.
enum Held {
    /// Nothing read yet (no output, or an empty one).
    Nothing,
    /// Integer keys (up to 64 bits signed, 32 unsigned) as ranges: memory grows
    /// with the runs of consecutive ids, not with the keys.
    Integers(KeyRanges),
    /// Any other type (strings, URLs, 64-bit unsigned): each key's bytes in
    /// arrow's row format, held as a 128-bit BLAKE3 fingerprint, 16 bytes
    /// whatever the key's length. Two different keys share one with odds near
    /// 2^-128 per pair (a billion keys: about 10^-21 that any pair does), and a
    /// cryptographic hash leaves no way to make a key collide on purpose.
    Rows {
        data_type: DataType,
        keys: HashSet<u128>,
    },
}

/// A key's fingerprint: the first 128 bits of the BLAKE3 hash of its bytes.
fn fingerprint(bytes: &[u8]) -> u128 {
    let hash = blake3::hash(bytes);
    let mut first = [0u8; 16];
    first.copy_from_slice(&hash.as_bytes()[..16]);
    u128::from_le_bytes(first)
}

/// Each row's fingerprint of `column` read as `data_type` (`None` for a null).
fn fingerprints(column: &ArrayRef, data_type: &DataType) -> Result<Vec<Option<u128>>> {
    let column = if column.data_type() == data_type {
        column.clone()
    } else {
        cast(column, data_type)?
    };
    let rows = converter(data_type)?.convert_columns(std::slice::from_ref(&column))?;
    Ok((0..column.len())
        .map(|i| {
            column
                .is_valid(i)
                .then(|| fingerprint(rows.row(i).as_ref()))
        })
        .collect())
}

/// Key types whose every value is an `i64` exactly.
fn fits_i64(data_type: &DataType) -> bool {
    use DataType::*;
    matches!(
        data_type,
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32
    )
}

/// `column` as `Int64` (values that do not convert are null).
fn as_i64(column: &ArrayRef) -> Result<Int64Array> {
    let wide = cast(column, &DataType::Int64)?;
    wide.as_primitive_opt::<Int64Type>()
        .cloned()
        .ok_or_else(|| {
            EngineError::Arrow(ArrowError::CastError(format!(
                "resume keys of type {} did not convert to Int64",
                column.data_type()
            )))
        })
}

impl KeySet {
    fn empty() -> Self {
        Self {
            held: Held::Nothing,
            skipped: AtomicU64::new(0),
        }
    }

    /// How many keys the output holds.
    pub fn len(&self) -> u64 {
        match &self.held {
            Held::Nothing => 0,
            Held::Integers(ranges) => ranges.keys(),
            Held::Rows { keys, .. } => keys.len() as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert_all(&mut self, column: &ArrayRef) -> Result<()> {
        if matches!(self.held, Held::Nothing) {
            self.held = if fits_i64(column.data_type()) {
                Held::Integers(KeyRanges::default())
            } else {
                Held::Rows {
                    data_type: column.data_type().clone(),
                    keys: HashSet::new(),
                }
            };
        }
        match &mut self.held {
            Held::Nothing => {}
            Held::Integers(ranges) => {
                let mut values: Vec<i64> = as_i64(column)?.iter().flatten().collect();
                ranges.insert_all(&mut values);
            }
            Held::Rows { data_type, keys } => {
                keys.extend(fingerprints(column, data_type)?.into_iter().flatten());
            }
        }
        Ok(())
    }

    /// True for each key the output does not hold (a null key never matches;
    /// a source key is compared as the output's key type).
    pub fn pending(&self, keys: &ArrayRef) -> Result<BooleanArray> {
        let pending: BooleanArray = match &self.held {
            Held::Nothing => BooleanArray::from(vec![true; keys.len()]),
            Held::Integers(ranges) => as_i64(keys)?
                .iter()
                .map(|k| Some(!k.is_some_and(|k| ranges.contains(k))))
                .collect(),
            Held::Rows {
                data_type,
                keys: set,
            } => fingerprints(keys, data_type)?
                .into_iter()
                .map(|f| Some(!f.is_some_and(|f| set.contains(&f))))
                .collect(),
        };
        let skipped = pending.len() - pending.true_count();
        self.skipped.fetch_add(skipped as u64, Ordering::Relaxed);
        Ok(pending)
    }
}

fn converter(data_type: &DataType) -> Result<RowConverter> {
    Ok(RowConverter::new(vec![SortField::new(data_type.clone())])?)
}

/// Reads the key column of `target`'s output: nothing when there is no output
/// yet. Only the key column is read.
pub async fn read_keys(target: &ResumeTarget) -> Result<KeySet> {
    let mut set = KeySet::empty();
    if !output_exists(target).await? {
        return Ok(set);
    }
    let engine = crate::Engine::new(crate::EngineOptions::default())?;
    const TABLE: &str = "regatta_resume_output";
    if target.format == FileFormat::Lance {
        engine
            .register_lance_fragments(TABLE, &target.output, false)
            .await?;
    } else {
        engine
            .register(TABLE, &target.output, target.format)
            .await?;
    }
    let df = engine.context().table(TABLE).await?;
    if df
        .schema()
        .field_with_unqualified_name(&target.key)
        .is_err()
    {
        return Err(EngineError::InvalidArgument(format!(
            "the output {} has no column {:?} to resume on",
            target.output, target.key
        )));
    }
    let mut stream = df
        .select(vec![col(datafusion::common::Column::new_unqualified(
            &target.key,
        ))])?
        .execute_stream()
        .await?;
    while let Some(batch) = stream.try_next().await? {
        set.insert_all(batch.column(0))?;
    }
    Ok(set)
}

/// Whether the output exists with something to read.
async fn output_exists(target: &ResumeTarget) -> Result<bool> {
    if target.format == FileFormat::Lance {
        return super::lance::anything_at(&target.output).await;
    }
    if crate::storage::is_object_url(&target.output) {
        let url = crate::storage::ObjectUrl::parse(&target.output)?;
        return crate::storage::remote::exists(&url).await;
    }
    let path = super::paths::local_path(&target.output)?;
    if path.is_file() {
        return Ok(true);
    }
    let Ok(entries) = std::fs::read_dir(&path) else {
        return Ok(false);
    };
    let ext = target.format.extension();
    Ok(entries
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().ends_with(ext)))
}

type KeySetCell = Arc<OnceLock<std::result::Result<Arc<KeySet>, String>>>;

fn cache() -> &'static Mutex<Vec<(String, KeySetCell)>> {
    static CACHE: OnceLock<Mutex<Vec<(String, KeySetCell)>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(Vec::new()))
}

fn cache_key(target: &ResumeTarget) -> String {
    format!("{}\0{}\0{}", target.snapshot, target.output, target.key)
}

fn cached(target: &ResumeTarget) -> Option<KeySetCell> {
    let key = cache_key(target);
    let entries = cache().lock().unwrap_or_else(|p| p.into_inner());
    entries
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, c)| c.clone())
}

/// The key set of `target`, read once per process and snapshot. The read runs
/// on a runtime of its own, so a function called on any thread can wait for it.
pub fn key_set(target: &ResumeTarget) -> Result<Arc<KeySet>> {
    let cell = {
        let key = cache_key(target);
        let mut entries = cache().lock().unwrap_or_else(|p| p.into_inner());
        match entries.iter().find(|(k, _)| *k == key) {
            Some((_, c)) => c.clone(),
            None => {
                let c: KeySetCell = Arc::default();
                if entries.len() >= CACHED_KEY_SETS {
                    entries.remove(0);
                }
                entries.push((key, c.clone()));
                c
            }
        }
    };
    let loaded = cell.get_or_init(|| {
        let target = target.clone();
        std::thread::scope(|s| {
            s.spawn(|| {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| format!("starting a runtime to read the keys: {e}"))?;
                runtime
                    .block_on(read_keys(&target))
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .join()
            .unwrap_or_else(|_| Err("reading the output's keys panicked".to_string()))
        })
    });
    loaded.clone().map_err(|e| {
        EngineError::InvalidArgument(format!(
            "resuming on {:?}: reading the keys of {}: {e}",
            target.key, target.output
        ))
    })
}

/// `resume_pending(key, output, format, key_column, snapshot)`: true for the
/// rows whose key the output does not hold yet.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ResumePending {
    signature: Signature,
}

impl Default for ResumePending {
    fn default() -> Self {
        Self {
            // Stable: the answer for a key holds for the whole query.
            signature: Signature::any(5, Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for ResumePending {
    fn name(&self) -> &str {
        RESUME_PENDING
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let text = |i: usize, what: &str| {
            str_arg(&args.args, i, RESUME_PENDING, what)?.ok_or_else(|| {
                DataFusionError::Plan(format!("{RESUME_PENDING}: {what} must not be null"))
            })
        };
        let target = ResumeTarget {
            output: text(1, "output")?,
            format: FileFormat::parse(&text(2, "format")?)
                .map_err(|e| DataFusionError::Plan(format!("{RESUME_PENDING}: {e}")))?,
            key: text(3, "key column")?,
            snapshot: text(4, "snapshot")?,
        };
        let keys = array_arg(&args.args, 0, args.number_rows)?;
        let set = key_set(&target).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let pending = set
            .pending(&keys)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(ColumnarValue::Array(Arc::new(pending)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};

    #[test]
    fn pending_is_false_exactly_for_held_keys_of_any_type() {
        let mut set = KeySet::empty();
        let held: ArrayRef = Arc::new(Int64Array::from(vec![1, 3, 5]));
        set.insert_all(&held).unwrap();
        // An Int32 source key is compared as the output's Int64.
        let probe: ArrayRef = Arc::new(datafusion::arrow::array::Int32Array::from(vec![
            Some(1),
            Some(2),
            None,
            Some(5),
        ]));
        let pending = set.pending(&probe).unwrap();
        assert_eq!(
            pending.iter().collect::<Vec<_>>(),
            vec![Some(false), Some(true), Some(true), Some(false)]
        );
        assert_eq!(set.skipped.load(Ordering::Relaxed), 2);

        let mut names = KeySet::empty();
        names
            .insert_all(&(Arc::new(StringArray::from(vec!["a.jpg"])) as ArrayRef))
            .unwrap();
        let probe: ArrayRef = Arc::new(StringArray::from(vec!["a.jpg", "b.jpg"]));
        assert_eq!(
            names.pending(&probe).unwrap().iter().collect::<Vec<_>>(),
            vec![Some(false), Some(true)]
        );
    }

    /// Integer ids are held as ranges (memory by runs, not keys); a type
    /// that does not fit an i64 falls back to the row format.
    #[test]
    fn integer_keys_are_held_as_ranges_and_others_as_rows() {
        let mut ids = KeySet::empty();
        for first in (0..10i64).rev().map(|b| b * 10_000) {
            let batch: ArrayRef = Arc::new(Int64Array::from_iter_values(first..first + 10_000));
            ids.insert_all(&batch).unwrap();
        }
        assert!(matches!(&ids.held, Held::Integers(r) if r.ranges() == 1));
        assert_eq!(ids.len(), 100_000);
        let probe: ArrayRef = Arc::new(Int64Array::from(vec![-1, 0, 99_999, 100_000]));
        assert_eq!(
            ids.pending(&probe).unwrap().iter().collect::<Vec<_>>(),
            vec![Some(true), Some(false), Some(false), Some(true)]
        );

        let mut wide = KeySet::empty();
        let big: ArrayRef = Arc::new(datafusion::arrow::array::UInt64Array::from(vec![u64::MAX]));
        wide.insert_all(&big).unwrap();
        assert!(matches!(wide.held, Held::Rows { .. }));
        assert_eq!(wide.pending(&big).unwrap().true_count(), 0);
    }

    #[test]
    fn an_empty_output_holds_nothing() {
        let set = KeySet::empty();
        let probe: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
        assert_eq!(set.pending(&probe).unwrap().true_count(), 2);
    }
}
