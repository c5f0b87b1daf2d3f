//! Integration tests over the SDK, one binary so the heavy link happens once.

// Test scaffolding: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod access;
mod audio;
mod backpressure;
mod bad_input;
mod classify;
mod docs_paths;
mod documents;
mod faces;
mod layering;
mod listeners;
mod models;
mod multimodal;
mod object_store;
mod relational;
mod sources_sinks;
mod speech;
mod video;

use regatta::arrow::array::{Int64Array, RecordBatch, StringArray};
use regatta::arrow::datatypes::{DataType, Field, Schema};
use regatta::prelude::*;
use std::sync::Arc;

/// For the tests that leave decoders running past a deadline: one at a time,
/// each starting once none is left over from the one before. A process
/// tolerates only a few such decoders at once (past them a function with a
/// deadline fails its task), and every test here shares this process.
pub async fn decoder_deadline_test() -> tokio::sync::MutexGuard<'static, ()> {
    static ONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let guard = ONE.lock().await;
    regatta_tests::wait_for(
        "decoders left past their deadlines to finish",
        std::time::Duration::from_secs(120),
        || regatta::stuck_decoders() == 0,
    )
    .await;
    guard
}

/// A DataFrame of (id, url) rows.
pub fn url_frame(session: &Session, urls: &[String]) -> DataFrame {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("url", DataType::Utf8, false),
    ]));
    let ids: Vec<i64> = (0..urls.len() as i64).collect();
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(urls.to_vec())),
        ],
    )
    .unwrap();
    session.from_batches(vec![batch]).unwrap()
}

/// A DataFrame of (id, bytes) rows, ids from 0; `None` is a null blob.
pub fn bytes_frame(session: &Session, blobs: Vec<Option<Vec<u8>>>) -> DataFrame {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("bytes", DataType::Binary, true),
    ]));
    let ids: Vec<i64> = (0..blobs.len() as i64).collect();
    let bytes = regatta::arrow::array::BinaryArray::from_iter(blobs.iter().map(|b| b.as_deref()));
    let batch = RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from(ids)), Arc::new(bytes)],
    )
    .unwrap();
    session.from_batches(vec![batch]).unwrap()
}

/// The error `sql` gives, whether at planning or when run (it must give one).
pub async fn query_error(session: &Session, sql: &str) -> String {
    match session.sql(sql).await {
        Err(e) => e.to_string(),
        Ok(df) => df.collect().await.expect_err(sql).to_string(),
    }
}

/// Every batch concatenated.
pub fn concat(batches: &[RecordBatch]) -> RecordBatch {
    let schema = batches[0].schema();
    regatta::arrow::compute::concat_batches(&schema, batches).unwrap()
}
