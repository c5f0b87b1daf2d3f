//! `video_metadata(bytes [, on_error])`: a video's duration, frame rate, size,
//! codec and frame count, read from its container without decoding frames.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Builder, StringBuilder, StructArray, UInt32Builder,
    UInt64Builder,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{array_arg, check_arity, str_arg, OnError};
use super::row_failures::RowErrorClass;
use crate::video::{probe, VideoMetadata};

/// The name `video_metadata` is called by.
pub const VIDEO_METADATA: &str = "video_metadata";

const USAGE: &str = "video_metadata(bytes [, on_error 'raise'|'null'|'skip'|'record'])";

/// The fields `video_metadata` returns.
pub fn video_metadata_fields() -> Fields {
    Fields::from(vec![
        Field::new("duration", DataType::Float64, true),
        Field::new("fps", DataType::Float64, true),
        Field::new("width", DataType::UInt32, true),
        Field::new("height", DataType::UInt32, true),
        Field::new("codec", DataType::Utf8, true),
        Field::new("frame_count", DataType::UInt64, true),
    ])
}

/// `video_metadata`, see the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct VideoMetadataFunction {
    signature: Signature,
}

impl Default for VideoMetadataFunction {
    fn default() -> Self {
        Self {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

/// Probes video bytes (FFmpeg reads files: the bytes go to a temporary file first).
fn probe_bytes(bytes: &[u8]) -> std::result::Result<VideoMetadata, String> {
    if bytes.is_empty() {
        return Err("empty input (0 bytes)".into());
    }
    let mut tmp = tempfile::NamedTempFile::new().map_err(|e| format!("temporary file: {e}"))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(|e| format!("temporary file: {e}"))?;
    probe(tmp.path()).map_err(|e| e.to_string())
}

impl ScalarUDFImpl for VideoMetadataFunction {
    fn name(&self) -> &str {
        VIDEO_METADATA
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_arity(VIDEO_METADATA, arg_types.len(), 1, 2, USAGE)?;
        match &arg_types[0] {
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::Null => {
                Ok(DataType::Struct(video_metadata_fields()))
            }
            other => Err(DataFusionError::Plan(format!(
                "{VIDEO_METADATA} expects video bytes (url_download's result, say), got {other}; usage: {USAGE}"
            ))),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let input = array_arg(&args.args, 0, args.number_rows)?;
        let on_error = match str_arg(&args.args, 1, VIDEO_METADATA, "on_error")? {
            Some(s) => OnError::parse(&s)?,
            None => OnError::Raise,
        };
        let bytes = cast(&input, &DataType::Binary)?;
        let bytes = bytes.as_binary::<i32>();
        let n = bytes.len();
        let mut duration = Float64Builder::with_capacity(n);
        let mut fps = Float64Builder::with_capacity(n);
        let mut width = UInt32Builder::with_capacity(n);
        let mut height = UInt32Builder::with_capacity(n);
        let mut codec = StringBuilder::with_capacity(n, n * 5);
        let mut frames = UInt64Builder::with_capacity(n);
        let mut valid = Vec::with_capacity(n);
        for i in 0..n {
            let meta = if bytes.is_null(i) {
                None
            } else {
                match probe_bytes(bytes.value(i)) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        on_error.fail_row(VIDEO_METADATA, i, None, RowErrorClass::Data, e)?;
                        None
                    }
                }
            };
            valid.push(meta.is_some());
            duration.append_option(meta.as_ref().map(|m| m.duration_seconds));
            fps.append_option(meta.as_ref().map(|m| m.fps));
            width.append_option(meta.as_ref().map(|m| m.width));
            height.append_option(meta.as_ref().map(|m| m.height));
            codec.append_option(meta.as_ref().map(|m| m.codec.as_str()));
            frames.append_option(meta.as_ref().map(|m| m.frame_count));
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(duration.finish()),
            Arc::new(fps.finish()),
            Arc::new(width.finish()),
            Arc::new(height.finish()),
            Arc::new(codec.finish()),
            Arc::new(frames.finish()),
        ];
        let nulls = NullBuffer::from(valid);
        let nulls = (nulls.null_count() > 0).then_some(nulls);
        Ok(ColumnarValue::Array(Arc::new(StructArray::try_new(
            video_metadata_fields(),
            columns,
            nulls,
        )?)))
    }
}
