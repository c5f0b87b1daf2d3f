//! Every source and sink over a real S3-compatible server (s3s-fs on
//! 127.0.0.1): formats written and read back, Lance create/append/add a
//! column/nearest, globs over a prefix, and url_download of objects.

use std::sync::{Arc, OnceLock};

use regatta::arrow::array::{Array, AsArray, Float32Array, Int64Array, RecordBatch, StringArray};
use regatta::arrow::datatypes::{DataType, Field, Float32Type, Int64Type, Schema};
use regatta::prelude::*;
use regatta_tests::s3_server::S3Server;

use crate::{concat, url_frame};

/// One server for the binary: the storage settings are process-wide.
fn server() -> &'static S3Server {
    static SERVER: OnceLock<S3Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let s = S3Server::start(&["formats", "lance", "globs", "media"]);
        regatta::storage::install(s.storage_options());
        s
    })
}

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

async fn ids(df: DataFrame) -> Vec<i64> {
    let b = df
        .sort(vec![col("id").sort(true, true)])
        .unwrap()
        .collect()
        .await
        .unwrap();
    if b.is_empty() {
        return Vec::new();
    }
    concat(&b)
        .column_by_name("id")
        .unwrap()
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_format_is_written_to_the_store_and_read_back_in_every_mode() {
    server();
    let s = Session::local();
    for (fmt, ext) in [
        (FileFormat::Parquet, "parquet"),
        (FileFormat::Csv, "csv"),
        (FileFormat::Json, "json"),
    ] {
        let out = format!("s3://formats/out_{ext}");
        assert_eq!(
            frame(&s, 0, 10)
                .write(&out, fmt, WriteMode::Create)
                .await
                .unwrap(),
            10
        );
        assert_eq!(
            ids(s.read(&out, fmt).await.unwrap()).await,
            (0..10).collect::<Vec<_>>(),
            "{ext}"
        );
        // The output is marked whole.
        assert!(server()
            .root
            .join("formats")
            .join(format!("out_{ext}/_SUCCESS"))
            .exists());
        let err = frame(&s, 0, 1)
            .write(&out, fmt, WriteMode::Create)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        frame(&s, 10, 5)
            .write(&out, fmt, WriteMode::Append)
            .await
            .unwrap();
        assert_eq!(
            s.read(&out, fmt).await.unwrap().count().await.unwrap(),
            15,
            "{ext} append"
        );
        frame(&s, 100, 2)
            .write(&out, fmt, WriteMode::Overwrite)
            .await
            .unwrap();
        assert_eq!(
            ids(s.read(&out, fmt).await.unwrap()).await,
            vec![100, 101],
            "{ext} overwrite"
        );
    }
    // One object when the name carries the extension; SQL reads it by URL.
    frame(&s, 0, 3)
        .write_parquet("s3://formats/one.parquet")
        .await
        .unwrap();
    let n = s
        .sql("SELECT count(*) AS n FROM 's3://formats/one.parquet'")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(n[0].column(0).as_primitive::<Int64Type>().value(0), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_glob_over_a_prefix_reads_exactly_the_matching_objects() {
    server();
    let s = Session::local();
    for (i, name) in [
        "a/x1.parquet",
        "a/x2.parquet",
        "a/y.parquet",
        "b/x3.parquet",
    ]
    .iter()
    .enumerate()
    {
        let url = format!("s3://globs/{name}");
        frame(&s, i as i64 * 10, 2)
            .write_parquet(&url)
            .await
            .unwrap();
    }
    assert_eq!(
        ids(s.read_parquet("s3://globs/a/x*.parquet").await.unwrap()).await,
        vec![0, 1, 10, 11]
    );
    assert_eq!(
        ids(s.read_parquet("s3://globs/*/x*.parquet").await.unwrap()).await,
        vec![0, 1, 10, 11, 30, 31]
    );
    // A prefix is listed, not guessed.
    assert_eq!(
        s.read_parquet("s3://globs/a")
            .await
            .unwrap()
            .count()
            .await
            .unwrap(),
        6
    );
    let err = s
        .read_parquet("s3://globs/a/z*.parquet")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("s3://globs/a/z*.parquet") && err.contains("matches no objects"),
        "{err}"
    );
    let err = s
        .read_parquet("s3://globs/nothing/")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("s3://globs/nothing/"), "{err}");
}

fn vectors(session: &Session, start: i64, n: i64) -> DataFrame {
    let dim = 4;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(
            "v",
            DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), dim),
            false,
        ),
    ]));
    let ids: Vec<i64> = (start..start + n).collect();
    let values: Vec<f32> = ids
        .iter()
        .flat_map(|i| vec![*i as f32; dim as usize])
        .collect();
    let v = regatta::arrow::array::FixedSizeListArray::try_new(
        Arc::new(Field::new("item", DataType::Float32, true)),
        dim,
        Arc::new(Float32Array::from(values)),
        None,
    )
    .unwrap();
    let b =
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids)), Arc::new(v)]).unwrap();
    session.from_batches(vec![b]).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn lance_in_a_bucket_is_created_appended_extended_and_searched() {
    server();
    let s = Session::local();
    let ds = "s3://lance/vectors.lance";
    vectors(&s, 0, 20).write_lance(ds).await.unwrap();
    vectors(&s, 20, 10)
        .write(ds, FileFormat::Lance, WriteMode::Append)
        .await
        .unwrap();
    assert_eq!(s.read_lance(ds).await.unwrap().count().await.unwrap(), 30);
    // The dataset's files are in the bucket, not on local disk.
    assert!(server().root.join("lance/vectors.lance/_versions").is_dir());
    s.add_lance_column(ds, "twice", col("id") * lit(2i64))
        .await
        .unwrap();
    let rows = concat(
        &s.read_lance(ds)
            .await
            .unwrap()
            .filter(col("id").eq(lit(7i64)))
            .unwrap()
            .collect()
            .await
            .unwrap(),
    );
    assert_eq!(
        rows.column_by_name("twice")
            .unwrap()
            .as_primitive::<Int64Type>()
            .value(0),
        14
    );
    let near = s.nearest(ds, "v", &[12.2; 4], 3).await.unwrap();
    let got: Vec<i64> = near
        .column_by_name("id")
        .unwrap()
        .as_primitive::<Int64Type>()
        .values()
        .to_vec();
    assert_eq!(got, vec![12, 13, 11]);
    let d = near
        .column_by_name("_distance")
        .unwrap()
        .as_primitive::<Float32Type>()
        .value(0);
    assert!(d < 1.0, "{d}");
    // Overwrite replaces the rows in one new version.
    vectors(&s, 100, 2)
        .write(ds, FileFormat::Lance, WriteMode::Overwrite)
        .await
        .unwrap();
    assert_eq!(ids(s.read_lance(ds).await.unwrap()).await, vec![100, 101]);
    let err = s
        .read_lance("s3://lance/none.lance")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("s3://lance/none.lance"), "{err}");
}

/// `urls` downloaded under `on_error = 'null'` with `retries`, as (id, b) by id.
async fn downloaded(s: &Session, urls: &[String], retries: u32) -> RecordBatch {
    concat(
        &url_frame(s, urls)
            .select(vec![
                col("id"),
                col("url")
                    .url_download_with(OnError::Null, 30_000, retries)
                    .alias("b"),
            ])
            .unwrap()
            .sort(vec![col("id").sort(true, true)])
            .unwrap()
            .collect()
            .await
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn url_download_fetches_objects_and_a_missing_key_is_null_or_named() {
    let srv = server();
    let s = Session::local();
    srv.put_file("media", "img/a.bin", b"alpha");
    frame(&s, 0, 1)
        .write_parquet("s3://media/img/b.parquet")
        .await
        .unwrap();
    let urls = vec![
        "s3://media/img/a.bin".to_string(),
        "s3://media/img/missing.bin".to_string(),
    ];
    let got = downloaded(&s, &urls, 3).await;
    let b = got.column_by_name("b").unwrap().as_binary::<i32>();
    assert_eq!(b.value(0), b"alpha");
    assert!(b.is_null(1), "a missing key is null under on_error = null");
    let err = url_frame(&s, &urls)
        .select(vec![col("url").url_download().alias("b")])
        .unwrap()
        .collect()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("s3://media/img/missing.bin") && err.contains("not found"),
        "{err}"
    );
    assert!(!err.contains(regatta_tests::s3_server::SECRET_KEY), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_past_the_download_cap_is_refused_unread() {
    let srv = server();
    srv.put_file("media", "big/blob.bin", &vec![7u8; 4096]);
    srv.put_file("media", "big/small.bin", b"small");
    let s = Session::local_with(regatta::EngineOptions {
        access: regatta::AccessPolicy {
            max_download_bytes: 1024,
            ..regatta::AccessPolicy::local()
        },
        ..regatta::EngineOptions::default()
    })
    .unwrap();
    let urls = vec![
        "s3://media/big/small.bin".to_string(),
        "s3://media/big/blob.bin".to_string(),
    ];
    let got = downloaded(&s, &urls, 0).await;
    let b = got.column_by_name("b").unwrap().as_binary::<i32>();
    assert_eq!(b.value(0), b"small");
    assert!(b.is_null(1), "the 4 KiB object is past the 1 KiB cap");
    let err = url_frame(&s, &urls[1..])
        .select(vec![col("url").url_download().alias("b")])
        .unwrap()
        .collect()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("access.max_download_bytes"), "{err}");
}
