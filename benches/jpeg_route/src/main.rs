//! W1's decode and resize, route by route, over a directory of JPEGs: each
//! image decoded, kept when both sides are at least 224 (as W1's filter), and
//! resized to 224 x 224 with the engine's filter (fast_image_resize, bilinear
//! convolution). Prints per route the images per second, the seconds spent
//! decoding, the images kept, and how far its thumbnails are from the first
//! route's (zune-jpeg's full decode, what the engine does today): the largest
//! difference of one value and the share of values more than 1 apart.
//! Single-threaded: one core's rate.

use std::time::Instant;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

/// The thumbnail side W1 resizes to, and the least both sides must keep.
const SIDE: u32 = 224;

/// RGB pixels and their width and height.
type Decoded = (Vec<u8>, u32, u32);

fn resize(px: &[u8], w: u32, h: u32) -> Option<Vec<u8>> {
    let src = ImageRef::new(w, h, px, PixelType::U8x3).ok()?;
    let mut dst = Image::new(SIDE, SIDE, PixelType::U8x3);
    let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    Resizer::new().resize(&src, &mut dst, &opts).ok()?;
    Some(dst.into_vec())
}

/// The largest DCT scale (in eighths: 1, 2 or 4) whose output keeps both
/// sides at least SIDE (`ceil(len * s / 8)`, libjpeg's rounding); None when
/// only the full size (8/8) does.
fn eighths(w: u32, h: u32) -> Option<u32> {
    let scaled = |len: u32, s: u32| (len * s).div_ceil(8);
    [1, 2, 4]
        .into_iter()
        .find(|&s| scaled(w, s) >= SIDE && scaled(h, s) >= SIDE)
}

fn zune(b: &[u8]) -> Option<Decoded> {
    let opts = zune_core::options::DecoderOptions::default()
        .jpeg_set_out_colorspace(zune_core::colorspace::ColorSpace::RGB);
    let mut d = zune_jpeg::JpegDecoder::new_with_options(std::io::Cursor::new(b), opts);
    let px = d.decode().ok()?;
    let (w, h) = d.dimensions()?;
    Some((px, w as u32, h as u32))
}

fn jpeg_decoder(b: &[u8], scaled: bool) -> Option<Decoded> {
    let mut d = jpeg_decoder::Decoder::new(std::io::Cursor::new(b));
    d.read_info().ok()?;
    let info = d.info()?;
    if scaled {
        let (w, h) = (u32::from(info.width), u32::from(info.height));
        if let Some(s) = eighths(w, h) {
            // jpeg-decoder picks the smallest scale reaching either side; asking
            // for exactly this scale's size makes that this scale.
            d.scale((w * s).div_ceil(8) as u16, (h * s).div_ceil(8) as u16)
                .ok()?;
        }
    }
    let px = d.decode().ok()?;
    let info = d.info()?;
    (info.pixel_format == jpeg_decoder::PixelFormat::RGB24)
        .then(|| (px, u32::from(info.width), u32::from(info.height)))
}

fn turbo(b: &[u8], scaled: bool) -> Option<Decoded> {
    let mut d = turbojpeg::Decompressor::new().ok()?;
    let header = d.read_header(b).ok()?;
    let (mut w, mut h) = (header.width as u32, header.height as u32);
    if scaled {
        if let Some(s) = eighths(w, h) {
            // TurboJPEG scales to the largest size that fits the buffer given.
            (w, h) = ((w * s).div_ceil(8), (h * s).div_ceil(8));
        }
    }
    let (wu, hu) = (w as usize, h as usize);
    let mut img = turbojpeg::Image {
        pixels: vec![0u8; wu * hu * 3],
        width: wu,
        pitch: wu * 3,
        height: hu,
        format: turbojpeg::PixelFormat::RGB,
    };
    d.decompress(b, img.as_deref_mut()).ok()?;
    Some((img.pixels, w, h))
}

type Route<'a> = (&'a str, &'a dyn Fn(&[u8]) -> Option<Decoded>);

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: jpeg-route DIR_OF_JPEGS");
        std::process::exit(2);
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    files.sort();
    let data: Vec<Vec<u8>> = files
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect();
    let routes: [Route; 5] = [
        ("zune-jpeg full", &zune),
        ("jpeg-decoder full", &|b| jpeg_decoder(b, false)),
        ("jpeg-decoder scaled", &|b| jpeg_decoder(b, true)),
        ("libjpeg-turbo full", &|b| turbo(b, false)),
        ("libjpeg-turbo scaled", &|b| turbo(b, true)),
    ];
    println!("{} JPEGs from {dir}", data.len());
    let mut reference: Vec<Option<Vec<u8>>> = Vec::new();
    for (name, decode) in routes {
        let start = Instant::now();
        let mut decoding = 0f64;
        let mut thumbs = Vec::with_capacity(data.len());
        for b in &data {
            let t = Instant::now();
            let decoded = decode(b);
            decoding += t.elapsed().as_secs_f64();
            thumbs.push(decoded.and_then(|(px, w, h)| {
                (w >= SIDE && h >= SIDE)
                    .then(|| resize(&px, w, h))
                    .flatten()
            }));
        }
        let secs = start.elapsed().as_secs_f64();
        if reference.is_empty() {
            reference = thumbs.clone();
        }
        let (mut max, mut apart, mut values) = (0u8, 0usize, 0usize);
        for (a, b) in reference.iter().zip(&thumbs) {
            if let (Some(a), Some(b)) = (a, b) {
                for (x, y) in a.iter().zip(b) {
                    let d = x.abs_diff(*y);
                    max = max.max(d);
                    apart += usize::from(d > 1);
                    values += 1;
                }
            }
        }
        let kept = thumbs.iter().filter(|t| t.is_some()).count();
        println!(
            "{name:22} {:6.0} images/s  decoding {decoding:6.2} s of {secs:6.2} s  kept {kept}  \
             against zune-jpeg full: max {max}, {:.2} % of values > 1 apart",
            data.len() as f64 / secs,
            100.0 * apart as f64 / values.max(1) as f64
        );
    }
}
