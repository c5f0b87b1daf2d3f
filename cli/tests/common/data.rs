//! The data sets the cluster tests run on: tables written by the local engine,
//! TPC-H-shaped tables and queries, images, embeddings read back.

use std::path::Path;
use std::process::Command;

use super::{ok, regatta, Cluster};

/// Writes `sql`'s rows as `files` Parquet files `dir/<table>/part-<i>.parquet`, row
/// `r` going to file `key % files`; returns `table=dir/<table>/*.parquet` for `-t`.
pub fn table(dir: &Path, table: &str, key: &str, files: usize, sql: &str) -> String {
    let tdir = dir.join(table);
    std::fs::create_dir_all(&tdir).unwrap();
    for part in 0..files {
        let path = tdir.join(format!("part-{part}.parquet"));
        let copy = format!(
            "COPY (SELECT * FROM ({sql}) WHERE {key} % {files} = {part}) TO '{}' STORED AS PARQUET",
            path.display()
        );
        ok(regatta().args(["sql"]).arg(copy));
    }
    format!("{table}={}/*.parquet", tdir.display())
}

/// The query that embeds every row of a [`docs_table`] with the real model.
pub const EMBED_SQL: &str =
    "SELECT id, embed_text(text, 'all-MiniLM-L6-v2') AS e FROM docs ORDER BY id";

/// A `docs (id, text)` table of `texts` (ids from 0) in `files` Parquet files;
/// returns its `-t` argument.
pub fn docs_table(dir: &Path, texts: &[String], files: usize) -> String {
    let rows: Vec<String> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| format!("({i}, '{t}')"))
        .collect();
    table(
        dir,
        "docs",
        "id",
        files,
        &format!(
            "SELECT column1 AS id, column2 AS text FROM (VALUES {})",
            rows.join(", ")
        ),
    )
}

/// TPC-H shaped `customer`, `orders` and `lineitem` (four lines per order) with the
/// columns W3a (Q1) and W3b (Q3) read; returns their `-t` arguments.
pub fn tpch_tables(dir: &Path, orders: u64, files: usize) -> Vec<String> {
    let customers = (orders / 10).max(10);
    // Days since 1970 of 1992-01-01, TPC-H's first date.
    let day0 = 8035;
    vec![
        table(
            dir,
            "customer",
            "c_custkey",
            files,
            &format!(
                "SELECT value AS c_custkey, CASE value % 5 WHEN 0 THEN 'BUILDING' \
                 WHEN 1 THEN 'AUTOMOBILE' WHEN 2 THEN 'MACHINERY' WHEN 3 THEN 'HOUSEHOLD' \
                 ELSE 'FURNITURE' END AS c_mktsegment FROM generate_series(1, {customers})"
            ),
        ),
        table(
            dir,
            "orders",
            "o_orderkey",
            files,
            &format!(
                "SELECT value AS o_orderkey, (value * 17) % {customers} + 1 AS o_custkey, \
                 arrow_cast(CAST({day0} + (value * 13) % 2400 AS INT), 'Date32') AS o_orderdate, \
                 CAST(value % 2 AS INT) AS o_shippriority FROM generate_series(1, {orders})"
            ),
        ),
        table(
            dir,
            "lineitem",
            "l_orderkey",
            files,
            &format!(
                "SELECT value / 4 + 1 AS l_orderkey, value % 4 + 1 AS l_linenumber, \
                 CAST((value * 7) % 50 + 1 AS DECIMAL(15,2)) AS l_quantity, \
                 CAST(((value * 7919) % 9000000) / 100.0 AS DECIMAL(15,2)) AS l_extendedprice, \
                 CAST((value % 11) / 100.0 AS DECIMAL(15,2)) AS l_discount, \
                 CAST((value % 9) / 100.0 AS DECIMAL(15,2)) AS l_tax, \
                 CASE value % 3 WHEN 0 THEN 'A' WHEN 1 THEN 'N' ELSE 'R' END AS l_returnflag, \
                 CASE WHEN value % 7 < 4 THEN 'O' ELSE 'F' END AS l_linestatus, \
                 arrow_cast(CAST({day0} + (value * 31) % 2557 AS INT), 'Date32') AS l_shipdate, \
                 concat('carefully ', (value * 7) % 1000003, ' final deposits wake') AS l_comment \
                 FROM generate_series(0, {} - 1)",
                orders * 4
            ),
        ),
    ]
}

/// W3a: TPC-H Q1, as `shared/bench` runs it.
pub const Q1: &str = include_str!("../../../benches/queries/tpch_q1.sql");

/// W3b: TPC-H Q3, as `shared/bench` runs it.
pub const Q3: &str = include_str!("../../../benches/queries/tpch_q3.sql");

/// `sql` on the local engine, as CSV.
pub fn local_csv(tables: &[String], sql: &str) -> String {
    let mut cmd = regatta();
    cmd.args(["sql", "-f", "csv"]);
    ok(with_tables(&mut cmd, tables).arg(sql))
}

/// `cmd` with a `-t NAME=PATH` for each of `tables`.
pub fn with_tables<'a>(cmd: &'a mut Command, tables: &[String]) -> &'a mut Command {
    for t in tables {
        cmd.args(["-t", t]);
    }
    cmd
}

impl Cluster {
    /// `sql` on the cluster, as CSV.
    pub fn csv(&self, tables: &[String], sql: &str) -> String {
        let mut cmd = self.cli();
        cmd.args(["submit", "-f", "csv"]);
        ok(with_tables(&mut cmd, tables).arg(sql))
    }
}

/// `n` images in three sizes (some too small for W1) plus a broken and a missing
/// one, listed in an `images` table of three Parquet files.
pub fn images(dir: &Path, n: usize) -> String {
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
    table(dir, "images", "id", 3, &values)
}

/// W1 in SQL: download, decode, keep images at least 224 on each side, resize,
/// and label each with the stand-in model.
pub const W1: &str = "SELECT id, image_mean(image_resize(img, 224, 224)) AS label FROM ( \
     SELECT id, image_decode(url_download(url, 'null'), 'RGB', 'null') AS img FROM images) \
     WHERE img IS NOT NULL AND image_width(img) >= 224 AND image_height(img) >= 224 \
     ORDER BY id";

/// Embeddings of `sql`'s rows as (id, vector), from JSON lines.
pub fn vectors(json: &str) -> Vec<(i64, Vec<f64>)> {
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

/// Asserts two embedding outputs (JSON lines of `id` and `e`) hold the same `rows`
/// ids in order with 384-dim vectors within 1e-4; `context` names the run.
pub fn assert_same_embeddings(local: &str, remote: &str, rows: usize, context: &str) {
    let (l, r) = (vectors(local), vectors(remote));
    assert_eq!(l.len(), rows);
    assert_eq!(l.len(), r.len());
    for ((li, lv), (ri, rv)) in l.iter().zip(&r) {
        assert_eq!(li, ri);
        assert_eq!(lv.len(), 384);
        let worst = lv
            .iter()
            .zip(rv)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-4, "{context}row {li}: differs by {worst}");
    }
}

/// Data files of the Lance dataset at `path`, and those its versions reference.
pub fn lance_files(path: &Path) -> (usize, usize, usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ds = regatta_engine::io::lance::open(path.to_str().unwrap())
            .await
            .unwrap();
        let versions = ds.versions().await.unwrap().len();
        let referenced: usize = ds
            .get_fragments()
            .iter()
            .map(|f| f.metadata().files.len())
            .sum();
        let on_disk = std::fs::read_dir(path.join("data")).unwrap().count();
        (versions, referenced, on_disk)
    })
}

/// How many fragments the Lance dataset at `path` has.
pub fn fragments(path: &Path) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        regatta_engine::io::lance::open(path.to_str().unwrap())
            .await
            .unwrap()
            .get_fragments()
            .len()
    })
}
