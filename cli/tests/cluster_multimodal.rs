//! Multimodal work on a real driver and three worker processes: W1's image
//! pipeline, and the real embedding model, loaded once per worker.

mod common;

use std::path::Path;

use common::{cluster, local_csv, ok, regatta};

/// `n` images in three sizes (some too small for W1) plus a broken and a missing
/// one, listed in an `images` table of three Parquet files.
fn images(dir: &Path, n: usize) -> String {
    let img_dir = dir.join("img");
    std::fs::create_dir_all(&img_dir).unwrap();
    let mut rows = Vec::new();
    for i in 0..n {
        let (w, h) = [(320, 240), (224, 300), (200, 260)][i % 3];
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 7 + i as u32) as u8, (y * 3) as u8, (x ^ y) as u8])
        });
        let path = img_dir.join(format!("{i}.{}", if i % 4 == 0 { "png" } else { "jpg" }));
        img.save(&path).unwrap();
        rows.push(format!("({i}, '{}')", path.display()));
    }
    let broken = img_dir.join("broken.jpg");
    std::fs::write(&broken, b"\xff\xd8\xff not really a jpeg").unwrap();
    rows.push(format!("({n}, '{}')", broken.display()));
    rows.push(format!(
        "({}, '{}')",
        n + 1,
        img_dir.join("missing.jpg").display()
    ));
    let values = format!(
        "SELECT column1 AS id, column2 AS url FROM (VALUES {})",
        rows.join(", ")
    );
    common::table(dir, "images", "id", 3, &values)
}

/// W1 in SQL: download, decode, keep images at least 224 on each side, resize,
/// and label each with the stand-in model.
const W1: &str = "SELECT id, image_mean(image_resize(img, 224, 224)) AS label FROM ( \
     SELECT id, image_decode(url_download(url, 'null'), 'RGB', 'null') AS img FROM images) \
     WHERE img IS NOT NULL AND image_width(img) >= 224 AND image_height(img) >= 224 \
     ORDER BY id";

#[test]
fn w1_on_the_cluster_gives_the_local_engines_labels() {
    let d = tempfile::tempdir().unwrap();
    let tables = vec![images(d.path(), 30)];
    let local = local_csv(&tables, W1);
    // Two of every three images are big enough; broken and missing ones drop out.
    assert_eq!(local.lines().count(), 1 + 20, "{local}");
    let c = cluster(&d.path().join("spill"));
    assert_eq!(c.csv(&tables, W1), local);
    // The three files were dealt out over the cluster's six cores: a spread stage
    // (3 tasks), six tasks of image work, one that merges them in order.
    let j = c.job(1);
    assert!(j.line.contains("tasks 10/10 stages 3/3"), "{}", j.line);
}

/// Embeddings of `sql`'s rows as (id, vector), from JSON lines.
fn vectors(json: &str) -> Vec<(i64, Vec<f64>)> {
    json.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let e = v["e"].as_array().unwrap();
            (
                v["id"].as_i64().unwrap(),
                e.iter().map(|x| x.as_f64().unwrap()).collect(),
            )
        })
        .collect()
}

#[test]
fn the_embedding_model_is_loaded_once_per_worker_and_agrees_with_local() {
    let d = tempfile::tempdir().unwrap();
    let texts = [
        "a small sailing boat at sunset",
        "a golden retriever puppy on the grass",
        "a bowl of ramen noodles",
        "the stock market fell sharply today",
        "a red vintage car next to a quiet lake",
        "how to bake sourdough bread",
    ];
    let rows: Vec<String> = (0..60)
        .map(|i| format!("({i}, '{} number {i}')", texts[i % texts.len()]))
        .collect();
    let docs = common::table(
        d.path(),
        "docs",
        "id",
        3,
        &format!(
            "SELECT column1 AS id, column2 AS text FROM (VALUES {})",
            rows.join(", ")
        ),
    );
    let sql = "SELECT id, embed_text(text, 'all-MiniLM-L6-v2') AS e FROM docs ORDER BY id";
    let local = ok(regatta().args(["sql", "-f", "json", "-t", &docs, sql]));
    let c = cluster(&d.path().join("spill"));
    for run in 0..2 {
        let remote = ok(c.cli().args(["submit", "-f", "json", "-t", &docs, sql]));
        let (l, r) = (vectors(&local), vectors(&remote));
        assert_eq!(l.len(), 60);
        assert_eq!(l.len(), r.len());
        for ((li, lv), (ri, rv)) in l.iter().zip(&r) {
            assert_eq!(li, ri);
            assert_eq!(lv.len(), 384);
            let worst = lv
                .iter()
                .zip(rv)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(worst < 1e-4, "run {run}, row {li}: differs by {worst}");
        }
        // Every worker that embedded anything loaded the model once, for both jobs
        // (as its next heartbeat says).
        std::thread::sleep(std::time::Duration::from_millis(700));
        let workers = c.workers();
        let loaded: Vec<u64> = workers.iter().map(|w| w.models_loaded).collect();
        assert!(loaded.iter().all(|&n| n <= 1), "{workers:?}");
        assert!(
            loaded.iter().filter(|&&n| n == 1).count() >= 2,
            "the work was not spread: {workers:?}"
        );
    }
}
