//! Arrow representations of regatta's multimodal types.
//!
//! * encoded image: `Binary` (the file's bytes, format sniffed when decoded);
//! * decoded image: `Struct{data: BinaryView, width: UInt32, height: UInt32, channels: UInt8, mode: Utf8}`
//!   with `data` holding row-major interleaved 8-bit pixels, each image in a
//!   buffer of its own (the decoder's, moved in, never copied; a filter then
//!   moves 16-byte views, not pixels). `LargeBinary` data (files written before
//!   the view type) is read too;
//! * embedding: `FixedSizeList<Float32>[dim]`;
//! * tensor: `Struct{data: List<Float32>, shape: List<Int32>}` (row-major, any rank).

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BinaryViewArray, BinaryViewBuilder, Float64Array, LargeBinaryArray,
    StringArray, StringBuilder, StructArray, UInt32Array, UInt32Builder, UInt8Builder,
};
use datafusion::arrow::buffer::{Buffer, NullBuffer};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::error::{DataFusionError, Result as DfResult};

use crate::image::{DecodedImage, ImageMode};

/// Field names of the decoded image struct.
pub const IMAGE_DATA: &str = "data";
pub const IMAGE_WIDTH: &str = "width";
pub const IMAGE_HEIGHT: &str = "height";
pub const IMAGE_CHANNELS: &str = "channels";
pub const IMAGE_MODE: &str = "mode";

/// The fields of a decoded image.
pub fn image_fields() -> Fields {
    Fields::from(vec![
        Field::new(IMAGE_DATA, DataType::BinaryView, false),
        Field::new(IMAGE_WIDTH, DataType::UInt32, false),
        Field::new(IMAGE_HEIGHT, DataType::UInt32, false),
        Field::new(IMAGE_CHANNELS, DataType::UInt8, false),
        Field::new(IMAGE_MODE, DataType::Utf8, false),
    ])
}

/// The Arrow type of a decoded image column.
pub fn image_type() -> DataType {
    DataType::Struct(image_fields())
}

/// True if `t` is the decoded image struct.
pub fn is_image_type(t: &DataType) -> bool {
    match t {
        DataType::Struct(f) => {
            f.len() == 5 && f.find(IMAGE_DATA).is_some() && f.find(IMAGE_MODE).is_some()
        }
        _ => false,
    }
}

/// The fields of a decoded image stored contiguously (`LargeBinary` pixels):
/// the layout regatta wrote before image columns became views, and what
/// Lance datasets hold (Lance would store a view as 32-bit-offset `Binary`).
fn contiguous_image_fields() -> Fields {
    image_fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::BinaryView => {
                Arc::new(f.as_ref().clone().with_data_type(DataType::LargeBinary))
            }
            _ => f.clone(),
        })
        .collect()
}

/// `t` with a view image type made contiguous; any other type as it is.
pub fn contiguous_image_type(t: &DataType) -> DataType {
    match t {
        DataType::Struct(f)
            if is_image_type(t)
                && f.find(IMAGE_DATA)
                    .is_some_and(|(_, d)| d.data_type() == &DataType::BinaryView) =>
        {
            DataType::Struct(contiguous_image_fields())
        }
        other => other.clone(),
    }
}

/// `array` with a view image column's pixels copied into one contiguous
/// buffer (see [`contiguous_image_type`]); any other array as it is.
pub fn contiguous_image_column(array: &ArrayRef) -> DfResult<ArrayRef> {
    let target = contiguous_image_type(array.data_type());
    if &target == array.data_type() {
        return Ok(array.clone());
    }
    let image = array
        .as_any()
        .downcast_ref::<StructArray>()
        .ok_or_else(|| DataFusionError::Internal("an image column that is not a struct".into()))?;
    let DataType::Struct(fields) = target else {
        return Err(DataFusionError::Internal(
            "a contiguous image type that is not a struct".into(),
        ));
    };
    let children = image
        .columns()
        .iter()
        .zip(fields.iter())
        .map(|(c, f)| Ok(datafusion::arrow::compute::cast(c, f.data_type())?))
        .collect::<DfResult<Vec<_>>>()?;
    Ok(Arc::new(StructArray::try_new(
        fields,
        children,
        image.nulls().cloned(),
    )?))
}

/// The Arrow type of an embedding column of `dim` dimensions.
pub fn embedding_type(dim: i32) -> DataType {
    DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), dim)
}

/// An embedding column from `dim` floats per row, row after row; rows that are null
/// in `nulls` still take `dim` (ignored) floats.
pub fn embedding_array(
    values: Vec<f32>,
    dim: usize,
    nulls: Option<NullBuffer>,
) -> std::result::Result<ArrayRef, datafusion::arrow::error::ArrowError> {
    let field = Arc::new(Field::new("item", DataType::Float32, true));
    let list = datafusion::arrow::array::FixedSizeListArray::try_new(
        field,
        dim as i32,
        Arc::new(datafusion::arrow::array::Float32Array::from(values)),
        nulls,
    )?;
    Ok(Arc::new(list))
}

/// The Arrow type of a tensor column.
pub fn tensor_type() -> DataType {
    DataType::Struct(tensor_fields())
}

/// The fields of a tensor.
pub fn tensor_fields() -> Fields {
    Fields::from(vec![
        Field::new(
            "data",
            DataType::List(Arc::new(Field::new("item", DataType::Float32, true))),
            false,
        ),
        Field::new(
            "shape",
            DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
            false,
        ),
    ])
}

/// Views longer than this point into a data buffer; shorter ones are inlined.
pub(crate) const MAX_INLINE_VIEW: usize = 12;

/// Builds a decoded-image column row by row.
pub struct ImageColumnBuilder {
    data: BinaryViewBuilder,
    width: UInt32Builder,
    height: UInt32Builder,
    channels: UInt8Builder,
    mode: StringBuilder,
    validity: Vec<bool>,
}

impl ImageColumnBuilder {
    /// A builder expecting about `rows` rows.
    pub fn with_capacity(rows: usize) -> Self {
        Self {
            data: BinaryViewBuilder::with_capacity(rows),
            width: UInt32Builder::with_capacity(rows),
            height: UInt32Builder::with_capacity(rows),
            channels: UInt8Builder::with_capacity(rows),
            mode: StringBuilder::with_capacity(rows, rows * 4),
            validity: Vec::with_capacity(rows),
        }
    }

    /// Appends one image, taking its pixel buffer as one of the column's
    /// buffers (no copy). Fails only for an image of 4 GiB or more, which a
    /// view cannot address.
    pub fn append(&mut self, img: DecodedImage) -> DfResult<()> {
        let len = img.pixels.len();
        if len <= MAX_INLINE_VIEW {
            self.data.append_value(&img.pixels);
        } else {
            let view_len = u32::try_from(len).ok().filter(|&l| l < u32::MAX);
            let Some(view_len) = view_len else {
                return Err(DataFusionError::Execution(format!(
                    "a {}x{} {} image takes {len} bytes; an image column holds at most 4 GiB per image",
                    img.width,
                    img.height,
                    img.mode.name()
                )));
            };
            let block = self.data.append_block(Buffer::from_vec(img.pixels));
            self.data.try_append_view(block, 0, view_len)?;
        }
        self.width.append_value(img.width);
        self.height.append_value(img.height);
        self.channels.append_value(img.mode.channels());
        self.mode.append_value(img.mode.name());
        self.validity.push(true);
        Ok(())
    }

    /// Appends a null row (child slots get empty placeholders, as Arrow requires).
    pub fn append_null(&mut self) {
        self.data.append_value(b"");
        self.width.append_value(0);
        self.height.append_value(0);
        self.channels.append_value(0);
        self.mode.append_value("");
        self.validity.push(false);
    }

    /// Finishes the column.
    pub fn finish(mut self) -> ArrayRef {
        let nulls = NullBuffer::from(self.validity);
        let children: Vec<ArrayRef> = vec![
            Arc::new(self.data.finish()),
            Arc::new(self.width.finish()),
            Arc::new(self.height.finish()),
            Arc::new(self.channels.finish()),
            Arc::new(self.mode.finish()),
        ];
        let nulls = if nulls.null_count() == 0 {
            None
        } else {
            Some(nulls)
        };
        Arc::new(StructArray::new(image_fields(), children, nulls))
    }
}

/// Read access to a decoded-image column.
pub struct ImageColumn<'a> {
    array: &'a StructArray,
    data: PixelData<'a>,
    width: &'a UInt32Array,
    height: &'a UInt32Array,
    mode: &'a StringArray,
}

impl<'a> ImageColumn<'a> {
    /// Views `array` as images, or says why it is not one.
    pub fn try_new(array: &'a dyn Array, function: &str) -> DfResult<Self> {
        let not_image = || {
            DataFusionError::Plan(format!(
                "{function} expects a decoded image (use image_decode first), got {}",
                array.data_type()
            ))
        };
        let array = array
            .as_any()
            .downcast_ref::<StructArray>()
            .ok_or_else(not_image)?;
        let child = |name: &str| array.column_by_name(name).ok_or_else(not_image);
        Ok(Self {
            array,
            data: PixelData::try_new(child(IMAGE_DATA)?.as_ref()).ok_or_else(not_image)?,
            width: child(IMAGE_WIDTH)?
                .as_any()
                .downcast_ref()
                .ok_or_else(not_image)?,
            height: child(IMAGE_HEIGHT)?
                .as_any()
                .downcast_ref()
                .ok_or_else(not_image)?,
            mode: child(IMAGE_MODE)?
                .as_any()
                .downcast_ref()
                .ok_or_else(not_image)?,
        })
    }

    /// Rows in the column.
    pub fn len(&self) -> usize {
        self.array.len()
    }

    /// True if the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.array.is_empty()
    }

    /// The width of row `i` (None when null).
    pub fn width(&self, i: usize) -> Option<u32> {
        self.array.is_valid(i).then(|| self.width.value(i))
    }

    /// The height of row `i` (None when null).
    pub fn height(&self, i: usize) -> Option<u32> {
        self.array.is_valid(i).then(|| self.height.value(i))
    }

    /// The mode name of row `i` (None when null).
    pub fn mode(&self, i: usize) -> Option<&'a str> {
        self.array.is_valid(i).then(|| self.mode.value(i))
    }

    /// The mean of every pixel byte of each image (null for null rows): the
    /// stand-in "model" of the benchmarks and the demo.
    pub fn mean_values(&self) -> DfResult<Float64Array> {
        let mut out = Vec::with_capacity(self.len());
        for i in 0..self.len() {
            out.push(self.get(i)?.map(|img| {
                let sum: u64 = img.pixels.iter().map(|&p| u64::from(p)).sum();
                sum as f64 / img.pixels.len().max(1) as f64
            }));
        }
        Ok(Float64Array::from(out))
    }

    /// Borrowed pixels and geometry of row `i` (None when null).
    pub fn get(&self, i: usize) -> DfResult<Option<ImageRef<'a>>> {
        if self.array.is_null(i) {
            return Ok(None);
        }
        let mode = ImageMode::parse(self.mode.value(i)).map_err(DataFusionError::from)?;
        let pixels = self.data.value(i);
        let (w, h) = (self.width.value(i), self.height.value(i));
        let want = w as usize * h as usize * mode.channels() as usize;
        if pixels.len() != want {
            return Err(DataFusionError::Execution(format!(
                "corrupt image struct at row {i}: {w}x{h} {} needs {want} bytes, has {}",
                mode.name(),
                pixels.len()
            )));
        }
        Ok(Some(ImageRef {
            pixels,
            width: w,
            height: h,
            mode,
        }))
    }
}

/// An image column's pixel child: views (what regatta writes) or one
/// contiguous buffer (columns written before the view type).
#[derive(Clone, Copy)]
enum PixelData<'a> {
    Views(&'a BinaryViewArray),
    Contiguous(&'a LargeBinaryArray),
}

impl<'a> PixelData<'a> {
    fn try_new(array: &'a dyn Array) -> Option<Self> {
        let any = array.as_any();
        any.downcast_ref()
            .map(Self::Views)
            .or_else(|| any.downcast_ref().map(Self::Contiguous))
    }

    fn value(self, i: usize) -> &'a [u8] {
        match self {
            Self::Views(a) => a.value(i),
            Self::Contiguous(a) => a.value(i),
        }
    }
}

/// A borrowed decoded image.
#[derive(Debug, Clone, Copy)]
pub struct ImageRef<'a> {
    pub pixels: &'a [u8],
    pub width: u32,
    pub height: u32,
    pub mode: ImageMode,
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{BooleanArray, RecordBatch, UInt8Array};
    use datafusion::arrow::compute::filter;
    use datafusion::arrow::datatypes::Schema;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use datafusion::parquet::arrow::ArrowWriter;

    fn rgb(width: u32, height: u32, seed: u8) -> DecodedImage {
        let n = (width * height * 3) as usize;
        DecodedImage {
            pixels: (0..n)
                .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
                .collect(),
            width,
            height,
            mode: ImageMode::Rgb,
        }
    }

    fn column(images: Vec<Option<DecodedImage>>) -> ArrayRef {
        let mut b = ImageColumnBuilder::with_capacity(images.len());
        for img in images {
            match img {
                Some(img) => b.append(img).expect("append"),
                None => b.append_null(),
            }
        }
        b.finish()
    }

    fn pixels_wanted(images: &[Option<DecodedImage>]) -> Vec<Option<Vec<u8>>> {
        images
            .iter()
            .map(|i| i.as_ref().map(|i| i.pixels.clone()))
            .collect()
    }

    fn pixels_of(array: &dyn Array) -> Vec<Option<Vec<u8>>> {
        let col = ImageColumn::try_new(array, "test").expect("an image column");
        (0..col.len())
            .map(|i| col.get(i).expect("row").map(|r| r.pixels.to_vec()))
            .collect()
    }

    #[test]
    fn pixels_are_moved_into_the_column_and_a_filter_keeps_sharing_them() {
        let big = rgb(40, 30, 1);
        let at = big.pixels.as_ptr();
        let array = column(vec![Some(rgb(5, 5, 9)), Some(big)]);
        let col = ImageColumn::try_new(array.as_ref(), "test").expect("image column");
        let row = col.get(1).expect("row").expect("not null");
        assert_eq!(row.pixels.as_ptr(), at, "the decoder's buffer, not a copy");

        let kept = filter(array.as_ref(), &BooleanArray::from(vec![false, true])).expect("filter");
        let col = ImageColumn::try_new(kept.as_ref(), "test").expect("image column");
        let row = col.get(0).expect("row").expect("not null");
        assert_eq!(row.pixels.as_ptr(), at, "a filter moves views, not pixels");
        assert_eq!((row.width, row.height), (40, 30));
    }

    #[test]
    fn tiny_images_and_nulls_keep_their_pixels() {
        // 2x2 RGB is 12 bytes: inlined in the view itself.
        let images = vec![
            Some(rgb(2, 2, 3)),
            None,
            Some(rgb(3, 3, 4)),
            Some(rgb(1, 1, 5)),
        ];
        let want = pixels_wanted(&images);
        assert_eq!(pixels_of(column(images).as_ref()), want);
    }

    #[test]
    fn image_columns_with_contiguous_pixels_are_still_read() {
        let px: Vec<u8> = (0..27).collect();
        let fields = Fields::from(vec![
            Field::new(IMAGE_DATA, DataType::LargeBinary, false),
            Field::new(IMAGE_WIDTH, DataType::UInt32, false),
            Field::new(IMAGE_HEIGHT, DataType::UInt32, false),
            Field::new(IMAGE_CHANNELS, DataType::UInt8, false),
            Field::new(IMAGE_MODE, DataType::Utf8, false),
        ]);
        let legacy = StructArray::new(
            fields,
            vec![
                Arc::new(LargeBinaryArray::from_vec(vec![px.as_slice()])),
                Arc::new(UInt32Array::from(vec![3])),
                Arc::new(UInt32Array::from(vec![3])),
                Arc::new(UInt8Array::from(vec![3])),
                Arc::new(StringArray::from(vec!["RGB"])),
            ],
            None,
        );
        assert_eq!(pixels_of(&legacy), vec![Some(px)]);
    }

    #[test]
    fn a_contiguous_copy_of_an_image_column_keeps_its_pixels_and_nulls() {
        let images = vec![Some(rgb(6, 5, 2)), None, Some(rgb(2, 2, 1))];
        let want = pixels_wanted(&images);
        let flat = contiguous_image_column(&column(images)).expect("contiguous");
        assert_eq!(flat.data_type(), &contiguous_image_type(&image_type()));
        assert_ne!(flat.data_type(), &image_type());
        assert_eq!(pixels_of(flat.as_ref()), want);
        let text: ArrayRef = Arc::new(StringArray::from(vec!["a"]));
        assert!(Arc::ptr_eq(
            &contiguous_image_column(&text).expect("as is"),
            &text
        ));
    }

    #[test]
    fn an_image_column_round_trips_through_parquet() {
        let images = vec![Some(rgb(17, 9, 2)), None, Some(rgb(2, 2, 8))];
        let want = pixels_wanted(&images);
        let schema = Arc::new(Schema::new(vec![Field::new("img", image_type(), true)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![column(images)]).expect("batch");
        let mut file = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut file, schema, None).expect("writer");
        writer.write(&batch).expect("write");
        writer.close().expect("close");
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(file))
            .expect("reader")
            .build()
            .expect("build");
        let got: Vec<RecordBatch> = reader.collect::<std::result::Result<_, _>>().expect("read");
        assert_eq!(got.len(), 1);
        assert!(is_image_type(got[0].column(0).data_type()));
        assert_eq!(pixels_of(got[0].column(0).as_ref()), want);
    }
}
