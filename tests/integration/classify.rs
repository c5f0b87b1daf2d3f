//! EfficientNet-Lite0 through `classify_image` and `image_logits`: logits equal an
//! independent numpy implementation's on scikit-image's sample photographs, the
//! expected classes come out, nulls stay null, and the model loads once.

use std::process::Command;

use regatta::arrow::array::{Array, AsArray, FixedSizeListArray, RecordBatch};
use regatta::arrow::datatypes::Float32Type;
use regatta::models::efficientnet;
use regatta::prelude::*;
use regatta::types::ImageRef;
use regatta_tests::pdf_makers::test_python;
use regatta_tests::{efficientnet_dir, photos_dir, repo_root};

use crate::{bytes_frame, concat};

const MODEL: &str = "efficientnet-lite0";

/// Photos and the words one of which the top-1 label must contain (camera.png is
/// greyscale: the classifier converts it to RGB).
const PHOTOS: [(&str, &[&str]); 5] = [
    ("chelsea.png", &["tiger cat", "tabby"]),
    ("coffee.png", &["espresso"]),
    ("rocket.jpg", &["missile", "projectile"]),
    ("motorcycle_left.png", &["moped", "motor scooter"]),
    ("camera.png", &["tripod"]),
];

fn photo_bytes() -> Vec<Option<Vec<u8>>> {
    let dir = photos_dir();
    PHOTOS
        .iter()
        .map(|(name, _)| {
            Some(std::fs::read(dir.join(name)).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (run scripts/fetch_photos.sh)",
                    dir.join(name).display()
                )
            }))
        })
        .collect()
}

/// The 224x224 crop the model sees, by the classifier's own preprocessing, as PNG.
fn write_crop(bytes: &[u8], out: &std::path::Path) {
    let rgb = image::load_from_memory(bytes).unwrap().to_rgb8();
    let crop = efficientnet::center_crop(ImageRef {
        pixels: rgb.as_raw(),
        width: rgb.width(),
        height: rgb.height(),
        mode: ImageMode::Rgb,
    })
    .unwrap();
    image::RgbImage::from_raw(crop.width, crop.height, crop.pixels)
        .unwrap()
        .save(out)
        .unwrap();
}

fn logits_rows(batches: &[RecordBatch], column: usize) -> Vec<Vec<f32>> {
    let b = concat(batches);
    let list = b
        .column(column)
        .as_any()
        .downcast_ref::<FixedSizeListArray>()
        .expect("logits are a fixed-size list");
    (0..list.len())
        .map(|i| {
            list.value(i)
                .as_primitive::<Float32Type>()
                .values()
                .to_vec()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn efficientnet_lite0_logits_equal_an_independent_numpy_network_on_five_photographs() {
    let model_dir = efficientnet_dir();
    let blobs = photo_bytes();
    let tmp = tempfile::tempdir().unwrap();
    let crops: Vec<String> = PHOTOS
        .iter()
        .zip(&blobs)
        .map(|((name, _), b)| {
            let p = tmp.path().join(format!("{name}.crop.png"));
            write_crop(b.as_deref().unwrap(), &p);
            p.display().to_string()
        })
        .collect();
    let out = Command::new(test_python())
        .arg(repo_root().join("scripts/efficientnet_reference.py"))
        .arg(&model_dir)
        .args(&crops)
        .output()
        .expect(
            "run scripts/efficientnet_reference.py (numpy and Pillow; set REGATTA_TEST_PYTHON)",
        );
    assert!(
        out.status.success(),
        "the numpy reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: std::collections::HashMap<String, Vec<f64>> =
        serde_json::from_slice(&out.stdout).unwrap();

    let session = Session::local();
    session
        .register_dataframe("photos", bytes_frame(&session, blobs))
        .unwrap();
    let got = session
        .sql(&format!(
            "SELECT id, image_logits(image_decode(bytes), '{MODEL}') AS logits FROM photos ORDER BY id"
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let got = logits_rows(&got, 1);
    assert_eq!(got.len(), PHOTOS.len());
    for (i, crop) in crops.iter().enumerate() {
        let want = &reference[crop];
        assert_eq!(got[i].len(), 1000);
        let worst = got[i]
            .iter()
            .zip(want)
            .map(|(g, w)| (f64::from(*g) - w).abs())
            .fold(0.0, f64::max);
        assert!(
            worst < 1e-3,
            "{}: logits differ by up to {worst:e}",
            PHOTOS[i].0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classify_image_names_the_expected_classes_keeps_nulls_and_loads_once() {
    efficientnet_dir();
    let mut blobs = photo_bytes();
    blobs.push(None);
    let session = Session::local();
    session
        .register_dataframe("photos", bytes_frame(&session, blobs.clone()))
        .unwrap();
    let sql = session
        .sql(&format!(
            "SELECT id, c.label AS label, c.score AS score FROM \
             (SELECT id, classify_image(image_decode(bytes), '{MODEL}') AS c FROM photos) \
             ORDER BY id"
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let b = concat(&sql);
    let labels = b.column(1).as_string::<i32>();
    let scores = b.column(2).as_primitive::<Float32Type>();
    for (i, (name, expected)) in PHOTOS.iter().enumerate() {
        let label = labels.value(i);
        assert!(
            expected.iter().any(|e| label.contains(e)),
            "{name}: top-1 {label:?} ({}), expected one of {expected:?}",
            scores.value(i)
        );
        assert!(scores.value(i) > 0.0 && scores.value(i) <= 1.0);
    }
    assert!(
        labels.is_null(PHOTOS.len()) && scores.is_null(PHOTOS.len()),
        "a null image gives a null class"
    );

    // The DataFrame API, a second query: the same classes, no second load.
    let df = bytes_frame(&session, blobs)
        .with_column(
            "c",
            col("bytes")
                .image_decode(ImageMode::Rgb)
                .classify_image(MODEL),
        )
        .unwrap()
        .sort(vec![col("id").sort(true, false)])
        .unwrap()
        .collect()
        .await
        .unwrap();
    let c = concat(&df);
    let c = c.column(2).as_struct();
    let again = c.column_by_name("label").unwrap().as_string::<i32>();
    for i in 0..PHOTOS.len() {
        assert_eq!(again.value(i), labels.value(i));
    }
    let stats = session.model_stats(MODEL).unwrap();
    assert_eq!(stats.builds, 1, "two queries, one model load: {stats:?}");
}

#[tokio::test]
async fn classify_image_refuses_bytes_and_unknown_models_at_planning() {
    efficientnet_dir();
    let session = Session::local();
    session
        .register_dataframe("photos", bytes_frame(&session, vec![None]))
        .unwrap();
    for (sql, needle) in [
        (
            "SELECT classify_image(bytes, 'efficientnet-lite0') FROM photos",
            "decoded image",
        ),
        (
            "SELECT image_logits(image_decode(bytes), 'resnet-9000') FROM photos",
            "efficientnet-lite0",
        ),
    ] {
        let err = crate::query_error(&session, sql).await;
        assert!(err.contains(needle), "{sql}: {err}");
    }
}
