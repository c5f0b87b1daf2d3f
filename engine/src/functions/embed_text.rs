//! `embed_text(text, model)`: sentence embeddings from a named model.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::model_catalog::ModelCatalog;

/// The name `embed_text` is called by.
pub const EMBED_TEXT: &str = "embed_text";

/// Resolves `model` in the engine's [`ModelCatalog`] and calls that model's pool.
/// Planning rewrites the call into the model's own function, so the morsel operator
/// sees the pool (its batch size, its numbers).
#[derive(Debug, Clone)]
pub struct EmbedText {
    catalog: ModelCatalog,
    signature: Signature,
}

impl EmbedText {
    /// `embed_text` over the models of `catalog`.
    pub fn new(catalog: ModelCatalog) -> Self {
        Self {
            catalog,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl PartialEq for EmbedText {
    fn eq(&self, other: &Self) -> bool {
        self.signature == other.signature
    }
}
impl Eq for EmbedText {}
impl std::hash::Hash for EmbedText {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        EMBED_TEXT.hash(state)
    }
}

fn model_name(v: Option<&ScalarValue>) -> Result<String> {
    match v {
        Some(ScalarValue::Utf8(Some(s)))
        | Some(ScalarValue::LargeUtf8(Some(s)))
        | Some(ScalarValue::Utf8View(Some(s))) => Ok(s.clone()),
        _ => Err(DataFusionError::Plan(format!(
            "{EMBED_TEXT}: the model must be a string constant, as in {EMBED_TEXT}(caption, 'all-MiniLM-L6-v2')"
        ))),
    }
}

fn check_text(t: &DataType) -> Result<()> {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => Ok(()),
        other => Err(DataFusionError::Plan(format!(
            "{EMBED_TEXT}: the text must be a string column, got {other}"
        ))),
    }
}

impl ScalarUDFImpl for EmbedText {
    fn name(&self) -> &str {
        EMBED_TEXT
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Err(DataFusionError::Internal(format!(
            "{EMBED_TEXT}: return_field_from_args is used instead"
        )))
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        if let Some(f) = args.arg_fields.first() {
            check_text(f.data_type())?;
        }
        let name = model_name(args.scalar_arguments.get(1).copied().flatten())?;
        let udf = self.catalog.udf(&name)?;
        let t = udf.return_type(&[])?;
        Ok(Arc::new(Field::new(EMBED_TEXT, t, true)))
    }
    fn simplify(&self, args: Vec<Expr>, _info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        let name = match args.get(1) {
            Some(Expr::Literal(v, _)) => model_name(Some(v))?,
            _ => return Ok(ExprSimplifyResult::Original(args)),
        };
        let udf = self.catalog.udf(&name)?;
        let text = args.into_iter().next().ok_or_else(|| {
            DataFusionError::Plan(format!("{EMBED_TEXT}: missing the text argument"))
        })?;
        Ok(ExprSimplifyResult::Simplified(udf.call(vec![text])))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // Only reached when planning did not rewrite the call.
        let name = match args.args.get(1) {
            Some(ColumnarValue::Scalar(v)) => model_name(Some(v))?,
            _ => model_name(None)?,
        };
        let udf = self.catalog.udf(&name)?;
        let rows = args.number_rows;
        let text = args
            .args
            .into_iter()
            .next()
            .ok_or_else(|| DataFusionError::Plan(format!("{EMBED_TEXT}: missing the text")))?;
        let inner = ScalarFunctionArgs {
            args: vec![text],
            arg_fields: args.arg_fields.into_iter().take(1).collect(),
            number_rows: rows,
            return_field: args.return_field,
            config_options: args.config_options,
        };
        udf.invoke_with_args(inner)
    }
}
