//! User batch functions: Rust code that sees a whole morsel of rows per call.
//!
//! The morsel operator feeds a batch function exactly `batch_size` rows per call
//! (the last call of a partition may get fewer).

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

type BatchFn = dyn Fn(&[ArrayRef]) -> Result<ArrayRef> + Send + Sync;

/// A named function over whole columns of a morsel.
#[derive(Clone)]
pub struct BatchUdf {
    name: String,
    return_type: DataType,
    batch_size: usize,
    func: Arc<BatchFn>,
    signature: Signature,
}

impl BatchUdf {
    /// A batch function `name` returning `return_type`, called with `batch_size` rows.
    pub fn new<F>(
        name: impl Into<String>,
        return_type: DataType,
        batch_size: usize,
        func: F,
    ) -> Self
    where
        F: Fn(&[ArrayRef]) -> Result<ArrayRef> + Send + Sync + 'static,
    {
        Self {
            name: name.into(),
            return_type,
            batch_size: batch_size.max(1),
            func: Arc::new(func),
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }

    /// Rows per call.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }
}

impl fmt::Debug for BatchUdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchUdf")
            .field("name", &self.name)
            .field("return_type", &self.return_type)
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

impl PartialEq for BatchUdf {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.func, &other.func)
    }
}
impl Eq for BatchUdf {}
impl std::hash::Hash for BatchUdf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl ScalarUDFImpl for BatchUdf {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.return_type.clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = super::args::arrays(&args.args, rows)?;
        let out = (self.func)(&arrays)?;
        if out.len() != rows {
            return Err(DataFusionError::Execution(format!(
                "batch function {} returned {} rows for {rows} input rows",
                self.name,
                out.len()
            )));
        }
        if out.data_type() != &self.return_type {
            return Err(DataFusionError::Execution(format!(
                "batch function {} declared {} but returned {}",
                self.name,
                self.return_type,
                out.data_type()
            )));
        }
        Ok(ColumnarValue::Array(out))
    }
}
