//! The text-cutting functions, one scalar function type for both:
//! `text_chunk(text, words [, overlap])` (words, text_chunk.rs) and
//! `text_split(text, chunk_size [, overlap])` (characters, text_split.rs).
//! Each text becomes a `List<Utf8>` of its chunks; a null text stays null.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, ListBuilder, StringArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{array_arg, check_arity, int_arg};
use super::text_chunk::chunk_words;
use super::text_split::split_text;

/// How a text is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextOp {
    /// `text_chunk`: chunks of a number of words.
    Chunk,
    /// `text_split`: LangChain's recursive splitter, chunks of a number of characters.
    Split,
}

impl TextOp {
    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Chunk => "text_chunk",
            Self::Split => "text_split",
        }
    }

    /// What the size argument counts, as the usage line spells it.
    fn size_name(self) -> &'static str {
        match self {
            Self::Chunk => "words",
            Self::Split => "chunk_size",
        }
    }

    fn usage(self) -> String {
        format!("{}(text, {} [, overlap])", self.name(), self.size_name())
    }

    /// `text` cut into chunks of `size` sharing `overlap`.
    pub fn cut(self, text: &str, size: usize, overlap: usize) -> Vec<String> {
        match self {
            Self::Chunk => chunk_words(text, size, overlap),
            Self::Split => split_text(text, size, overlap),
        }
    }
}

/// A text-cutting scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TextFunction {
    op: TextOp,
    signature: Signature,
}

impl TextFunction {
    pub fn new(op: TextOp) -> Self {
        Self {
            op,
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for TextFunction {
    fn name(&self) -> &str {
        self.op.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let name = self.op.name();
        check_arity(name, arg_types.len(), 2, 3, &self.op.usage())?;
        let arg = &arg_types[0];
        if !matches!(
            arg,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
        ) {
            return Err(DataFusionError::Plan(format!(
                "{name} expects text, got {arg}"
            )));
        }
        Ok(DataType::List(Arc::new(Field::new(
            "item",
            DataType::Utf8,
            true,
        ))))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (op, name, what) = (self.op, self.op.name(), self.op.size_name());
        let size = int_arg(&args.args, 1, name, what)?.ok_or_else(|| {
            DataFusionError::Plan(format!("{name}: missing {what}; {}", op.usage()))
        })?;
        let overlap = int_arg(&args.args, 2, name, "overlap")?.unwrap_or(0);
        if size < 1 || overlap < 0 || overlap >= size {
            return Err(DataFusionError::Plan(format!(
                "{name}: need {what} >= 1 and 0 <= overlap < {what}, got {what}={size}, \
                 overlap={overlap}"
            )));
        }
        let text = array_arg(&args.args, 0, args.number_rows)?;
        text_to_lists(&text, |t| op.cut(t, size as usize, overlap as usize))
    }
}

/// Each text of `text` cut into a list by `cut` (null stays null).
fn text_to_lists(text: &ArrayRef, cut: impl Fn(&str) -> Vec<String>) -> Result<ColumnarValue> {
    let text = cast(text, &DataType::Utf8)?;
    let text = text
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| DataFusionError::Internal("text is not Utf8".into()))?;
    let mut out = ListBuilder::new(StringBuilder::with_capacity(
        text.len(),
        text.values().len(),
    ));
    for t in text.iter() {
        match t {
            None => out.append_null(),
            Some(t) => {
                for c in cut(t) {
                    out.values().append_value(c);
                }
                out.append(true);
            }
        }
    }
    Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
}
