//! The audio functions: `audio_decode(bytes [, sample_rate [, mono [, on_error]]])`
//! and the decoded audio's `audio_duration`, `audio_sample_rate`,
//! `audio_channels`. One [`AudioFunction`] type serves every name.
//!
//! Decoded audio is `Struct{samples: LargeList<Float32>, sample_rate: Int32,
//! channels: Int32}`, samples interleaved in [-1, 1].

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float32Builder, Float64Builder, Int32Builder, LargeListBuilder,
    StructArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Int32Type};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{array_arg, check_arity, int_arg, str_arg, OnError};
use crate::audio;
use crate::decoder_guard::{guarded_within, limit_from_ms};

/// Which audio function this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioOp {
    Decode,
    Duration,
    SampleRate,
    Channels,
}

impl AudioOp {
    pub const ALL: [AudioOp; 4] = [
        Self::Decode,
        Self::Duration,
        Self::SampleRate,
        Self::Channels,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Decode => "audio_decode",
            Self::Duration => "audio_duration",
            Self::SampleRate => "audio_sample_rate",
            Self::Channels => "audio_channels",
        }
    }

    /// Decoding is the expensive one.
    pub fn is_expensive(self) -> bool {
        self == Self::Decode
    }
}

/// The Arrow type of decoded audio.
pub fn audio_type() -> DataType {
    DataType::Struct(audio_fields())
}

fn audio_fields() -> Fields {
    Fields::from(vec![
        Field::new(
            "samples",
            DataType::LargeList(Arc::new(Field::new("item", DataType::Float32, false))),
            false,
        ),
        Field::new("sample_rate", DataType::Int32, false),
        Field::new("channels", DataType::Int32, false),
    ])
}

const DECODE_USAGE: &str = "audio_decode(bytes [, sample_rate [, mono [, on_error \
     'raise'|'null'|'skip'|'record' [, timeout_ms (0 = none)]]]])";

/// One of the audio functions.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AudioFunction {
    op: AudioOp,
    signature: Signature,
}

impl AudioFunction {
    pub fn new(op: AudioOp) -> Self {
        Self {
            op,
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

fn bool_arg(args: &[ColumnarValue], i: usize, what: &str) -> Result<Option<bool>> {
    match args.get(i) {
        None => Ok(None),
        Some(ColumnarValue::Scalar(ScalarValue::Boolean(b))) => Ok(*b),
        Some(ColumnarValue::Scalar(s)) if s.data_type().is_integer() => {
            Ok(Some(!s.is_null() && s.to_string() != "0"))
        }
        Some(other) => Err(DataFusionError::Plan(format!(
            "audio_decode: {what} must be a boolean constant, got {}",
            other.data_type()
        ))),
    }
}

impl AudioFunction {
    fn decode(&self, input: &ArrayRef, args: &[ColumnarValue]) -> Result<ArrayRef> {
        let rate = int_arg(args, 1, self.op.name(), "sample_rate")?.unwrap_or(0);
        if !(0..=768_000).contains(&rate) {
            return Err(DataFusionError::Plan(format!(
                "audio_decode: sample_rate must be 0 (keep) or a rate up to 768000 Hz, got {rate}"
            )));
        }
        let mono = bool_arg(args, 2, "mono")?.unwrap_or(false);
        let on_error = match str_arg(args, 3, self.op.name(), "on_error")? {
            Some(s) => OnError::parse(&s)?,
            None => OnError::Raise,
        };
        // Decoding and resampling together, per row; no limit by default.
        let limit = limit_from_ms(
            int_arg(args, 4, self.op.name(), "timeout_ms")?,
            "audio_decode",
        )
        .map_err(DataFusionError::Plan)?;
        let bytes = cast(input, &DataType::Binary)?;
        let bytes = bytes.as_binary::<i32>();
        let mut samples = LargeListBuilder::new(Float32Builder::new())
            .with_field(Arc::new(Field::new("item", DataType::Float32, false)));
        let mut rates = Int32Builder::with_capacity(bytes.len());
        let mut channels = Int32Builder::with_capacity(bytes.len());
        let mut valid = Vec::with_capacity(bytes.len());
        for i in 0..bytes.len() {
            let decoded = if bytes.is_null(i) {
                None
            } else {
                let clip = bytes.value(i).to_vec();
                let got = guarded_within("audio", limit, move || {
                    audio::decode(clip).and_then(|a| {
                        let a = if mono { a.to_mono() } else { a };
                        audio::resample(&a, rate as u32)
                    })
                });
                match got {
                    Ok(a) => Some(a),
                    Err(e) => {
                        on_error.fail_decode("audio_decode", i, None, e)?;
                        None
                    }
                }
            };
            match decoded {
                Some(a) => {
                    samples.values().append_slice(&a.samples);
                    samples.append(true);
                    rates.append_value(a.sample_rate as i32);
                    channels.append_value(a.channels as i32);
                    valid.push(true);
                }
                None => {
                    samples.append(true); // an empty list under a null row
                    rates.append_value(0);
                    channels.append_value(0);
                    valid.push(false);
                }
            }
        }
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(samples.finish()),
            Arc::new(rates.finish()),
            Arc::new(channels.finish()),
        ];
        Ok(Arc::new(StructArray::try_new(
            audio_fields(),
            arrays,
            Some(valid.into()),
        )?))
    }

    fn info(&self, input: &ArrayRef) -> Result<ArrayRef> {
        let name = self.op.name();
        let s = input.as_struct_opt().ok_or_else(|| {
            DataFusionError::Plan(format!(
                "{name} expects decoded audio (audio_decode's result)"
            ))
        })?;
        let column = |n: &str| {
            s.column_by_name(n).ok_or_else(|| {
                DataFusionError::Plan(format!("{name}: the audio struct has no {n} field"))
            })
        };
        let rate = column("sample_rate")?.as_primitive::<Int32Type>().clone();
        let ch = column("channels")?.as_primitive::<Int32Type>().clone();
        Ok(match self.op {
            AudioOp::SampleRate | AudioOp::Channels => {
                let src = if self.op == AudioOp::SampleRate {
                    &rate
                } else {
                    &ch
                };
                let mut b = Int32Builder::with_capacity(s.len());
                for i in 0..s.len() {
                    b.append_option((!s.is_null(i)).then(|| src.value(i)));
                }
                Arc::new(b.finish())
            }
            _ => {
                let samples = column("samples")?.as_list::<i64>().clone();
                let mut b = Float64Builder::with_capacity(s.len());
                for i in 0..s.len() {
                    let secs = (!s.is_null(i) && rate.value(i) > 0 && ch.value(i) > 0).then(|| {
                        let n = samples.value_length(i) as f64;
                        n / f64::from(ch.value(i)) / f64::from(rate.value(i))
                    });
                    b.append_option(secs);
                }
                Arc::new(b.finish())
            }
        })
    }
}

impl ScalarUDFImpl for AudioFunction {
    fn name(&self) -> &str {
        self.op.name()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match self.op {
            AudioOp::Decode => {
                check_arity(self.op.name(), arg_types.len(), 1, 5, DECODE_USAGE)?;
                match &arg_types[0] {
                    DataType::Binary
                    | DataType::LargeBinary
                    | DataType::BinaryView
                    | DataType::Null => Ok(audio_type()),
                    other => Err(DataFusionError::Plan(format!(
                        "audio_decode expects encoded audio bytes, got {other}"
                    ))),
                }
            }
            op => {
                let usage = format!("{}(audio)", op.name());
                check_arity(op.name(), arg_types.len(), 1, 1, &usage)?;
                Ok(if op == AudioOp::Duration {
                    DataType::Float64
                } else {
                    DataType::Int32
                })
            }
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let input = array_arg(&args.args, 0, args.number_rows)?;
        let out = match self.op {
            AudioOp::Decode => self.decode(&input, &args.args)?,
            _ => self.info(&input)?,
        };
        Ok(ColumnarValue::Array(out))
    }
}
