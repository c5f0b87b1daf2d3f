//! Decoding and encoding with the `image` crate.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

use super::{DecodedImage, ImageError, ImageMode};

/// Bounds on what a decoder may allocate, against decompression bombs: a small file
/// can declare billions of pixels.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Most decoded bytes one image may take (width x height x channels).
    pub max_decoded_bytes: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        // 256 MiB: a 9000x9000 RGB photo fits, a 100k x 100k PNG does not.
        Self {
            max_decoded_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Decodes encoded bytes (format sniffed) into `mode`. A decoder that panics
/// on hostile bytes gives an error, not a failed task.
pub fn decode(
    bytes: &[u8],
    mode: ImageMode,
    limits: DecodeLimits,
) -> Result<DecodedImage, ImageError> {
    let mut failed = None;
    let decoded = crate::decoder_guard::guarded("image", || {
        decode_unguarded(bytes, mode, limits).map_err(|e| {
            let text = e.to_string();
            failed = Some(e);
            text
        })
    });
    match (decoded, failed) {
        (Ok(img), _) => Ok(img),
        (Err(_), Some(e)) => Err(e),
        (Err(panicked), None) => Err(ImageError::Decode(panicked)),
    }
}

fn decode_unguarded(
    bytes: &[u8],
    mode: ImageMode,
    limits: DecodeLimits,
) -> Result<DecodedImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Decode(e.to_string()))?;
    if reader.format().is_none() {
        let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
        return Err(ImageError::UnknownFormat(head.join(" ")));
    }
    // One decoder: read the declared size from the header, check it before any
    // pixel buffer exists, then decode with the allocation limit in place.
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| ImageError::Decode(e.to_string()))?;
    let (width, height) = decoder.dimensions();
    let decoded_bytes = u64::from(width) * u64::from(height) * 4;
    if decoded_bytes > limits.max_decoded_bytes {
        return Err(ImageError::TooLarge {
            width,
            height,
            limit: limits.max_decoded_bytes,
        });
    }
    let mut lim = Limits::default();
    lim.max_alloc = Some(limits.max_decoded_bytes.saturating_mul(2));
    decoder
        .set_limits(lim)
        .map_err(|e| ImageError::Decode(e.to_string()))?;
    let img = DynamicImage::from_decoder(decoder).map_err(|e| ImageError::Decode(e.to_string()))?;
    Ok(from_dynamic(img, mode))
}

/// Converts a decoder's output into the requested mode.
fn from_dynamic(img: DynamicImage, mode: ImageMode) -> DecodedImage {
    let (width, height) = (img.width(), img.height());
    let pixels = match mode {
        ImageMode::Rgb => match img {
            DynamicImage::ImageRgb8(b) => b.into_raw(),
            other => other.into_rgb8().into_raw(),
        },
        ImageMode::Rgba => img.into_rgba8().into_raw(),
        ImageMode::L => img.into_luma8().into_raw(),
        ImageMode::La => img.into_luma_alpha8().into_raw(),
    };
    DecodedImage {
        pixels,
        width,
        height,
        mode,
    }
}

/// Formats an image can be encoded to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeFormat {
    Jpeg,
    Png,
}

impl EncodeFormat {
    /// Parses `jpeg`/`jpg` or `png` (case-insensitive).
    pub fn parse(s: &str) -> Result<Self, ImageError> {
        match s.to_ascii_lowercase().as_str() {
            "jpeg" | "jpg" => Ok(Self::Jpeg),
            "png" => Ok(Self::Png),
            _ => Err(ImageError::Encode(format!(
                "unknown format {s:?}; use jpeg or png"
            ))),
        }
    }
}

/// Encodes pixels as JPEG (quality 90) or PNG.
pub fn encode(
    pixels: &[u8],
    width: u32,
    height: u32,
    mode: ImageMode,
    format: EncodeFormat,
) -> Result<Vec<u8>, ImageError> {
    let color = match mode {
        ImageMode::L => image::ExtendedColorType::L8,
        ImageMode::La => image::ExtendedColorType::La8,
        ImageMode::Rgb => image::ExtendedColorType::Rgb8,
        ImageMode::Rgba => image::ExtendedColorType::Rgba8,
    };
    let mut out = Vec::new();
    match format {
        EncodeFormat::Png => {
            let enc = image::codecs::png::PngEncoder::new(&mut out);
            image::ImageEncoder::write_image(enc, pixels, width, height, color)
                .map_err(|e| ImageError::Encode(e.to_string()))?;
        }
        EncodeFormat::Jpeg => {
            if matches!(mode, ImageMode::La | ImageMode::Rgba) {
                return Err(ImageError::Encode(format!(
                    "JPEG has no alpha channel; convert {} to RGB or L first",
                    mode.name()
                )));
            }
            let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
            image::ImageEncoder::write_image(enc, pixels, width, height, color)
                .map_err(|e| ImageError::Encode(e.to_string()))?;
        }
    }
    Ok(out)
}
