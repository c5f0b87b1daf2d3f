//! The image functions: decode, encode, resize, crop, convert, geometry and tensors.
//!
//! One [`ImageFunction`] type serves every name; its [`ImageOp`] says which.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, Int32Builder, ListBuilder, StringBuilder, StructArray,
    UInt32Builder, UInt8Builder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{array_arg, check_arity, int_arg, row_error, str_arg, u32_arg, OnError};
use crate::decoder_guard::{guarded_within, limit_from_ms};
use crate::image::{self, DecodeLimits, EncodeFormat, ImageMode};
use crate::types::{image_type, ImageColumn, ImageColumnBuilder};

/// Which image function this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageOp {
    Decode,
    Encode,
    Resize,
    Crop,
    Convert,
    Width,
    Height,
    Mode,
    ToTensor,
}

impl ImageOp {
    /// Every image function.
    pub const ALL: [ImageOp; 9] = [
        Self::Decode,
        Self::Encode,
        Self::Resize,
        Self::Crop,
        Self::Convert,
        Self::Width,
        Self::Height,
        Self::Mode,
        Self::ToTensor,
    ];

    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Decode => "image_decode",
            Self::Encode => "image_encode",
            Self::Resize => "image_resize",
            Self::Crop => "image_crop",
            Self::Convert => "image_convert",
            Self::Width => "image_width",
            Self::Height => "image_height",
            Self::Mode => "image_mode",
            Self::ToTensor => "image_to_tensor",
        }
    }

    fn usage(self) -> &'static str {
        match self {
            Self::Decode => {
                "image_decode(bytes [, mode 'RGB'|'RGBA'|'L'|'LA' [, on_error 'raise'|'null'|'skip'|'record' [, timeout_ms (0 = none)]]])"
            }
            Self::Encode => "image_encode(image, format 'jpeg'|'png')",
            Self::Resize => "image_resize(image, width, height)",
            Self::Crop => "image_crop(image, x, y, width, height)",
            Self::Convert => "image_convert(image, mode 'RGB'|'RGBA'|'L'|'LA')",
            Self::Width => "image_width(image)",
            Self::Height => "image_height(image)",
            Self::Mode => "image_mode(image)",
            Self::ToTensor => "image_to_tensor(image)",
        }
    }

    fn arity(self) -> (usize, usize) {
        match self {
            Self::Decode => (1, 4),
            Self::Encode | Self::Resize | Self::Convert => (2, 3),
            Self::Crop => (5, 5),
            Self::Width | Self::Height | Self::Mode | Self::ToTensor => (1, 1),
        }
    }

    /// True for the functions worth running in a concurrent morsel operator.
    pub fn is_expensive(self) -> bool {
        matches!(
            self,
            Self::Decode
                | Self::Encode
                | Self::Resize
                | Self::Crop
                | Self::Convert
                | Self::ToTensor
        )
    }
}

/// The Arrow type `image_to_tensor` returns: `Struct{data: List<UInt8>, shape: List<Int32>}`
/// with shape `[height, width, channels]`.
pub fn image_tensor_type() -> DataType {
    DataType::Struct(image_tensor_fields())
}

fn image_tensor_fields() -> Fields {
    Fields::from(vec![
        Field::new(
            "data",
            DataType::List(Arc::new(Field::new("item", DataType::UInt8, true))),
            false,
        ),
        Field::new(
            "shape",
            DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
            false,
        ),
    ])
}

/// One of the image scalar functions.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ImageFunction {
    op: ImageOp,
    signature: Signature,
    max_decoded_bytes: u64,
}

impl ImageFunction {
    /// The function `op` with the default decompression-bomb guard.
    pub fn new(op: ImageOp) -> Self {
        Self {
            op,
            signature: Signature::variadic_any(Volatility::Immutable),
            max_decoded_bytes: DecodeLimits::default().max_decoded_bytes,
        }
    }

    /// The function `op` with a custom decoded-size limit (only `image_decode` uses it).
    pub fn with_max_decoded_bytes(mut self, limit: u64) -> Self {
        self.max_decoded_bytes = limit;
        self
    }

    /// Which function this is.
    pub fn op(&self) -> ImageOp {
        self.op
    }
}

impl ScalarUDFImpl for ImageFunction {
    fn name(&self) -> &str {
        self.op.name()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let (min, max) = self.op.arity();
        check_arity(self.op.name(), arg_types.len(), min, max, self.op.usage())?;
        let first = &arg_types[0];
        if self.op == ImageOp::Decode {
            if !matches!(
                first,
                DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::Null
            ) {
                return Err(DataFusionError::Plan(format!(
                    "image_decode expects encoded bytes (Binary), got {first}; use url_download to fetch files"
                )));
            }
        } else if !crate::types::is_image_type(first) && first != &DataType::Null {
            return Err(DataFusionError::Plan(format!(
                "{} expects a decoded image (use image_decode first), got {first}",
                self.op.name()
            )));
        }
        Ok(match self.op {
            ImageOp::Decode | ImageOp::Resize | ImageOp::Crop | ImageOp::Convert => image_type(),
            ImageOp::Encode => DataType::Binary,
            ImageOp::Width | ImageOp::Height => DataType::UInt32,
            ImageOp::Mode => DataType::Utf8,
            ImageOp::ToTensor => image_tensor_type(),
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let input = array_arg(&args.args, 0, rows)?;
        let out = match self.op {
            ImageOp::Decode => self.decode(&input, &args.args)?,
            ImageOp::Width | ImageOp::Height => {
                let imgs = ImageColumn::try_new(input.as_ref(), self.op.name())?;
                let mut b = UInt32Builder::with_capacity(rows);
                for i in 0..imgs.len() {
                    let v = if self.op == ImageOp::Width {
                        imgs.width(i)
                    } else {
                        imgs.height(i)
                    };
                    b.append_option(v);
                }
                Arc::new(b.finish()) as ArrayRef
            }
            ImageOp::Mode => {
                let imgs = ImageColumn::try_new(input.as_ref(), self.op.name())?;
                let mut b = StringBuilder::with_capacity(rows, rows * 3);
                for i in 0..imgs.len() {
                    b.append_option(imgs.mode(i));
                }
                Arc::new(b.finish())
            }
            ImageOp::Encode => {
                let fmt = str_arg(&args.args, 1, self.op.name(), "format")?
                    .ok_or_else(|| DataFusionError::Plan("image_encode: missing format".into()))?;
                let fmt = EncodeFormat::parse(&fmt)?;
                let imgs = ImageColumn::try_new(input.as_ref(), self.op.name())?;
                let mut b = BinaryBuilder::with_capacity(rows, 0);
                for i in 0..imgs.len() {
                    match imgs.get(i)? {
                        None => b.append_null(),
                        Some(img) => {
                            let bytes =
                                image::encode(img.pixels, img.width, img.height, img.mode, fmt)
                                    .map_err(|e| {
                                        row_error("image_encode", i, None, e.to_string())
                                    })?;
                            b.append_value(bytes);
                        }
                    }
                }
                Arc::new(b.finish())
            }
            ImageOp::Resize | ImageOp::Crop | ImageOp::Convert => {
                self.transform(&input, &args.args)?
            }
            ImageOp::ToTensor => to_tensor(&input)?,
        };
        Ok(ColumnarValue::Array(out))
    }
}

impl ImageFunction {
    fn decode(&self, input: &ArrayRef, args: &[ColumnarValue]) -> Result<ArrayRef> {
        let name = self.op.name();
        let mode = match str_arg(args, 1, name, "mode")? {
            Some(m) => ImageMode::parse(&m)?,
            None => ImageMode::Rgb,
        };
        let on_error = match str_arg(args, 2, name, "on_error")? {
            Some(s) => OnError::parse(&s)?,
            None => OnError::Raise,
        };
        let limits = DecodeLimits {
            max_decoded_bytes: self.max_decoded_bytes,
        };
        // No deadline by default: each image then decodes on the operator's
        // own thread, with no thread started per row (decoder_guard).
        let deadline = limit_from_ms(int_arg(args, 3, name, "timeout_ms")?, name)
            .map_err(DataFusionError::Plan)?;
        let bytes = cast(input, &DataType::Binary)?;
        let bytes = bytes
            .as_any()
            .downcast_ref::<datafusion::arrow::array::BinaryArray>()
            .ok_or_else(|| DataFusionError::Internal("image bytes are not Binary".into()))?;
        let mut decoded: Vec<Option<image::DecodedImage>> = Vec::with_capacity(bytes.len());
        for i in 0..bytes.len() {
            if bytes.is_null(i) {
                decoded.push(None);
                continue;
            }
            // The array shares its buffers: a deadline's thread reads the row
            // where it lies; without one the decode runs right here.
            let images = bytes.clone();
            let got = guarded_within("image", deadline, move || {
                image::decode(images.value(i), mode, limits).map_err(|e| e.to_string())
            });
            match got {
                Ok(img) => decoded.push(Some(img)),
                Err(e) => {
                    on_error.fail_decode("image_decode", i, None, e)?;
                    decoded.push(None)
                }
            }
        }
        build_images(decoded)
    }

    /// `image_crop` with geometry per row (constants or columns, e.g. the boxes
    /// `detect_faces` gives); a null coordinate gives a null image.
    fn crop_rows(&self, imgs: &ImageColumn<'_>, args: &[ColumnarValue]) -> Result<ArrayRef> {
        let name = self.op.name();
        let rows = imgs.len();
        let [x, y, w, h] = [(1, "x"), (2, "y"), (3, "width"), (4, "height")]
            .map(|(i, what)| per_row_u32(args, i, rows, name, what));
        let (x, y, w, h) = (x?, y?, w?, h?);
        let mut results = Vec::with_capacity(rows);
        for i in 0..rows {
            let (Some(img), Some(x), Some(y), Some(w), Some(h)) =
                (imgs.get(i)?, x[i], y[i], w[i], h[i])
            else {
                results.push(None);
                continue;
            };
            let res = image::crop(img, x, y, w, h)
                .map_err(|e| row_error(self.op.name(), i, None, e.to_string()))?;
            results.push(Some(res));
        }
        build_images(results)
    }

    fn transform(&self, input: &ArrayRef, args: &[ColumnarValue]) -> Result<ArrayRef> {
        let name = self.op.name();
        let imgs = ImageColumn::try_new(input.as_ref(), name)?;
        if self.op == ImageOp::Crop {
            return self.crop_rows(&imgs, args);
        }
        let mut results: Vec<Option<image::DecodedImage>> = Vec::with_capacity(imgs.len());
        let (w, h, x, y, mode) = match self.op {
            ImageOp::Resize => (
                u32_arg(args, 1, name, "width")?,
                u32_arg(args, 2, name, "height")?,
                0,
                0,
                None,
            ),
            ImageOp::Crop => (
                u32_arg(args, 3, name, "width")?,
                u32_arg(args, 4, name, "height")?,
                u32_arg(args, 1, name, "x")?,
                u32_arg(args, 2, name, "y")?,
                None,
            ),
            _ => {
                let m = str_arg(args, 1, name, "mode")?
                    .ok_or_else(|| DataFusionError::Plan(format!("{name}: missing mode")))?;
                (0, 0, 0, 0, Some(ImageMode::parse(&m)?))
            }
        };
        for i in 0..imgs.len() {
            let Some(img) = imgs.get(i)? else {
                results.push(None);
                continue;
            };
            let res = match self.op {
                ImageOp::Resize => image::resize(img, w, h),
                ImageOp::Crop => image::crop(img, x, y, w, h),
                _ => Ok(image::convert(img, mode.unwrap_or(ImageMode::Rgb))),
            };
            let res = res.map_err(|e| row_error(self.op.name(), i, None, e.to_string()))?;
            results.push(Some(res));
        }
        build_images(results)
    }
}

/// Argument `i` for each of `rows` rows: a constant repeated, or a column of
/// integers (null stays null); values must fit in u32.
fn per_row_u32(
    args: &[ColumnarValue],
    i: usize,
    rows: usize,
    func: &str,
    what: &str,
) -> Result<Vec<Option<u32>>> {
    let array = match args.get(i) {
        Some(ColumnarValue::Array(a)) => a.clone(),
        _ => return Ok(vec![Some(u32_arg(args, i, func, what)?); rows]),
    };
    let ints = cast(&array, &DataType::Int64).map_err(|_| {
        DataFusionError::Plan(format!(
            "{func}: {what} must be an integer, got {}",
            array.data_type()
        ))
    })?;
    let ints = ints.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
    (0..ints.len())
        .map(|r| {
            if ints.is_null(r) {
                return Ok(None);
            }
            let v = ints.value(r);
            u32::try_from(v).map(Some).map_err(|_| {
                row_error(
                    IMAGE_CROP,
                    r,
                    None,
                    format!("{what} must be in 0..=4294967295, got {v}"),
                )
            })
        })
        .collect()
}

const IMAGE_CROP: &str = "image_crop";

/// One image column holding each image's own pixel buffer (moved, not copied).
fn build_images(images: Vec<Option<image::DecodedImage>>) -> Result<ArrayRef> {
    let mut out = ImageColumnBuilder::with_capacity(images.len());
    for img in images {
        match img {
            Some(img) => out.append(img)?,
            None => out.append_null(),
        }
    }
    Ok(out.finish())
}

fn to_tensor(input: &ArrayRef) -> Result<ArrayRef> {
    let imgs = ImageColumn::try_new(input.as_ref(), "image_to_tensor")?;
    let mut data = ListBuilder::new(UInt8Builder::new());
    let mut shape = ListBuilder::new(Int32Builder::new());
    let mut valid = Vec::with_capacity(imgs.len());
    for i in 0..imgs.len() {
        match imgs.get(i)? {
            None => {
                data.append(true);
                shape.append(true);
                valid.push(false);
            }
            Some(img) => {
                data.values().append_slice(img.pixels);
                data.append(true);
                shape.values().append_slice(&[
                    img.height as i32,
                    img.width as i32,
                    i32::from(img.mode.channels()),
                ]);
                shape.append(true);
                valid.push(true);
            }
        }
    }
    let nulls = datafusion::arrow::buffer::NullBuffer::from(valid);
    let nulls = (nulls.null_count() > 0).then_some(nulls);
    Ok(Arc::new(StructArray::new(
        image_tensor_fields(),
        vec![Arc::new(data.finish()), Arc::new(shape.finish())],
        nulls,
    )))
}
