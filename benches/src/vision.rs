//! W8 (image classification) and W9 (video face detection): the seeds' other two
//! pipelines over the data `benches/data/gen_vision.py` makes. Each checks its
//! output after the clock stops.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use regatta::arrow::array::{Array, AsArray};
use regatta::arrow::compute::cast;
use regatta::arrow::datatypes::{DataType, Int64Type};
use regatta::prelude::*;
use serde_json::{json, Value};

use crate::workloads::{finish_output, out_dir, read_dir_batches, session, Res};
use crate::Args;

/// Images → download → decode → resize 256 / crop 224 / normalise → EfficientNet-Lite0
/// → Parquet of (id, label, score).
pub const W8_SQL: &str = "\
SELECT id, source, c['label'] AS label, c['score'] AS score FROM (
  SELECT id, source, classify_image(image_decode(url_download(url), 'RGB'), 'efficientnet-lite0') AS c
  FROM images)";

/// Every frame of every video → MTCNN → one row per face → crop → PNG → Parquet.
pub fn w9_sql(videos: &Path) -> String {
    format!(
        "SELECT url, frame_index, f['score'] AS score, \
           image_encode(image_crop(image, CAST(f['x'] AS INT), CAST(f['y'] AS INT), \
             CAST(f['w'] AS INT), CAST(f['h'] AS INT)), 'png') AS png \
         FROM (SELECT url, frame_index, image, unnest(detect_faces(image)) AS f \
               FROM video_frames('{}'))",
        videos.display()
    )
}

/// The ImageNet labels that count as right for each source photograph.
fn expected(source: &str) -> &'static [&'static str] {
    match source {
        "chelsea" => &["tiger cat", "tabby", "Egyptian cat", "lynx"],
        "coffee" => &["espresso", "cup", "coffee mug"],
        "rocket" => &["missile", "projectile", "space shuttle"],
        "motorcycle_left" => &["moped", "motor scooter", "crash helmet", "disk brake"],
        "camera" => &["tripod", "reflex camera", "Polaroid camera"],
        "astronaut" => &[
            "bobsled",
            "suit",
            "military uniform",
            "sweatshirt",
            "lab coat",
        ],
        _ => &[],
    }
}

pub async fn w8_classify(args: &Args, data: &Path) -> Res<(u64, f64, Value)> {
    let table = data.join("classify").join("images.parquet");
    let od = out_dir(args, "w8")?;
    let session = session(args).await?;
    session
        .register(
            "images",
            &table.to_string_lossy(),
            Some(FileFormat::Parquet),
        )
        .await?;
    // The model loads inside the clock, as it does in the Daft peer's UDF.
    let t0 = Instant::now();
    let rows = session
        .sql(W8_SQL)
        .await?
        .write_parquet(&od.to_string_lossy())
        .await?;
    let secs = t0.elapsed().as_secs_f64();
    // Check: how many labels name what the source photograph shows.
    let (mut right, mut seen) = (0u64, 0u64);
    let mut labels: HashMap<String, u64> = HashMap::new();
    for b in read_dir_batches(&od)? {
        let source = cast(b.column(1), &DataType::Utf8)?;
        let source = source.as_string::<i32>();
        let label = cast(b.column(2), &DataType::Utf8)?;
        let label = label.as_string::<i32>();
        for i in 0..b.num_rows() {
            seen += 1;
            if label.is_null(i) {
                continue;
            }
            let l = label.value(i);
            *labels.entry(l.to_string()).or_default() += 1;
            if expected(source.value(i)).iter().any(|e| l.contains(e)) {
                right += 1;
            }
        }
    }
    let mut top: Vec<(String, u64)> = labels.into_iter().collect();
    top.sort_by_key(|t| std::cmp::Reverse(t.1));
    top.truncate(6);
    let mut extra = json!({
        "images": seen,
        "labels_as_expected": right,
        "top_labels": top,
        "images_per_s": (rows as f64 / secs * 10.0).round() / 10.0,
    });
    finish_output(args, &od, &mut extra);
    Ok((rows, secs, extra))
}

pub async fn w9_video(args: &Args, data: &Path) -> Res<(u64, f64, Value)> {
    let videos = data.join("video").join("videos");
    let od = out_dir(args, "w9")?;
    let session = session(args).await?;
    let t0 = Instant::now();
    let rows = session
        .sql(&w9_sql(&videos))
        .await?
        .write_parquet(&od.to_string_lossy())
        .await?;
    let secs = t0.elapsed().as_secs_f64();
    // Check: the astronaut is in every frame, so every frame should give a face.
    let frames = session
        .sql(&format!(
            "SELECT count(*) FROM video_frames('{}', 'size=16x16')",
            videos.display()
        ))
        .await?
        .collect()
        .await?;
    let total = frames
        .first()
        .map(|b| b.column(0).as_primitive::<Int64Type>().value(0))
        .unwrap_or(0);
    let mut with_face: std::collections::HashSet<(String, i64)> = Default::default();
    for b in read_dir_batches(&od)? {
        let url = cast(b.column(0), &DataType::Utf8)?;
        let url = url.as_string::<i32>();
        let idx = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            with_face.insert((url.value(i).to_string(), idx.value(i)));
        }
    }
    let mut extra = json!({
        "frames": total,
        "frames_with_a_face": with_face.len(),
        "faces": rows,
        "frames_per_s": (total as f64 / secs * 10.0).round() / 10.0,
    });
    finish_output(args, &od, &mut extra);
    Ok((rows, secs, extra))
}
