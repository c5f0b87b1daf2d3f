//! Reading and writing every format, modes, and adding a column to Lance in place.

use std::sync::Arc;

use regatta::arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
use regatta::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use regatta::prelude::*;
use regatta_tests::temp_dir;

use crate::concat;

fn frame(session: &Session, start: i64, n: i64) -> DataFrame {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
    ]));
    let ids: Vec<i64> = (start..start + n).collect();
    let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
    let b = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(names)),
        ],
    )
    .unwrap();
    session.from_batches(vec![b]).unwrap()
}

async fn id_sum(df: DataFrame) -> i64 {
    let b = df
        .aggregate(vec![], vec![sum(col("id")).alias("s")])
        .unwrap()
        .collect()
        .await
        .unwrap();
    b[0].column(0).as_primitive::<Int64Type>().value(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn file_formats_round_trip_through_dirs_globs_and_urls() {
    let (_d, dir) = temp_dir();
    let s = Session::local();
    for (fmt, ext) in [
        (FileFormat::Parquet, "parquet"),
        (FileFormat::Csv, "csv"),
        (FileFormat::Json, "json"),
    ] {
        let out = dir.join(format!("out_{ext}"));
        let out_s = out.to_string_lossy().to_string();
        assert_eq!(
            frame(&s, 0, 10)
                .write(&out_s, fmt, WriteMode::Create)
                .await
                .unwrap(),
            10
        );
        // A directory, a glob and a file:// URL all read the same rows.
        assert_eq!(
            id_sum(s.read(&out_s, fmt).await.unwrap()).await,
            45,
            "{ext} dir"
        );
        let glob = format!("{out_s}/*.{ext}");
        assert_eq!(
            id_sum(s.read(&glob, fmt).await.unwrap()).await,
            45,
            "{ext} glob"
        );
        let url = format!("file://{out_s}");
        assert_eq!(
            id_sum(s.read(&url, fmt).await.unwrap()).await,
            45,
            "{ext} url"
        );
        // Create refuses to clobber; append adds; overwrite replaces.
        let err = frame(&s, 0, 1)
            .write(&out_s, fmt, WriteMode::Create)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        frame(&s, 10, 5)
            .write(&out_s, fmt, WriteMode::Append)
            .await
            .unwrap();
        assert_eq!(
            s.read(&out_s, fmt).await.unwrap().count().await.unwrap(),
            15,
            "{ext} append"
        );
        frame(&s, 100, 2)
            .write(&out_s, fmt, WriteMode::Overwrite)
            .await
            .unwrap();
        assert_eq!(
            id_sum(s.read(&out_s, fmt).await.unwrap()).await,
            201,
            "{ext} overwrite"
        );
    }
    // A single file when the name carries the extension.
    let single = dir.join("one.parquet");
    frame(&s, 0, 3)
        .write_parquet(&single.to_string_lossy())
        .await
        .unwrap();
    assert!(single.is_file());
    assert_eq!(
        s.read_parquet(&single.to_string_lossy())
            .await
            .unwrap()
            .count()
            .await
            .unwrap(),
        3
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lance_create_append_overwrite_and_add_a_column_in_place() {
    let (_d, dir) = temp_dir();
    let s = Session::local();
    let path = dir.join("t.lance").to_string_lossy().to_string();
    assert_eq!(frame(&s, 0, 50).write_lance(&path).await.unwrap(), 50);
    let err = frame(&s, 0, 1).write_lance(&path).await.unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(
        frame(&s, 50, 50)
            .write(&path, FileFormat::Lance, WriteMode::Append)
            .await
            .unwrap(),
        100
    );
    assert_eq!(id_sum(s.read_lance(&path).await.unwrap()).await, 4950);

    // Existing data files are kept; the new column gets files of its own.
    let data_dir = std::path::Path::new(&path).join("data");
    let before: std::collections::BTreeSet<_> = std::fs::read_dir(&data_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    s.add_lance_column(&path, "double_id", col("id") * lit(2i64))
        .await
        .unwrap();
    let after: std::collections::BTreeSet<_> = std::fs::read_dir(&data_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(before.is_subset(&after), "old data files untouched");
    assert!(after.len() > before.len(), "new files for the new column");
    let b = concat(
        &s.read_lance(&path)
            .await
            .unwrap()
            .select(vec![col("id"), col("double_id"), col("name")])
            .unwrap()
            .collect()
            .await
            .unwrap(),
    );
    let ids = b.column(0).as_primitive::<Int64Type>();
    let dbl = b.column(1).as_primitive::<Int64Type>();
    assert_eq!(b.num_rows(), 100);
    for i in 0..b.num_rows() {
        assert_eq!(dbl.value(i), ids.value(i) * 2, "row {i} lines up");
    }

    assert_eq!(
        frame(&s, 7, 3)
            .write(&path, FileFormat::Lance, WriteMode::Overwrite)
            .await
            .unwrap(),
        3
    );
    assert_eq!(id_sum(s.read_lance(&path).await.unwrap()).await, 24);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_overwrite_keeps_the_old_data() {
    let (_d, dir) = temp_dir();
    let s = Session::local();
    let out = dir.join("keep").to_string_lossy().to_string();
    frame(&s, 0, 4).write_parquet(&out).await.unwrap();
    s.register_dataframe("t", frame(&s, 0, 4)).unwrap();
    let failing = s
        .sql("SELECT image_decode(arrow_cast(name, 'Binary')) AS x FROM t")
        .await
        .unwrap();
    assert!(failing
        .write(&out, FileFormat::Parquet, WriteMode::Overwrite)
        .await
        .is_err());
    assert_eq!(id_sum(s.read_parquet(&out).await.unwrap()).await, 6);
}
