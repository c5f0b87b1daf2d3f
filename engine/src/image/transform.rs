//! Geometry and colour transforms.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::{DecodedImage, ImageError, ImageMode};
use crate::types::ImageRef as Pixels;

fn pixel_type(mode: ImageMode) -> PixelType {
    match mode {
        ImageMode::L => PixelType::U8,
        ImageMode::La => PixelType::U8x2,
        ImageMode::Rgb => PixelType::U8x3,
        ImageMode::Rgba => PixelType::U8x4,
    }
}

/// Resizes to exactly `width` x `height` (aspect ratio not kept) with a bilinear
/// filter whose support widens with the downscale factor (the `image` crate's
/// `Triangle`, Pillow's `BILINEAR`), using SIMD where the CPU has it.
pub fn resize(src: Pixels<'_>, width: u32, height: u32) -> Result<DecodedImage, ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::Geometry(format!(
            "cannot resize to {width}x{height}"
        )));
    }
    let pt = pixel_type(src.mode);
    let src_view = ImageRef::new(src.width, src.height, src.pixels, pt)
        .map_err(|e| ImageError::Geometry(e.to_string()))?;
    let mut dst = Image::new(width, height, pt);
    let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    Resizer::new()
        .resize(&src_view, &mut dst, &opts)
        .map_err(|e| ImageError::Geometry(e.to_string()))?;
    Ok(DecodedImage {
        pixels: dst.into_vec(),
        width,
        height,
        mode: src.mode,
    })
}

/// Cuts the `width` x `height` rectangle at (`x`, `y`).
pub fn crop(
    src: Pixels<'_>,
    x: u32,
    y: u32,
    width: u32,
    height: u32,
) -> Result<DecodedImage, ImageError> {
    let fits = x.checked_add(width).is_some_and(|r| r <= src.width)
        && y.checked_add(height).is_some_and(|b| b <= src.height);
    if !fits || width == 0 || height == 0 {
        return Err(ImageError::Geometry(format!(
            "crop {width}x{height} at ({x},{y}) does not fit a {}x{} image",
            src.width, src.height
        )));
    }
    let c = src.mode.channels() as usize;
    let row = src.width as usize * c;
    let mut pixels = Vec::with_capacity(width as usize * height as usize * c);
    for r in y..y + height {
        let start = r as usize * row + x as usize * c;
        pixels.extend_from_slice(&src.pixels[start..start + width as usize * c]);
    }
    Ok(DecodedImage {
        pixels,
        width,
        height,
        mode: src.mode,
    })
}

/// Converts between modes (grey uses ITU-R 601 luma, as Pillow does).
pub fn convert(src: Pixels<'_>, to: ImageMode) -> DecodedImage {
    let from = src.mode;
    let n = src.width as usize * src.height as usize;
    let cin = from.channels() as usize;
    let cout = to.channels() as usize;
    let mut out = Vec::with_capacity(n * cout);
    for p in src.pixels.chunks_exact(cin).take(n) {
        let (r, g, b, a) = match from {
            ImageMode::L => (p[0], p[0], p[0], 255),
            ImageMode::La => (p[0], p[0], p[0], p[1]),
            ImageMode::Rgb => (p[0], p[1], p[2], 255),
            ImageMode::Rgba => (p[0], p[1], p[2], p[3]),
        };
        match to {
            ImageMode::L => out.push(luma(r, g, b)),
            ImageMode::La => out.extend_from_slice(&[luma(r, g, b), a]),
            ImageMode::Rgb => out.extend_from_slice(&[r, g, b]),
            ImageMode::Rgba => out.extend_from_slice(&[r, g, b, a]),
        }
    }
    DecodedImage {
        pixels: out,
        width: src.width,
        height: src.height,
        mode: to,
    }
}

fn luma(r: u8, g: u8, b: u8) -> u8 {
    // L = R*299/1000 + G*587/1000 + B*114/1000, rounded.
    ((u32::from(r) * 299 + u32::from(g) * 587 + u32::from(b) * 114 + 500) / 1000) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(w: u32, h: u32, mode: ImageMode) -> DecodedImage {
        let n = (w * h) as usize * mode.channels() as usize;
        DecodedImage {
            pixels: (0..n).map(|i| (i % 251) as u8).collect(),
            width: w,
            height: h,
            mode,
        }
    }

    fn view(i: &DecodedImage) -> Pixels<'_> {
        Pixels {
            pixels: &i.pixels,
            width: i.width,
            height: i.height,
            mode: i.mode,
        }
    }

    #[test]
    fn resize_gives_requested_geometry() {
        let src = img(300, 200, ImageMode::Rgb);
        let out = resize(view(&src), 224, 224).unwrap();
        assert_eq!((out.width, out.height), (224, 224));
        assert_eq!(out.pixels.len(), 224 * 224 * 3);
    }

    #[test]
    fn resize_of_flat_image_keeps_its_value() {
        let src = DecodedImage {
            pixels: vec![77; 500 * 400 * 3],
            width: 500,
            height: 400,
            mode: ImageMode::Rgb,
        };
        let out = resize(view(&src), 224, 224).unwrap();
        assert!(out.pixels.iter().all(|&p| p == 77));
    }

    #[test]
    fn crop_takes_the_right_pixels_and_rejects_overflow() {
        let src = img(4, 3, ImageMode::L);
        let out = crop(view(&src), 1, 1, 2, 2).unwrap();
        assert_eq!(out.pixels, vec![5, 6, 9, 10]);
        assert!(crop(view(&src), 3, 0, 2, 1).is_err());
    }

    #[test]
    fn convert_rgb_to_grey_uses_luma() {
        let src = DecodedImage {
            pixels: vec![255, 0, 0, 0, 255, 0],
            width: 2,
            height: 1,
            mode: ImageMode::Rgb,
        };
        let out = convert(view(&src), ImageMode::L);
        assert_eq!(out.pixels, vec![76, 150]);
    }
}
