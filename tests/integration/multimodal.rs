//! The multimodal functions through the DataFrame API and SQL.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use regatta::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use regatta::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, UInt32Type};
use regatta::prelude::*;
use regatta_tests::{image_bytes, temp_dir, write_file};

use crate::{concat, url_frame};

#[tokio::test(flavor = "multi_thread")]
async fn image_pipeline_in_the_dataframe_api() {
    let (_d, dir) = temp_dir();
    let url = write_file(&dir, "a.jpg", &image_bytes(300, 200, false));
    let session = Session::local();
    let b = url_frame(&session, &[url])
        .with_column(
            "img",
            col("url").url_download().image_decode(ImageMode::Rgb),
        )
        .unwrap()
        .select(vec![
            col("img").image_width().alias("w"),
            col("img").image_height().alias("h"),
            col("img").image_mode().alias("mode"),
            col("img").image_resize(64, 32).image_width().alias("rw"),
            col("img")
                .image_crop(10, 20, 50, 40)
                .image_height()
                .alias("ch"),
            col("img")
                .image_convert(ImageMode::L)
                .image_mode()
                .alias("grey"),
            col("img")
                .image_resize(16, 16)
                .image_encode("png")
                .image_decode(ImageMode::Rgba)
                .image_mode()
                .alias("roundtrip"),
            col("img").image_resize(4, 2).image_to_tensor().alias("t"),
        ])
        .unwrap()
        .collect()
        .await
        .unwrap();
    let b = concat(&b);
    let u32_at = |name: &str| {
        b.column_by_name(name)
            .unwrap()
            .as_primitive::<UInt32Type>()
            .value(0)
    };
    let str_at = |name: &str| {
        b.column_by_name(name)
            .unwrap()
            .as_string::<i32>()
            .value(0)
            .to_string()
    };
    assert_eq!((u32_at("w"), u32_at("h")), (300, 200));
    assert_eq!(str_at("mode"), "RGB");
    assert_eq!(u32_at("rw"), 64);
    assert_eq!(u32_at("ch"), 40);
    assert_eq!(str_at("grey"), "L");
    assert_eq!(str_at("roundtrip"), "RGBA");
    let t = b.column_by_name("t").unwrap().as_struct();
    let data = t.column(0).as_list::<i32>().value(0);
    let shape = t.column(1).as_list::<i32>().value(0);
    assert_eq!(data.len(), 4 * 2 * 3);
    let shape: Vec<i32> = shape
        .as_primitive::<regatta::arrow::datatypes::Int32Type>()
        .values()
        .to_vec();
    assert_eq!(shape, vec![2, 4, 3]);
}

#[tokio::test(flavor = "multi_thread")]
async fn image_functions_in_sql() {
    let (_d, dir) = temp_dir();
    let url = write_file(&dir, "a.png", &image_bytes(120, 80, true));
    let session = Session::local();
    session
        .register_dataframe("imgs", url_frame(&session, &[url]))
        .unwrap();
    let b = session
        .sql(
            "SELECT image_width(image_resize(image_decode(url_download(url), 'RGB'), 10, 5)) AS w,
                    image_height(image_decode(url_download(url, 'null'), 'L', 'null')) AS h,
                    image_mode(image_convert(image_decode(url_download(url)), 'LA')) AS m
             FROM imgs",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let b = concat(&b);
    assert_eq!(b.column(0).as_primitive::<UInt32Type>().value(0), 10);
    assert_eq!(b.column(1).as_primitive::<UInt32Type>().value(0), 80);
    assert_eq!(b.column(2).as_string::<i32>().value(0), "LA");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_argument_types_are_plan_errors() {
    let session = Session::local();
    let err = session
        .sql("SELECT image_decode('not bytes')")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("image_decode expects encoded bytes"),
        "{err}"
    );
    let err = session.sql("SELECT image_width(42)").await.unwrap_err();
    assert!(err.to_string().contains("decoded image"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn vector_distances_in_sql() {
    let session = Session::local();
    let b = session
        .sql(
            "SELECT dot_product([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]) AS d,
                    l2_distance([0.0, 0.0], [3.0, 4.0]) AS l,
                    cosine_distance([1.0, 0.0], [0.0, 2.0]) AS c",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let v = |i: usize| b[0].column(i).as_primitive::<Float64Type>().value(0);
    assert!((v(0) - 32.0).abs() < 1e-6);
    assert!((v(1) - 5.0).abs() < 1e-6);
    assert!((v(2) - 1.0).abs() < 1e-6);
}

#[tokio::test(flavor = "multi_thread")]
async fn text_chunks_explode_with_their_positions() {
    let session = Session::local();
    let schema = Arc::new(Schema::new(vec![
        Field::new("doc", DataType::Int64, false),
        Field::new("text", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(StringArray::from(vec!["a b c d e f g", "h i"])),
        ],
    )
    .unwrap();
    let b = session
        .from_batches(vec![batch])
        .unwrap()
        .with_column("chunk", col("text").text_chunk(3, 1))
        .unwrap()
        .explode_with_index("chunk", "pos")
        .unwrap()
        .select(vec![col("doc"), col("pos"), col("chunk")])
        .unwrap()
        .sort(vec![
            col("doc").sort(true, false),
            col("pos").sort(true, false),
        ])
        .unwrap()
        .collect()
        .await
        .unwrap();
    let b = concat(&b);
    let docs: Vec<i64> = b.column(0).as_primitive::<Int64Type>().values().to_vec();
    let pos: Vec<i64> = b.column(1).as_primitive::<Int64Type>().values().to_vec();
    let chunks: Vec<String> = b
        .column(2)
        .as_string::<i32>()
        .iter()
        .map(|s| s.unwrap().to_string())
        .collect();
    assert_eq!(docs, vec![1, 1, 1, 2]);
    assert_eq!(pos, vec![0, 1, 2, 0]);
    assert_eq!(chunks, vec!["a b c", "c d e", "e f g", "h i"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn text_split_gives_the_same_chunks_in_sql_and_the_dataframe_api() {
    let session = Session::local();
    let text = "one two three four five six seven eight nine ten eleven twelve";
    // LangChain's RecursiveCharacterTextSplitter(chunk_size=15, chunk_overlap=6).
    let want = vec![
        "one two three",
        "three four",
        "four five six",
        "six seven",
        "seven eight",
        "eight nine ten",
        "ten eleven",
        "twelve",
    ];
    let chunks = |b: &[RecordBatch]| -> Vec<String> {
        let b = concat(b);
        let list = b.column(0).as_list::<i32>().value(0);
        list.as_string::<i32>()
            .iter()
            .map(|s| s.unwrap().to_string())
            .collect()
    };
    let sql = session
        .sql(&format!("SELECT text_split('{text}', 15, 6) AS c"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(chunks(&sql), want);
    let df = session
        .sql(&format!("SELECT '{text}' AS t"))
        .await
        .unwrap()
        .select(vec![col("t").text_split(15, 6).alias("c")])
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(chunks(&df), want);
    let err = session
        .sql("SELECT text_split('x', 10, 10) AS c")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("overlap < chunk_size"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_functions_get_their_declared_batch_size() {
    let session = Session::local_with(EngineOptions {
        target_partitions: 1,
        ..EngineOptions::default()
    })
    .unwrap();
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let (s2, c2) = (sizes.clone(), calls.clone());
    let double = session.register_batch_udf(BatchUdf::new(
        "double_it",
        DataType::Float64,
        32,
        move |args: &[ArrayRef]| {
            c2.fetch_add(1, Ordering::SeqCst);
            let a = args[0].as_primitive::<Int64Type>();
            s2.lock().unwrap().push((a.value(0), a.len()));
            Ok(Arc::new(Float64Array::from_iter_values(
                a.values().iter().map(|v| *v as f64 * 2.0),
            )) as ArrayRef)
        },
    ));
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
    // Input arrives in uneven batches; the function still sees 32 rows per call.
    let batches: Vec<RecordBatch> = [10i64, 45, 7, 38]
        .iter()
        .scan(0i64, |start, n| {
            let b = RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int64Array::from_iter_values(*start..*start + n))],
            )
            .unwrap();
            *start += n;
            Some(b)
        })
        .collect();
    let out = session
        .from_batches(batches)
        .unwrap()
        .select(vec![col("x"), double.call(vec![col("x")]).alias("y")])
        .unwrap()
        .collect()
        .await
        .unwrap();
    let out = concat(&out);
    assert_eq!(out.num_rows(), 100);
    let x = out.column(0).as_primitive::<Int64Type>();
    let y = out.column(1).as_primitive::<Float64Type>();
    for i in 0..out.num_rows() {
        assert_eq!(y.value(i), x.value(i) as f64 * 2.0);
    }
    // Calls run concurrently; ordered by their first row they cover the input exactly.
    let mut seen = sizes.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, vec![(0, 32), (32, 32), (64, 32), (96, 4)]);
    // And SQL can call it by name.
    session
        .register_dataframe("t", session.sql("SELECT 21 AS x").await.unwrap())
        .unwrap();
    let b = session
        .sql("SELECT double_it(x) FROM t")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(b[0].column(0).as_primitive::<Float64Type>().value(0), 42.0);
    assert!(calls.load(Ordering::SeqCst) >= 5);
    let _ = b[0].column(0).is_null(0);
}

#[tokio::test(flavor = "multi_thread")]
async fn expensive_arguments_of_batch_functions_get_their_own_operator() {
    let (_d, dir) = temp_dir();
    let urls: Vec<String> = (0..10)
        .map(|i| write_file(&dir, &format!("{i}.png"), &image_bytes(50 + i, 40, true)))
        .collect();
    let session = Session::local();
    let width_of = session.register_batch_udf(BatchUdf::new(
        "width_of",
        DataType::UInt32,
        4,
        |args: &[ArrayRef]| {
            let imgs = regatta::types::ImageColumn::try_new(args[0].as_ref(), "width_of")?;
            Ok(Arc::new(regatta::arrow::array::UInt32Array::from_iter(
                (0..imgs.len()).map(|i| imgs.width(i)),
            )) as ArrayRef)
        },
    ));
    let df = url_frame(&session, &urls)
        .select(vec![
            col("id"),
            width_of
                .call(vec![col("url")
                    .url_download()
                    .image_decode(ImageMode::Rgb)
                    .image_resize(8, 8)])
                .alias("w"),
        ])
        .unwrap();
    let mut exec = df.execute().await.unwrap();
    let mut rows = 0;
    while let Some(b) = futures::StreamExt::next(&mut exec.stream).await {
        let b = b.unwrap();
        let w = b.column(1).as_primitive::<UInt32Type>();
        assert!(w.iter().all(|v| v == Some(8)));
        rows += b.num_rows();
    }
    assert_eq!(rows, 10);
    let ops: Vec<String> = exec
        .metrics()
        .into_iter()
        .filter(|m| m.name == "MorselExec")
        .map(|m| m.description)
        .collect();
    // One operator per level, innermost at the bottom; only the batch function's
    // operator has fixed rows.
    assert_eq!(ops.len(), 4, "{ops:?}");
    assert!(
        ops[0].contains("op=width_of,") && ops[0].contains("batch_rows=4"),
        "{ops:?}"
    );
    assert!(
        ops[1].contains("op=image_resize,") && !ops[1].contains("batch_rows"),
        "{ops:?}"
    );
    assert!(ops[2].contains("op=image_decode,"), "{ops:?}");
    assert!(ops[3].contains("op=url_download,"), "{ops:?}");
}
