//! Pixel work on single images, free of Arrow: decode with a bomb guard, encode,
//! resize, crop and mode conversion. The Arrow functions in [`crate::functions`]
//! call these row by row.

mod codec;
mod mode;
mod transform;

pub use codec::{decode, encode, DecodeLimits, EncodeFormat};
pub use mode::ImageMode;
pub use transform::{convert, crop, resize};

/// An owned decoded image: interleaved 8-bit pixels, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedImage {
    pub pixels: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub mode: ImageMode,
}

/// Why one image could not be processed. Row context is added by the caller.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("empty input (0 bytes)")]
    Empty,
    #[error("not a recognised image format (first bytes {0})")]
    UnknownFormat(String),
    #[error("image declares {width}x{height} pixels, over the limit of {limit} decoded bytes (decompression-bomb guard)")]
    TooLarge { width: u32, height: u32, limit: u64 },
    #[error("cannot decode: {0}")]
    Decode(String),
    #[error("cannot encode: {0}")]
    Encode(String),
    #[error("unknown image mode {0:?}; use one of RGB, RGBA, L, LA")]
    UnknownMode(String),
    #[error("invalid geometry: {0}")]
    Geometry(String),
}

impl From<ImageError> for datafusion::error::DataFusionError {
    fn from(e: ImageError) -> Self {
        datafusion::error::DataFusionError::Execution(e.to_string())
    }
}
