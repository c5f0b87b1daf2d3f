//! A small multimodal data set for the demo: images of several sizes and formats,
//! a few broken ones, and captions.

use std::path::Path;
use std::sync::Arc;

use image::{ImageBuffer, Rgb};
use regatta::arrow::array::{Int64Array, RecordBatch, StringArray};
use regatta::arrow::datatypes::{DataType, Field, Schema};
use regatta::Session;

use crate::{CliError, Result};

/// Caption parts: a subject and a setting, so captions differ in meaning and a
/// nearest-neighbour query by meaning has a right answer.
const SUBJECTS: &[&str] = &[
    "a small sailing boat",
    "a golden retriever puppy",
    "a bowl of ramen noodles",
    "a red vintage car",
    "a snow-covered mountain peak",
    "a tabby kitten",
    "an old lighthouse",
    "a bunch of sunflowers",
];
const SETTINGS: &[&str] = &[
    "in the morning light",
    "on a rainy afternoon",
    "at sunset",
    "seen from above",
    "in a crowded city",
    "next to a quiet lake",
];

/// A tiny deterministic generator, so the demo's data is the same on every machine.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
    move |source| CliError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn picture(rng: &mut Lcg, w: u32, h: u32) -> ImageBuffer<Rgb<u8>, Vec<u8>> {
    let (r0, g0, b0) = (
        rng.below(200) as u32,
        rng.below(200) as u32,
        rng.below(200) as u32,
    );
    let (cx, cy, rad) = (
        rng.below(w.into()) as i64,
        rng.below(h.into()) as i64,
        10 + rng.below(60) as i64,
    );
    ImageBuffer::from_fn(w, h, |x, y| {
        let inside = (x as i64 - cx).pow(2) + (y as i64 - cy).pow(2) < rad * rad;
        if inside {
            Rgb([250, 250, 240])
        } else {
            Rgb([
                ((r0 + x * 55 / w.max(1)) % 256) as u8,
                ((g0 + y * 55 / h.max(1)) % 256) as u8,
                ((b0 + (x + y) * 30 / (w + h).max(1)) % 256) as u8,
            ])
        }
    })
}

/// Writes `n` images (plus a truncated JPEG, a file of text and a missing path) and
/// `images.parquet` (id, url, caption) under `dir`. Returns the parquet path.
pub async fn generate(session: &Session, dir: &Path, n: usize) -> Result<String> {
    let img_dir = dir.join("images");
    std::fs::create_dir_all(&img_dir).map_err(io_err(&img_dir))?;
    let mut rng = Lcg(20_240_601);
    let mut urls = Vec::new();
    let mut captions = Vec::new();
    for i in 0..n {
        let (w, h) = (96 + rng.below(320) as u32, 96 + rng.below(320) as u32);
        let img = picture(&mut rng, w, h);
        let png = i % 5 == 4;
        let path = img_dir.join(format!("{i:05}.{}", if png { "png" } else { "jpg" }));
        let fmt = if png {
            image::ImageFormat::Png
        } else {
            image::ImageFormat::Jpeg
        };
        img.save_with_format(&path, fmt)
            .map_err(|e| CliError::Output(format!("{}: {e}", path.display())))?;
        urls.push(format!("file://{}", path.display()));
        let subject = SUBJECTS[rng.below(SUBJECTS.len() as u64) as usize];
        let setting = SETTINGS[rng.below(SETTINGS.len() as u64) as usize];
        captions.push(format!("{subject} {setting}"));
    }
    // Broken inputs the pipeline must survive: a JPEG cut inside its header, a text
    // file with an image name, and a file that does not exist.
    let cut = img_dir.join("broken_header.jpg");
    let first = urls
        .first()
        .and_then(|u| u.strip_prefix("file://"))
        .map(std::path::PathBuf::from);
    let bytes = match first {
        Some(p) => std::fs::read(&p).map_err(io_err(&p))?,
        None => Vec::new(),
    };
    std::fs::write(&cut, &bytes[..bytes.len().min(120)]).map_err(io_err(&cut))?;
    let text = img_dir.join("not_an_image.jpg");
    std::fs::write(&text, b"this is not an image").map_err(io_err(&text))?;
    for (p, c) in [
        (cut.clone(), "a truncated picture"),
        (text, "a text file pretending"),
        (
            img_dir.join("missing.jpg"),
            "a picture that was never there",
        ),
    ] {
        urls.push(format!("file://{}", p.display()));
        captions.push(c.to_string());
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("url", DataType::Utf8, false),
        Field::new("caption", DataType::Utf8, false),
    ]));
    let ids: Vec<i64> = (0..urls.len() as i64).collect();
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(urls)),
            Arc::new(StringArray::from(captions)),
        ],
    )?;
    let out = dir.join("images.parquet");
    let out_s = out.to_string_lossy().to_string();
    session
        .from_batches(vec![batch])?
        .write_parquet(&out_s)
        .await?;
    Ok(out_s)
}
