//! MTCNN's two implementations, the CPU's NHWC kernels and candle's tensor
//! operations (the device path), give the same stage outputs and the same faces
//! with the real weights (`$REGATTA_MTCNN_DIR`, fetched by `scripts/fetch_mtcnn.sh`)
//! on the sample astronaut portrait (`$REGATTA_PHOTOS_DIR`).

// Test scaffolding: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use candle_core::Device;
use regatta_actors::mtcnn::{self, detect, Cascade, StageOut};
use regatta_engine::image::{self, DecodeLimits, DecodedImage, ImageMode};
use regatta_engine::types::ImageRef;

fn repo() -> PathBuf {
    regatta_common::manifest_dir!().join("..")
}

fn env_dir(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("models").join(default))
}

fn view(i: &DecodedImage) -> ImageRef<'_> {
    ImageRef {
        pixels: &i.pixels,
        width: i.width,
        height: i.height,
        mode: i.mode,
    }
}

fn portrait(w: u32, h: u32) -> DecodedImage {
    let path = env_dir("REGATTA_PHOTOS_DIR", "sample-photos").join("astronaut.png");
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/fetch_photos.sh)", path.display()));
    let img = image::decode(&bytes, ImageMode::Rgb, DecodeLimits::default()).unwrap();
    image::resize(view(&img), w, h).unwrap()
}

fn both() -> (Cascade, Cascade) {
    let weights = env_dir("REGATTA_MTCNN_DIR", mtcnn::NAME).join("model.safetensors");
    let load = || {
        candle_core::safetensors::load(&weights, &Device::Cpu)
            .unwrap_or_else(|e| panic!("{}: {e} (run scripts/fetch_mtcnn.sh)", weights.display()))
    };
    let nhwc = Cascade::new(load(), &Device::Cpu).unwrap();
    let tensor = Cascade::with_tensor_ops(load(), &Device::Cpu).unwrap();
    assert!(matches!(nhwc, Cascade::Nhwc(_)) && matches!(tensor, Cascade::Tensor { .. }));
    (nhwc, tensor)
}

fn normalised(img: &DecodedImage) -> Vec<f32> {
    img.pixels
        .iter()
        .map(|&v| (f32::from(v) - 127.5) * 0.0078125)
        .collect()
}

fn assert_close(what: &str, a: &StageOut, b: &StageOut) {
    assert_eq!(a.prob.len(), b.prob.len(), "{what}: candidates");
    assert_eq!(a.reg.len(), 4 * a.prob.len(), "{what}: offsets");
    for (i, (x, y)) in a.prob.iter().zip(&b.prob).enumerate() {
        assert!((x - y).abs() < 1e-4, "{what}: probability {i}: {x} vs {y}");
    }
    for (i, (x, y)) in a.reg.iter().zip(&b.reg).enumerate() {
        assert!((x - y).abs() < 1e-4, "{what}: offset {i}: {x} vs {y}");
    }
}

#[test]
fn the_nhwc_kernels_and_the_tensor_path_agree_stage_by_stage_and_on_the_faces() {
    let (nhwc, tensor) = both();
    // P-net on a frame-sized image, odd sizes so ceil-mode pooling has a partial window.
    let frame = portrait(193, 145);
    let x = normalised(&frame);
    let (ah, aw, a) = nhwc.pnet(&x, 145, 193).unwrap();
    let (bh, bw, b) = tensor.pnet(&x, 145, 193).unwrap();
    assert_eq!((ah, aw), (bh, bw));
    assert_eq!(a.prob.len(), ah * aw);
    assert!(
        a.prob.iter().any(|&p| p > 0.6),
        "no P-net cell sees the face"
    );
    assert_close("P-net", &a, &b);
    // R-net and O-net on three crops each: the face and two corners.
    for (side, stage) in [(24u32, "R-net"), (48, "O-net")] {
        let mut x = Vec::new();
        for (l, t) in [(150, 60), (0, 0), (300, 300)] {
            let crop = image::crop(view(&portrait(512, 512)), l, t, 200, 200).unwrap();
            x.extend(normalised(&image::resize(view(&crop), side, side).unwrap()));
        }
        let (a, b) = if side == 24 {
            (nhwc.rnet(&x, 3).unwrap(), tensor.rnet(&x, 3).unwrap())
        } else {
            (nhwc.onet(&x, 3).unwrap(), tensor.onet(&x, 3).unwrap())
        };
        assert_close(stage, &a, &b);
    }
    // The whole cascade: the same single face.
    let frame = portrait(320, 240);
    let a = detect(&nhwc, view(&frame)).unwrap();
    let b = detect(&tensor, view(&frame)).unwrap();
    assert_eq!(a.len(), 1, "faces: {a:?}");
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        for (u, v) in [
            (x.x, y.x),
            (x.y, y.y),
            (x.w, y.w),
            (x.h, y.h),
            (x.score, y.score),
        ] {
            assert!((u - v).abs() < 1e-2, "{x:?} vs {y:?}");
        }
    }
}
