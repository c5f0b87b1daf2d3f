//! [`ModelUdf`]: a model pool called as a scalar function.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::model_pool::ModelPool;

/// Calls a [`ModelPool`] on whole morsels. The morsel operator feeds it exactly the
/// pool's batch size per call and keeps a bounded number of calls waiting.
#[derive(Clone)]
pub struct ModelUdf {
    pool: Arc<dyn ModelPool>,
    signature: Signature,
}

impl ModelUdf {
    /// A function named after `pool`'s model.
    pub fn new(pool: Arc<dyn ModelPool>) -> Self {
        Self {
            pool,
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }

    /// The pool behind this function.
    pub fn pool(&self) -> &Arc<dyn ModelPool> {
        &self.pool
    }
}

impl fmt::Debug for ModelUdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelUdf")
            .field("model", &self.pool.name())
            .finish()
    }
}

impl PartialEq for ModelUdf {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.pool, &other.pool)
    }
}
impl Eq for ModelUdf {}
impl std::hash::Hash for ModelUdf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.pool.name().hash(state)
    }
}

impl ScalarUDFImpl for ModelUdf {
    fn name(&self) -> &str {
        self.pool.name()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.pool.output_type())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = super::args::arrays(&args.args, rows)?;
        // The morsel operator calls this on a blocking thread, so waiting here holds
        // no async worker; the actors run on their own threads.
        let out = futures::executor::block_on(self.pool.infer(arrays, rows))?;
        if out.len() != rows {
            return Err(DataFusionError::Execution(format!(
                "model {} returned {} rows for {rows} input rows",
                self.pool.name(),
                out.len()
            )));
        }
        Ok(ColumnarValue::Array(out))
    }
}
