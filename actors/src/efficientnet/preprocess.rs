//! The input EfficientNet-Lite0 expects, made with regatta's own image operators:
//! shorter side resized to 256, the centre 224x224 cut out, RGB, `(x - 127) / 128`.

use regatta_engine::image::{self, DecodedImage, ImageError, ImageMode};
use regatta_engine::types::ImageRef;

/// The shorter side after the resize.
pub const RESIZE: u32 = 256;
/// The side of the square the network sees.
pub const CROP: u32 = 224;

fn view(img: &DecodedImage) -> ImageRef<'_> {
    ImageRef {
        pixels: &img.pixels,
        width: img.width,
        height: img.height,
        mode: img.mode,
    }
}

/// `src` as RGB, its shorter side resized to [`RESIZE`] (aspect kept, bilinear with
/// antialiasing, as `image_resize` does), then the centre [`CROP`]x[`CROP`].
pub fn center_crop(src: ImageRef<'_>) -> Result<DecodedImage, ImageError> {
    let rgb;
    let src = if src.mode == ImageMode::Rgb {
        src
    } else {
        rgb = image::convert(src, ImageMode::Rgb);
        view(&rgb)
    };
    let short = src.width.min(src.height).max(1);
    let scale = f64::from(RESIZE) / f64::from(short);
    let w = ((f64::from(src.width) * scale).round() as u32).max(CROP);
    let h = ((f64::from(src.height) * scale).round() as u32).max(CROP);
    let resized;
    let src = if (w, h) == (src.width, src.height) {
        src
    } else {
        resized = image::resize(src, w, h)?;
        view(&resized)
    };
    image::crop(src, (w - CROP) / 2, (h - CROP) / 2, CROP, CROP)
}

/// Writes `img` (RGB) into `dst` (`3 x width x height` values) as channel-major
/// floats `(x - 127) / 128`: the normalisation the TensorFlow-trained Lite models use.
pub fn normalise(img: &DecodedImage, dst: &mut [f32]) {
    let plane = img.width as usize * img.height as usize;
    debug_assert_eq!(dst.len(), 3 * plane);
    let (r, rest) = dst.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (i, px) in img.pixels.chunks_exact(3).enumerate() {
        r[i] = (f32::from(px[0]) - 127.0) / 128.0;
        g[i] = (f32::from(px[1]) - 127.0) / 128.0;
        b[i] = (f32::from(px[2]) - 127.0) / 128.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wide_grey_image_becomes_a_centred_rgb_crop() {
        // 600x300, left half black, right half white.
        let (w, h) = (600u32, 300u32);
        let pixels: Vec<u8> = (0..h)
            .flat_map(|_| (0..w).map(|x| if x < w / 2 { 0 } else { 255 }))
            .collect();
        let img = DecodedImage {
            pixels,
            width: w,
            height: h,
            mode: ImageMode::L,
        };
        let out = center_crop(view(&img)).expect("crop");
        assert_eq!(
            (out.width, out.height, out.mode),
            (CROP, CROP, ImageMode::Rgb)
        );
        // Resized to 512x256, the crop spans x in [144, 368): the edge at 256 sits at column 112.
        let px = |x: usize| out.pixels[(100 * CROP as usize + x) * 3];
        assert_eq!((px(0), px(100), px(124), px(223)), (0, 0, 255, 255));
        let mut floats = vec![f32::NAN; 3 * 224 * 224];
        normalise(&out, &mut floats);
        assert_eq!(floats.len(), 3 * 224 * 224);
        assert_eq!(floats[0], -127.0 / 128.0);
        assert_eq!(floats[2 * 224 * 224 + 223], 1.0);
    }
}
