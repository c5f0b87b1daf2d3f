//! A slow consumer holds back the pipeline: the download operator never holds more
//! than its bound of downloaded-but-unconsumed rows.

use std::time::Duration;

use futures::StreamExt;
use regatta::arrow::array::{Array, AsArray};
use regatta::arrow::datatypes::DataType;
use regatta::prelude::*;
use regatta_tests::{image_bytes, temp_dir, write_file, write_pngs};

use crate::url_frame;

#[tokio::test(flavor = "multi_thread")]
async fn slow_sink_bounds_downloaded_but_unconsumed_rows() {
    let (_d, dir) = temp_dir();
    let urls = write_pngs(&dir, 120, 16);
    let (morsel_rows, in_flight) = (4usize, 2usize);
    let session = Session::local_with(EngineOptions {
        target_partitions: 1,
        first_morsel_rows: morsel_rows,
        max_morsel_rows: morsel_rows,
        max_in_flight_morsels: in_flight,
        io_concurrency: 2,
        ..EngineOptions::default()
    })
    .unwrap();
    let bound = morsel_rows * in_flight;
    let df = url_frame(&session, &urls)
        .with_column("bytes", col("url").url_download())
        .unwrap();
    let mut exec = df.execute().await.unwrap();
    let downloaded = |exec: &regatta::Execution| {
        exec.metrics()
            .into_iter()
            .find(|m| m.name == "MorselExec")
            .map(|m| m.output_rows)
            .expect("the download runs in a MorselExec")
    };
    let mut consumed = 0usize;
    let mut max_ahead = 0usize;
    while let Some(batch) = exec.stream.next().await {
        consumed += batch.unwrap().num_rows();
        // The deliberately slow sink: give the producer every chance to run ahead.
        tokio::time::sleep(Duration::from_millis(25)).await;
        let ahead = downloaded(&exec).saturating_sub(consumed);
        max_ahead = max_ahead.max(ahead);
        assert!(
            ahead <= bound,
            "{ahead} rows downloaded but not consumed, bound is {bound}"
        );
    }
    assert_eq!(consumed, 120);
    assert_eq!(downloaded(&exec), 120);
    assert!(
        max_ahead >= morsel_rows,
        "the producer did run ahead of the slow sink ({max_ahead})"
    );
    let op = exec
        .metrics()
        .into_iter()
        .find(|m| m.name == "MorselExec")
        .unwrap();
    let peak = op.in_flight_rows_peak.unwrap();
    assert!(peak <= bound, "in-flight peak {peak} over bound {bound}");
    assert!(
        peak >= morsel_rows,
        "in-flight peak {peak} shows work in flight"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_analyze_shows_morsel_metrics() {
    let (_d, dir) = temp_dir();
    let url = write_file(&dir, "a.png", &image_bytes(8, 8, true));
    let session = Session::local();
    let text = url_frame(&session, &[url.clone(), url])
        .with_column(
            "img",
            col("url").url_download().image_decode(ImageMode::Rgb),
        )
        .unwrap()
        .explain_analyze()
        .await
        .unwrap();
    assert!(text.contains("MorselExec"), "{text}");
    // Download and decode are operators of their own, each with its own bounds.
    assert!(text.contains("op=url_download,"), "{text}");
    assert!(text.contains("op=image_decode,"), "{text}");
    assert!(text.contains("in_flight_rows_peak=2"), "{text}");
    assert!(text.contains("output_rows=2"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_over_wide_rows_pass_morsels_on_without_piling_them_up() {
    let (_d, dir) = temp_dir();
    let urls = write_pngs(&dir, 40, 32);
    let session = Session::local_with(EngineOptions {
        target_partitions: 1,
        first_morsel_rows: 4,
        max_morsel_rows: 4,
        ..EngineOptions::default()
    })
    .unwrap();
    let df = url_frame(&session, &urls)
        .with_column(
            "img",
            col("url").url_download().image_decode(ImageMode::Rgb),
        )
        .unwrap()
        .filter(col("img").image_width().gt_eq(lit(10u32)))
        .unwrap();
    let mut exec = df.execute().await.unwrap();
    let names: Vec<String> = exec.metrics().into_iter().map(|m| m.name).collect();
    assert!(
        names.contains(&"StreamingFilterExec".to_string()),
        "{names:?}"
    );
    let mut rows = 0;
    while let Some(b) = exec.stream.next().await {
        let b = b.unwrap();
        assert!(
            b.num_rows() <= 4,
            "a filtered batch of {} rows: the filter coalesced",
            b.num_rows()
        );
        rows += b.num_rows();
    }
    assert_eq!(rows, 40);
}

#[tokio::test(flavor = "multi_thread")]
async fn expensive_projections_over_a_file_scan_are_not_folded_into_the_scan() {
    let (_d, dir) = temp_dir();
    let url = write_file(&dir, "a.png", &image_bytes(8, 8, true));
    let session = Session::local();
    let table = dir.join("urls.parquet").to_string_lossy().to_string();
    url_frame(&session, &[url.clone(), url])
        .write_parquet(&table)
        .await
        .unwrap();
    let df = session
        .read_parquet(&table)
        .await
        .unwrap()
        .select(vec![col("url")
            .url_download()
            .image_decode(ImageMode::Rgb)
            .image_width()
            .alias("w")])
        .unwrap();
    let exec = df.execute().await.unwrap();
    let ops: Vec<String> = exec.metrics().into_iter().map(|m| m.description).collect();
    assert!(
        ops.iter()
            .any(|o| o.starts_with("MorselExec: op=url_download,")),
        "{ops:?}"
    );
    assert!(
        !ops.iter()
            .any(|o| o.contains("DataSourceExec") && o.contains("url_download")),
        "{ops:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expensive_filter_predicates_are_computed_by_morsel_operators() {
    let (_d, dir) = temp_dir();
    let wide = write_file(&dir, "wide.png", &image_bytes(12, 8, true));
    let narrow = write_file(&dir, "narrow.png", &image_bytes(4, 8, true));
    let session = Session::local();
    let table = dir.join("urls.parquet").to_string_lossy().to_string();
    url_frame(&session, &[wide.clone(), narrow, wide.clone()])
        .write_parquet(&table)
        .await
        .unwrap();
    session.register("urls", &table, None).await.unwrap();
    let df = session
        .sql("SELECT url FROM urls WHERE image_width(image_decode(url_download(url), 'RGB')) >= 10")
        .await
        .unwrap();
    let mut exec = df.execute().await.unwrap();
    let ops: Vec<String> = exec.metrics().into_iter().map(|m| m.description).collect();
    for op in ["url_download", "image_decode"] {
        assert!(
            ops.iter()
                .any(|o| o.starts_with(&format!("MorselExec: op={op},"))),
            "{op} in its own morsel operator: {ops:?}"
        );
    }
    // The rows kept are exactly those the predicate holds for, in their columns.
    let mut stream = exec.take_stream();
    let mut batches = Vec::new();
    while let Some(b) = stream.next().await {
        batches.push(b.unwrap());
    }
    let kept: Vec<String> = batches
        .iter()
        .flat_map(|b| {
            assert_eq!(b.num_columns(), 1, "only the selected column");
            let urls = regatta::arrow::compute::cast(b.column(0), &DataType::Utf8).unwrap();
            let urls = urls.as_string::<i32>();
            (0..urls.len())
                .map(|i| urls.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(kept, vec![wide.clone(), wide]);
}
