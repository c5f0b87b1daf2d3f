//! MTCNN through `detect_faces`: the face on scikit-image's astronaut portrait is
//! found where a person marked it (IoU > 0.5), boxes feed `image_crop` and
//! `image_encode` as the seeds' video pipeline does, and the model loads once.

use regatta::arrow::array::{Array, AsArray, RecordBatch};
use regatta::arrow::datatypes::{Float32Type, UInt32Type};
use regatta::prelude::*;
use regatta_tests::{mtcnn_dir, photos_dir};

use crate::{bytes_frame, concat};

/// The astronaut's face in astronaut.png (512 x 512), marked by hand from the
/// hairline to the chin and ear to ear: x, y, w, h.
const ASTRONAUT_FACE: [f32; 4] = [170.0, 70.0, 105.0, 115.0];

/// The box facenet-pytorch 2.6.0's MTCNN (PyTorch, the same weights) gives for it:
/// `MTCNN(keep_all=True).detect(astronaut)` = (181.05, 62.16)-(267.75, 172.05).
const FACENET_BOX: [f32; 4] = [181.05, 62.16, 86.70, 109.89];

fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let w = (a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0]);
    let h = (a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1]);
    let inter = w.max(0.0) * h.max(0.0);
    inter / (a[2] * a[3] + b[2] * b[3] - inter)
}

fn boxes(batches: &[RecordBatch]) -> Vec<Option<Vec<[f32; 5]>>> {
    let b = concat(batches);
    let list = b.column(1).as_list::<i32>();
    (0..list.len())
        .map(|i| {
            (!list.is_null(i)).then(|| {
                let s = list.value(i);
                let s = s.as_struct();
                let f = |n: &str, j: usize| {
                    s.column_by_name(n)
                        .unwrap()
                        .as_primitive::<Float32Type>()
                        .value(j)
                };
                (0..s.len())
                    .map(|j| [f("x", j), f("y", j), f("w", j), f("h", j), f("score", j)])
                    .collect()
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detect_faces_finds_the_astronauts_face_and_crops_it() {
    mtcnn_dir();
    let dir = photos_dir();
    let blobs = vec![
        Some(std::fs::read(dir.join("astronaut.png")).unwrap()),
        Some(std::fs::read(dir.join("coffee.png")).unwrap()),
        None,
    ];
    let session = Session::local();
    session
        .register_dataframe("photos", bytes_frame(&session, blobs.clone()))
        .unwrap();
    let got = session
        .sql("SELECT id, detect_faces(image_decode(bytes)) AS faces FROM photos ORDER BY id")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let got = boxes(&got);
    let astronaut = got[0].as_ref().expect("a list for the portrait");
    let best = astronaut
        .iter()
        .map(|f| (iou([f[0], f[1], f[2], f[3]], ASTRONAUT_FACE), f))
        .fold(
            (0.0f32, None),
            |a, (o, f)| if o > a.0 { (o, Some(f)) } else { a },
        );
    assert!(best.0 > 0.5, "best IoU {:.2} of {astronaut:?}", best.0);
    // Close to the reference implementation's box too (resampling differs a little).
    let f = astronaut[0];
    let with_facenet = iou([f[0], f[1], f[2], f[3]], FACENET_BOX);
    assert!(
        with_facenet > 0.8,
        "IoU {with_facenet:.2} with facenet-pytorch's box: {astronaut:?}"
    );
    assert!(best.1.is_some_and(|f| f[4] > 0.9), "{astronaut:?}");
    assert_eq!(astronaut.len(), 1, "one face: {astronaut:?}");
    assert_eq!(
        got[1].as_deref(),
        Some(&[][..]),
        "a cup of coffee has no face"
    );
    assert!(got[2].is_none(), "a null image gives a null list");

    // Explode the boxes, crop each face, encode it as PNG: the seeds' pipeline.
    let crops = session
        .sql(
            "SELECT id, image_width(image_decode(png)) AS w, image_height(image_decode(png)) AS h, f \
             FROM (SELECT id, f, image_encode(image_crop(img, CAST(f.x AS INT), CAST(f.y AS INT), \
                   CAST(f.w AS INT), CAST(f.h AS INT)), 'png') AS png \
                   FROM (SELECT id, img, unnest(detect_faces(img)) AS f \
                         FROM (SELECT id, image_decode(bytes) AS img FROM photos)))",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let c = concat(&crops);
    assert_eq!(c.num_rows(), 1, "one face among the photos");
    let w = c.column(1).as_primitive::<UInt32Type>().value(0);
    let h = c.column(2).as_primitive::<UInt32Type>().value(0);
    let face = astronaut[0];
    assert_eq!((w, h), (face[2] as u32, face[3] as u32));

    // The DataFrame API: the same boxes, and the model loaded once.
    let df = bytes_frame(&session, blobs)
        .with_column(
            "faces",
            col("bytes").image_decode(ImageMode::Rgb).detect_faces(),
        )
        .unwrap()
        .select(vec![col("id"), col("faces")])
        .unwrap()
        .sort(vec![col("id").sort(true, false)])
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(boxes(&df), got);
    let stats = session.model_stats("mtcnn").unwrap();
    assert_eq!(stats.builds, 1, "three queries, one model load: {stats:?}");
}
