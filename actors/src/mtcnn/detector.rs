//! [`FaceDetector`]: the MTCNN cascade over one image at a time.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Builder, ListBuilder, StructBuilder};
use arrow::datatypes::{DataType, Field, Fields};
use candle_core::Device;
use rayon::prelude::*;
use regatta_engine::image::{self, DecodedImage, ImageMode};
use regatta_engine::types::{ImageColumn, ImageRef};

use super::cascade::{Cascade, StageOut};
use crate::model::{Model, ModelError};
use crate::model_files::{files_error, required};
use crate::Result;

const FIX: &str = "run scripts/fetch_mtcnn.sh, or set REGATTA_MTCNN_DIR";
/// facenet-pytorch's defaults.
const MIN_FACE: f32 = 20.0;
const FACTOR: f32 = 0.709;
const THRESHOLDS: [f32; 3] = [0.6, 0.7, 0.7];

/// One detected face, in pixels of the input image, clipped to it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceBox {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
    pub score: f32,
}

/// The fields of one face: `{x, y, w, h, score}` (Float32).
pub fn face_box_fields() -> Fields {
    Fields::from(
        ["x", "y", "w", "h", "score"]
            .map(|n| Field::new(n, DataType::Float32, false))
            .to_vec(),
    )
}

/// `detect_faces`'s type: a list of face structs.
pub fn faces_type() -> DataType {
    DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(face_box_fields()),
        true,
    )))
}

/// A candidate: corners, score, and the regression the last net gave it.
#[derive(Debug, Clone, Copy)]
struct Cand {
    b: [f32; 4],
    score: f32,
    reg: [f32; 4],
}

/// Non-maximum suppression: indices kept, best first. `min` divides the overlap by
/// the smaller area (MTCNN's last stage) instead of the union.
fn nms(c: &[Cand], threshold: f32, min: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..c.len()).collect();
    order.sort_by(|&a, &b| c[b].score.total_cmp(&c[a].score));
    let area = |b: &[f32; 4]| (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0);
    let mut keep = Vec::new();
    let mut dropped = vec![false; c.len()];
    for (pos, &i) in order.iter().enumerate() {
        if dropped[i] {
            continue;
        }
        keep.push(i);
        for &j in &order[pos + 1..] {
            if dropped[j] {
                continue;
            }
            let (a, b) = (&c[i].b, &c[j].b);
            let w = (a[2].min(b[2]) - a[0].max(b[0]) + 1.0).max(0.0);
            let h = (a[3].min(b[3]) - a[1].max(b[1]) + 1.0).max(0.0);
            let inter = w * h;
            let o = if min {
                inter / area(a).min(area(b))
            } else {
                inter / (area(a) + area(b) - inter)
            };
            if o > threshold {
                dropped[j] = true;
            }
        }
    }
    keep
}

/// Makes each box a square around its centre.
fn rerec(c: &mut Cand) {
    let (w, h) = (c.b[2] - c.b[0], c.b[3] - c.b[1]);
    let l = w.max(h);
    c.b[0] += w * 0.5 - l * 0.5;
    c.b[1] += h * 0.5 - l * 0.5;
    c.b[2] = c.b[0] + l;
    c.b[3] = c.b[1] + l;
}

/// Moves a box by its regression, relative to its size (+1, as MTCNN does).
fn bbreg(c: &mut Cand) {
    let w = c.b[2] - c.b[0] + 1.0;
    let h = c.b[3] - c.b[1] + 1.0;
    c.b[0] += c.reg[0] * w;
    c.b[1] += c.reg[1] * h;
    c.b[2] += c.reg[2] * w;
    c.b[3] += c.reg[3] * h;
}

fn view(img: &DecodedImage) -> ImageRef<'_> {
    ImageRef {
        pixels: &img.pixels,
        width: img.width,
        height: img.height,
        mode: img.mode,
    }
}

/// Appends an RGB image's pixels as `(x - 127.5) / 128`, channels interleaved
/// (`h x w x 3`).
fn push_hwc(img: &DecodedImage, out: &mut Vec<f32>) {
    out.extend(
        img.pixels
            .iter()
            .map(|&v| (f32::from(v) - 127.5) * 0.0078125),
    );
}

/// The image region of a candidate (clipped to the image, as MTCNN's `pad` does),
/// resized to `side` x `side`; `None` when nothing of it is inside.
fn crop_square(img: ImageRef<'_>, c: &Cand, side: u32) -> Option<DecodedImage> {
    let (w, h) = (img.width as i64, img.height as i64);
    let x = (c.b[0].trunc() as i64).max(1);
    let y = (c.b[1].trunc() as i64).max(1);
    let ex = (c.b[2].trunc() as i64).min(w);
    let ey = (c.b[3].trunc() as i64).min(h);
    if ex < x || ey < y {
        return None;
    }
    let crop = image::crop(
        img,
        (x - 1) as u32,
        (y - 1) as u32,
        (ex - x + 1) as u32,
        (ey - y + 1) as u32,
    )
    .ok()?;
    image::resize(view(&crop), side, side).ok()
}

/// Runs the cascade over one image.
pub fn detect(nets: &Cascade, src: ImageRef<'_>) -> std::result::Result<Vec<FaceBox>, ModelError> {
    // Borrowed when already RGB: no copy of the frame.
    let converted;
    let img = if src.mode == ImageMode::Rgb {
        src
    } else {
        converted = image::convert(src, ImageMode::Rgb);
        view(&converted)
    };
    let (w, h) = (img.width as f32, img.height as f32);
    // Stage 1: P-net over a pyramid of scales, 12-pixel cells at stride 2.
    let mut scale = 12.0 / MIN_FACE;
    let mut minl = w.min(h) * scale;
    let mut cands: Vec<Cand> = Vec::new();
    while minl >= 12.0 {
        let (sh, sw) = ((h * scale + 1.0) as u32, (w * scale + 1.0) as u32);
        let resized = image::resize(img, sw, sh)?;
        let mut input = Vec::new();
        push_hwc(&resized, &mut input);
        let (ph, pw, StageOut { prob, reg }) = nets.pnet(&input, sh as usize, sw as usize)?;
        let mut level = Vec::new();
        for yy in 0..ph {
            for xx in 0..pw {
                let p = prob[yy * pw + xx];
                if p < THRESHOLDS[0] {
                    continue;
                }
                let at = |k: usize| reg[(yy * pw + xx) * 4 + k];
                let (bx, by) = (xx as f32, yy as f32);
                level.push(Cand {
                    b: [
                        ((2.0 * bx + 1.0) / scale).floor(),
                        ((2.0 * by + 1.0) / scale).floor(),
                        ((2.0 * bx + 12.0) / scale).floor(),
                        ((2.0 * by + 12.0) / scale).floor(),
                    ],
                    score: p,
                    reg: [at(0), at(1), at(2), at(3)],
                });
            }
        }
        cands.extend(nms(&level, 0.5, false).into_iter().map(|i| level[i]));
        scale *= FACTOR;
        minl *= FACTOR;
    }
    let mut cands: Vec<Cand> = nms(&cands, 0.7, false)
        .into_iter()
        .map(|i| cands[i])
        .collect();
    for c in &mut cands {
        let (rw, rh) = (c.b[2] - c.b[0], c.b[3] - c.b[1]);
        c.b = [
            c.b[0] + c.reg[0] * rw,
            c.b[1] + c.reg[1] * rh,
            c.b[2] + c.reg[2] * rw,
            c.b[3] + c.reg[3] * rh,
        ];
        rerec(c);
    }
    // Stages 2 and 3: R-net on 24 x 24 crops, O-net on 48 x 48 ones.
    for (stage, side) in [(1usize, 24u32), (2, 48)] {
        if cands.is_empty() {
            break;
        }
        let mut input = Vec::new();
        let mut kept = Vec::new();
        for c in &cands {
            if let Some(crop) = crop_square(img, c, side) {
                push_hwc(&crop, &mut input);
                kept.push(*c);
            }
        }
        if kept.is_empty() {
            cands.clear();
            break;
        }
        let StageOut { prob, reg } = if stage == 1 {
            nets.rnet(&input, kept.len())?
        } else {
            nets.onet(&input, kept.len())?
        };
        let mut next: Vec<Cand> = Vec::new();
        for (i, c) in kept.iter().enumerate() {
            if prob[i] > THRESHOLDS[stage] {
                next.push(Cand {
                    b: c.b,
                    score: prob[i],
                    reg: [reg[4 * i], reg[4 * i + 1], reg[4 * i + 2], reg[4 * i + 3]],
                });
            }
        }
        if stage == 1 {
            cands = nms(&next, 0.7, false)
                .into_iter()
                .map(|i| next[i])
                .collect();
            for c in &mut cands {
                bbreg(c);
                rerec(c);
            }
        } else {
            for c in &mut next {
                bbreg(c);
            }
            cands = nms(&next, 0.7, true).into_iter().map(|i| next[i]).collect();
        }
    }
    Ok(cands
        .iter()
        .map(|c| {
            let x0 = c.b[0].clamp(0.0, w);
            let y0 = c.b[1].clamp(0.0, h);
            let x1 = c.b[2].clamp(0.0, w);
            let y1 = c.b[3].clamp(0.0, h);
            FaceBox {
                x: x0,
                y: y0,
                w: x1 - x0,
                h: y1 - y0,
                score: c.score,
            }
        })
        .filter(|f| f.w >= 1.0 && f.h >= 1.0)
        .collect())
}

/// MTCNN on one device.
pub struct FaceDetector {
    nets: Cascade,
}

impl FaceDetector {
    /// Loads `model.safetensors` from `dir` onto `device`.
    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        let path = required(dir, "model.safetensors", FIX)?;
        let bytes = std::fs::read(&path).map_err(|e| files_error(&path, e))?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| files_error(&path, e))?;
        let nets = Cascade::new(tensors, &device).map_err(|e| files_error(&path, e))?;
        Ok(Self { nets })
    }

    /// Faces of every image of a column; a null image gives a null list.
    pub fn detect_array(&self, images: &ArrayRef) -> std::result::Result<ArrayRef, ModelError> {
        let column = ImageColumn::try_new(images.as_ref(), super::NAME)?;
        let fields = face_box_fields();
        let item = StructBuilder::from_fields(fields.clone(), column.len());
        let mut out = ListBuilder::new(item).with_field(Arc::new(Field::new(
            "item",
            DataType::Struct(fields),
            true,
        )));
        let frames = (0..column.len())
            .map(|row| column.get(row))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        // Frames are independent: detect on all cores at once. One frame's
        // cascade is many small layers that keep a single core busy at best.
        let found: Vec<_> = frames
            .par_iter()
            .enumerate()
            .map(|(row, img)| {
                img.map(|img| {
                    detect(&self.nets, img).map_err(|e| format!("image at row {row}: {e}"))
                })
                .transpose()
            })
            .collect();
        for faces in found {
            let Some(faces) = faces? else {
                out.append(false);
                continue;
            };
            let s = out.values();
            for f in faces {
                for (k, v) in [f.x, f.y, f.w, f.h, f.score].into_iter().enumerate() {
                    s.field_builder::<Float32Builder>(k)
                        .ok_or("face field builder")?
                        .append_value(v);
                }
                s.append(true);
            }
            out.append(true);
        }
        Ok(Arc::new(out.finish()))
    }
}

impl Model for FaceDetector {
    fn process(&mut self, inputs: &[ArrayRef]) -> std::result::Result<ArrayRef, ModelError> {
        match inputs {
            [images] => self.detect_array(images),
            _ => Err(format!(
                "{} takes one image column, got {}",
                super::NAME,
                inputs.len()
            )
            .into()),
        }
    }
}

impl std::fmt::Debug for FaceDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaceDetector")
            .field("device", &self.nets.device())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(b: [f32; 4], score: f32) -> Cand {
        Cand {
            b,
            score,
            reg: [0.0; 4],
        }
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        let c = [
            cand([0.0, 0.0, 9.0, 9.0], 0.8),
            cand([1.0, 1.0, 10.0, 10.0], 0.9),
            cand([50.0, 50.0, 59.0, 59.0], 0.7),
        ];
        assert_eq!(nms(&c, 0.5, false), vec![1, 2]);
        // A small box inside a big one: "Min" drops it, "Union" keeps it.
        let c = [
            cand([0.0, 0.0, 99.0, 99.0], 0.9),
            cand([10.0, 10.0, 19.0, 19.0], 0.8),
        ];
        assert_eq!(nms(&c, 0.7, true), vec![0]);
        assert_eq!(nms(&c, 0.7, false), vec![0, 1]);
    }
}
