//! Times MTCNN's face detection on one photograph scaled to a video frame's size
//! (no pipeline around it):
//! `cargo run --release -p regatta-actors --example mtcnn_timing [PHOTO] [FRAMES]`.
//! Reads the model from `$REGATTA_MTCNN_DIR`; the photograph defaults to the
//! astronaut portrait under `$REGATTA_PHOTOS_DIR`.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;
use regatta_actors::mtcnn::{detect, Cascade};
use regatta_engine::image::{self, DecodeLimits, ImageMode};
use regatta_engine::types::ImageRef;

fn view(i: &image::DecodedImage) -> ImageRef<'_> {
    ImageRef {
        pixels: &i.pixels,
        width: i.width,
        height: i.height,
        mode: i.mode,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let photo = args.next().map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("REGATTA_PHOTOS_DIR").unwrap_or_default())
            .join("astronaut.png")
    });
    let frames: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(48);
    let bytes = std::fs::read(&photo)?;
    let img = image::decode(&bytes, ImageMode::Rgb, DecodeLimits::default())?;
    let frame = image::resize(view(&img), 320, 240)?;
    let weights = regatta_actors::mtcnn::default_dir().join("model.safetensors");
    let load = || candle_core::safetensors::load(&weights, &Device::Cpu);
    for (name, nets) in [
        ("NHWC kernels", Cascade::new(load()?, &Device::Cpu)?),
        (
            "candle tensors",
            Cascade::with_tensor_ops(load()?, &Device::Cpu)?,
        ),
    ] {
        let faces = detect(&nets, view(&frame))?;
        let t = Instant::now();
        for _ in 0..frames {
            detect(&nets, view(&frame))?;
        }
        let per_frame = t.elapsed().as_secs_f64() / frames as f64;
        println!(
            "{name}: {} faces, {:.2} ms per frame",
            faces.len(),
            per_frame * 1e3
        );
    }
    Ok(())
}
