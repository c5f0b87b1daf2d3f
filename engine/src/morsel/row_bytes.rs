//! How many bytes a batch's rows take, as the morsel sizer counts them.

use datafusion::arrow::array::{Array, ArrayData, BinaryViewArray, StringViewArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;

use crate::types::MAX_INLINE_VIEW;

/// Bytes a batch's rows take, counting only the slice of each buffer it uses.
pub(super) fn slice_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| {
            let data = c.to_data();
            let own = data
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size());
            own + view_value_bytes(&data)
        })
        .sum()
}

/// The bytes a view array's rows point at, in it and its children: Arrow's
/// slice size counts only the 16-byte views, so an image column (one buffer
/// per image) would look a hundred thousand times smaller than it is and the
/// morsel sizer would hand the resize hundreds of full-size images at once.
fn view_value_bytes(data: &ArrayData) -> usize {
    let lengths = |views: &[u128]| -> usize {
        views
            .iter()
            .map(|&v| v as u32 as usize)
            .filter(|&len| len > MAX_INLINE_VIEW)
            .sum()
    };
    let own = match data.data_type() {
        DataType::BinaryView => lengths(BinaryViewArray::from(data.clone()).views()),
        DataType::Utf8View => lengths(StringViewArray::from(data.clone()).views()),
        _ => 0,
    };
    own + data
        .child_data()
        .iter()
        .map(view_value_bytes)
        .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{DecodedImage, ImageMode};
    use crate::types::{image_type, ImageColumnBuilder};
    use datafusion::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    #[test]
    fn a_slice_of_an_image_column_counts_the_pixels_its_rows_point_at() {
        let mut images = ImageColumnBuilder::with_capacity(3);
        for seed in 0..3u8 {
            let image = DecodedImage {
                pixels: vec![seed; 100 * 100 * 3],
                width: 100,
                height: 100,
                mode: ImageMode::Rgb,
            };
            images.append(image).expect("append");
        }
        let schema = Arc::new(Schema::new(vec![Field::new("img", image_type(), true)]));
        let batch = RecordBatch::try_new(schema, vec![images.finish()]).expect("batch");
        let two = batch.slice(1, 2);
        let bytes = slice_bytes(&two);
        assert!(
            (60_000..61_000).contains(&bytes),
            "two 100x100 RGB images take {bytes} bytes by the sizer's count"
        );
    }
}
