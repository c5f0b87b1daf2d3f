//! Broken inputs: each gives null under on_error = null, and under raise an error
//! naming the URL and the row.

use regatta::arrow::array::Array;
use regatta::prelude::*;
use regatta_tests::{closed_port, image_bytes, png_declaring, temp_dir, write_file, TestServer};

use crate::{concat, url_frame};

/// Runs download + decode over [good, bad] with `on_error`; returns the result or error text.
async fn run(bad: &str, good: &str, on_error: OnError) -> Result<Vec<bool>, String> {
    let session = Session::local();
    let df = url_frame(&session, &[good.to_string(), bad.to_string()])
        .with_column(
            "img",
            col("url")
                .url_download_with(on_error, 2_000, 1)
                .image_decode_with(ImageMode::Rgb, on_error),
        )
        .unwrap()
        .sort(vec![col("id").sort(true, false)])
        .unwrap();
    match df.collect().await {
        Ok(b) => {
            let b = concat(&b);
            let img = b.column_by_name("img").unwrap();
            Ok((0..img.len()).map(|i| img.is_valid(i)).collect())
        }
        Err(e) => Err(e.to_string()),
    }
}

async fn check(bad: &str, good: &str, expect_in_error: &str) {
    assert_eq!(
        run(bad, good, OnError::Null).await.unwrap(),
        vec![true, false],
        "{bad}: good row kept, bad row null"
    );
    let err = run(bad, good, OnError::Raise).await.unwrap_err();
    assert!(err.contains(bad), "error should name the URL {bad}: {err}");
    assert!(err.contains("row 1"), "error should name row 1: {err}");
    assert!(
        err.to_lowercase().contains(expect_in_error),
        "error should say {expect_in_error}: {err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_jpeg() {
    let (_d, dir) = temp_dir();
    let good = write_file(&dir, "good.png", &image_bytes(40, 30, true));
    let jpeg = image_bytes(64, 64, false);
    let bad = write_file(&dir, "cut.jpg", &jpeg[..200]);
    check(&bad, &good, "decode").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn zero_byte_file() {
    let (_d, dir) = temp_dir();
    let good = write_file(&dir, "good.png", &image_bytes(40, 30, true));
    let bad = write_file(&dir, "empty.jpg", b"");
    check(&bad, &good, "0 bytes").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_file() {
    let (_d, dir) = temp_dir();
    let good = write_file(&dir, "good.png", &image_bytes(40, 30, true));
    let bad = format!("file://{}/does_not_exist.jpg", dir.display());
    check(&bad, &good, "not found").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn non_image_bytes() {
    let (_d, dir) = temp_dir();
    let good = write_file(&dir, "good.png", &image_bytes(40, 30, true));
    let bad = write_file(&dir, "text.jpg", b"hello, I am not a picture at all");
    check(&bad, &good, "not a recognised image").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn png_declaring_ten_billion_pixels_is_refused_before_allocating() {
    let (_d, dir) = temp_dir();
    let good = write_file(&dir, "good.png", &image_bytes(40, 30, true));
    let bad = write_file(&dir, "bomb.png", &png_declaring(100_000, 100_000));
    check(&bad, &good, "100000x100000").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_url_on_loopback() {
    let (_d, dir) = temp_dir();
    let good = write_file(&dir, "good.png", &image_bytes(40, 30, true));
    let bad = format!("http://127.0.0.1:{}/img.png", closed_port());
    check(&bad, &good, "attempts").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_answering_500_is_retried_then_reported() {
    let (_d, dir) = temp_dir();
    let good = write_file(&dir, "good.png", &image_bytes(40, 30, true));
    let server = TestServer::start(500, b"boom".to_vec()).await;
    let bad = server.url("img.png");
    check(&bad, &good, "500").await;
    // Two runs, each 1 try + 1 retry.
    assert_eq!(
        server.requests(),
        4,
        "a 500 is transient: retried once per run"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http_download_succeeds_from_a_local_server() {
    let png = image_bytes(33, 21, true);
    let server = TestServer::start(200, png).await;
    let session = Session::local();
    let b = url_frame(&session, &[server.url("a.png")])
        .select(vec![col("url")
            .url_download()
            .image_decode(ImageMode::Rgb)
            .image_width()
            .alias("w")])
        .unwrap()
        .collect()
        .await
        .unwrap();
    let w = b[0]
        .column(0)
        .as_any()
        .downcast_ref::<regatta::arrow::array::UInt32Array>()
        .unwrap();
    assert_eq!(w.value(0), 33);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_input_file_names_the_path() {
    let session = Session::local();
    let err = session
        .read_parquet("/nonexistent/dir/x.parquet")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/dir/x.parquet"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_sql_is_a_clear_error() {
    let session = Session::local();
    let err = session.sql("SELEC 1").await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("sql"), "{err}");
}

/// A server that accepts connections and never answers: each row gets its
/// total deadline, not (retries + 1) request timeouts.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_never_answers_costs_a_row_its_deadline_not_every_retry() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/never", listener.local_addr().unwrap());
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(sock); // kept open, never answered
        }
    });
    let session = Session::local();
    // 1 s per request and 100 retries would hold the row for over 100 s; the
    // 2.5 s deadline ends it.
    let sql = format!("SELECT url_download('{url}', 'raise', 1000, 100, 2500) AS b");
    let err = session
        .sql(&sql)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&url), "{err}");
    assert!(err.contains("deadline"), "{err}");
    let tries = accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (2..=3).contains(&tries),
        "retried within the deadline only: {tries}"
    );
    let nulls = session
        .sql(&format!(
            "SELECT url_download('{url}', 'null', 1000, 100, 500) AS b"
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!(nulls[0].column(0).is_null(0), "null under on_error = null");
    silent.abort();
}

/// An image still decoding after `timeout_ms` is that row's timeout error: null
/// under 'null', the query's error naming the row and the deadline under
/// 'raise'; without a deadline the same image decodes.
#[tokio::test(flavor = "multi_thread")]
async fn an_image_decoded_past_its_timeout_is_the_rows_timeout_error() {
    let _one = crate::decoder_deadline_test().await;
    let big = image_bytes(1_000, 1_000, true);
    let decode = |call: &'static str, blobs: Vec<Option<Vec<u8>>>| async move {
        let session = Session::local();
        session
            .register_dataframe("imgs", crate::bytes_frame(&session, blobs))
            .unwrap();
        let sql = format!("SELECT id, image_width({call}) AS w FROM imgs ORDER BY id");
        match session.sql(&sql).await.unwrap().collect().await {
            Ok(b) => Ok(concat(&b)),
            Err(e) => Err(e.to_string()),
        }
    };
    let whole = decode("image_decode(bytes)", vec![Some(big.clone())])
        .await
        .unwrap();
    assert!(whole.column(1).is_valid(0), "decodes without a deadline");
    let timed = decode(
        "image_decode(bytes, 'RGB', 'null', 1)",
        vec![Some(big.clone()), None],
    )
    .await
    .unwrap();
    assert!(timed.column(1).is_null(0), "decoded within 1 ms");
    let err = decode(
        "image_decode(bytes, 'RGB', 'raise', 1)",
        vec![None, Some(big)],
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("image_decode failed at row 1") && err.contains("timed out after 1 ms"),
        "{err}"
    );
}
