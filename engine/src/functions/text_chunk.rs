//! `text_chunk(text, words [, overlap])`: cuts text into chunks of `words` words,
//! consecutive chunks sharing `overlap` words. Words are runs of non-whitespace;
//! a chunk's words are joined by one space. The last chunk may be shorter; no
//! word is ever dropped.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, ListBuilder, StringArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{array_arg, check_arity, int_arg};

pub const NAME: &str = "text_chunk";
const USAGE: &str = "text_chunk(text, words [, overlap])";

/// Splits `text` into chunks (see the module docs).
pub fn chunk_words(text: &str, words: usize, overlap: usize) -> Vec<String> {
    let all: Vec<&str> = text.split_whitespace().collect();
    let mut out = Vec::new();
    if all.is_empty() || words == 0 {
        return out;
    }
    let step = words.saturating_sub(overlap).max(1);
    let mut start = 0;
    loop {
        let end = (start + words).min(all.len());
        out.push(all[start..end].join(" "));
        if end == all.len() {
            break;
        }
        start += step;
    }
    out
}

/// `List<Utf8>`, for a text function whose first argument is `arg`'s type.
pub(crate) fn text_list_type(name: &str, arg: &DataType) -> Result<DataType> {
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

/// Each text of `text` cut into a list by `cut` (null stays null).
pub(crate) fn text_to_lists(
    text: &ArrayRef,
    cut: impl Fn(&str) -> Vec<String>,
) -> Result<ColumnarValue> {
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

/// The `text_chunk` scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TextChunk {
    signature: Signature,
}

impl Default for TextChunk {
    fn default() -> Self {
        Self {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for TextChunk {
    fn name(&self) -> &str {
        NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_arity(NAME, arg_types.len(), 2, 3, USAGE)?;
        text_list_type(NAME, &arg_types[0])
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let words = int_arg(&args.args, 1, NAME, "words")?
            .ok_or_else(|| DataFusionError::Plan(format!("{NAME}: missing words; {USAGE}")))?;
        let overlap = int_arg(&args.args, 2, NAME, "overlap")?.unwrap_or(0);
        if words < 1 || overlap < 0 || overlap >= words {
            return Err(DataFusionError::Plan(format!(
                "{NAME}: need words >= 1 and 0 <= overlap < words, got words={words}, overlap={overlap}"
            )));
        }
        text_to_lists(&array_arg(&args.args, 0, rows)?, |t| {
            chunk_words(t, words as usize, overlap as usize)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::chunk_words;

    #[test]
    fn keeps_the_last_partial_chunk() {
        assert_eq!(
            chunk_words("a b c d e f g", 3, 0),
            vec!["a b c", "d e f", "g"]
        );
        assert_eq!(chunk_words("a b", 3, 0), vec!["a b"]);
        assert!(chunk_words("", 3, 0).is_empty());
    }

    #[test]
    fn overlapping_chunks_share_words() {
        assert_eq!(chunk_words("a b c d e", 3, 1), vec!["a b c", "c d e"]);
        assert_eq!(chunk_words("a b c d e f", 4, 2), vec!["a b c d", "c d e f"]);
    }
}
