//! Whisper tiny.en through `transcribe`: the word error rate on 20 synthesised
//! Harvard sentences, one model load per actor, audio past 30 seconds cut into
//! windows, and SQL and DataFrame calls agreeing.

use regatta::arrow::array::{Array, AsArray, RecordBatch};
use regatta::prelude::*;
use regatta_tests::speech::{spoken_flac, word_error_rate, HARVARD};
use regatta_tests::whisper_dir;

use crate::{bytes_frame, concat};

const MODEL: &str = "whisper-tiny.en";

fn texts(batches: &[RecordBatch], column: usize) -> Vec<Option<String>> {
    let b = concat(batches);
    let t = b.column(column).as_string::<i32>();
    (0..t.len())
        .map(|i| (!t.is_null(i)).then(|| t.value(i).to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whisper_tiny_en_transcribes_harvard_sentences_under_15_percent_wer_loading_once() {
    whisper_dir();
    let dir = tempfile::tempdir().unwrap();
    let mut blobs: Vec<Option<Vec<u8>>> = HARVARD
        .iter()
        .enumerate()
        .map(|(i, s)| Some(spoken_flac(s, dir.path(), &format!("s{i}")).unwrap()))
        .collect();
    blobs.push(None); // a null clip gives null text
    let session = Session::local();
    session
        .register_dataframe("clips", bytes_frame(&session, blobs.clone()))
        .unwrap();
    let sql = session
        .sql(&format!(
            "SELECT id, transcribe(audio_decode(bytes, 16000, true), '{MODEL}') AS text \
             FROM clips ORDER BY id"
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let got = texts(&sql, 1);
    assert_eq!(got.len(), HARVARD.len() + 1);
    assert_eq!(got[HARVARD.len()], None, "null audio gives null text");
    let hyps: Vec<String> = got[..HARVARD.len()]
        .iter()
        .map(|t| t.clone().expect("a transcript"))
        .collect();
    let wer = word_error_rate(&HARVARD, &hyps);
    assert!(wer < 0.15, "WER {wer:.3}: {hyps:#?}");

    // The DataFrame API, in a second query: the same text, no second model load.
    let df = bytes_frame(&session, blobs)
        .with_column(
            "text",
            col("bytes")
                .audio_decode(16000, true, OnError::Raise)
                .transcribe(MODEL),
        )
        .unwrap()
        .sort(vec![col("id").sort(true, false)])
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(texts(&df, 2), got);
    let stats = session.model_stats(MODEL).unwrap();
    assert_eq!(stats.builds, 1, "two queries, one model load: {stats:?}");
    assert!(stats.batches >= 3, "21 clips in batches of 8: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_longer_than_thirty_seconds_is_transcribed_window_by_window() {
    whisper_dir();
    let dir = tempfile::tempdir().unwrap();
    // Sixteen sentences read as one clip: about 35 seconds, so two windows.
    let text = HARVARD[..16].join(" ");
    let flac = spoken_flac(&text, dir.path(), "long").unwrap();
    let session = Session::local();
    session
        .register_dataframe("clips", bytes_frame(&session, vec![Some(flac)]))
        .unwrap();
    let b = session
        .sql(&format!(
            "SELECT audio_duration(a) AS secs, transcribe(a, '{MODEL}') AS text \
             FROM (SELECT audio_decode(bytes, 16000, true) AS a FROM clips)"
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let b = concat(&b);
    let secs = b
        .column(0)
        .as_primitive::<regatta::arrow::datatypes::Float64Type>()
        .value(0);
    assert!(secs > 30.0, "the clip should pass 30 s, is {secs:.1} s");
    let hyp = b.column(1).as_string::<i32>().value(0).to_string();
    // Words from the first and the last sentence: both windows were decoded.
    let lower = hyp.to_lowercase();
    assert!(
        lower.contains("birch") && lower.contains("evening"),
        "{hyp}"
    );
    let wer = word_error_rate(&[text.as_str()], std::slice::from_ref(&hyp));
    assert!(wer < 0.25, "WER {wer:.3}: {hyp}");
}

#[tokio::test]
async fn transcribe_refuses_text_and_unknown_models_at_planning() {
    whisper_dir();
    let session = Session::local();
    session
        .register_dataframe("clips", bytes_frame(&session, vec![None]))
        .unwrap();
    for (sql, needle) in [
        (
            "SELECT transcribe('hello', 'whisper-tiny.en')",
            "decoded audio",
        ),
        (
            "SELECT transcribe(audio_decode(bytes), 'whisper-huge') FROM clips",
            "whisper-tiny.en",
        ),
    ] {
        let err = crate::query_error(&session, sql).await;
        assert!(err.contains(needle), "{sql}: {err}");
    }
}

#[tokio::test]
async fn a_whisper_directory_missing_its_weights_is_refused_when_the_query_is_planned() {
    let full = whisper_dir();
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(full.join(f), dir.path().join(f)).unwrap();
    }
    let session = Session::local();
    session
        .register_dataframe("clips", bytes_frame(&session, vec![None]))
        .unwrap();
    let sql = format!(
        "SELECT transcribe(audio_decode(bytes), '{}') FROM clips",
        dir.path().display()
    );
    // Refused by `sql` itself (planning), not by the run's first task.
    let err = match session.sql(&sql).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("planned a query over a Whisper directory without weights"),
    };
    assert!(err.contains("model.safetensors"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whisper_read_from_ctranslate2_model_bin_gives_the_same_text_as_safetensors() {
    whisper_dir();
    let ct2 = std::env::var("REGATTA_WHISPER_CT2_DIR").unwrap_or_else(|_| {
        panic!("set REGATTA_WHISPER_CT2_DIR to the CTranslate2 copy scripts/fetch_whisper.sh keeps (scripts/test does)")
    });
    assert!(
        std::path::Path::new(&ct2).join("model.bin").is_file(),
        "{ct2}/model.bin missing: run scripts/fetch_whisper.sh"
    );
    let dir = tempfile::tempdir().unwrap();
    let blobs: Vec<Option<Vec<u8>>> = HARVARD[..8]
        .iter()
        .enumerate()
        .map(|(i, s)| Some(spoken_flac(s, dir.path(), &format!("s{i}")).unwrap()))
        .collect();
    let session = Session::local();
    session
        .register_dataframe("clips", bytes_frame(&session, blobs))
        .unwrap();
    let mut runs = Vec::new();
    for model in [MODEL, ct2.as_str()] {
        let out = session
            .sql(&format!(
                "SELECT id, transcribe(audio_decode(bytes, 16000, true), '{model}') AS text \
                 FROM clips ORDER BY id"
            ))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        runs.push(texts(&out, 1));
    }
    assert_eq!(runs[0].len(), 8);
    assert_eq!(runs[0], runs[1], "model.bin and model.safetensors disagree");
}
