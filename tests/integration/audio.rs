//! Audio decoding of each format (made by FFmpeg from a known tone), resampling
//! and down-mixing, and broken audio under on_error = null and raise.

use std::process::Command;

use regatta::arrow::array::{Array, AsArray, RecordBatch};
use regatta::arrow::datatypes::{Float64Type, Int32Type};
use regatta::prelude::*;

use crate::{bytes_frame, concat};

/// 1.5 s of a 440 Hz tone at 22050 Hz in stereo, encoded by FFmpeg as `ext`.
fn tone(dir: &std::path::Path, ext: &str) -> Vec<u8> {
    tone_of(dir, ext, 1.5)
}

fn tone_of(dir: &std::path::Path, ext: &str, seconds: f64) -> Vec<u8> {
    let out = dir.join(format!("tone.{ext}"));
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=440:sample_rate=22050:duration={seconds}"
        ))
        .args(["-ac", "2"]);
    if ext == "ogg" {
        cmd.args(["-c:a", "libvorbis"]);
    }
    let status = cmd
        .arg(&out)
        .status()
        .expect("the audio tests need ffmpeg (scripts/setup.sh installs it)");
    assert!(status.success(), "ffmpeg could not make {ext}");
    std::fs::read(out).unwrap()
}

async fn info(
    session: &Session,
    blobs: Vec<Option<Vec<u8>>>,
    call: &str,
) -> Result<RecordBatch, String> {
    session
        .register_dataframe("clips", bytes_frame(session, blobs))
        .unwrap();
    let sql = format!(
        "SELECT id, audio_duration(a) AS d, audio_sample_rate(a) AS r, audio_channels(a) AS c \
         FROM (SELECT id, {call} AS a FROM clips) ORDER BY id"
    );
    match session.sql(&sql).await.unwrap().collect().await {
        Ok(b) => Ok(concat(&b)),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_format_decodes_to_its_duration_and_rate_and_resamples_to_mono_16k() {
    let d = tempfile::tempdir().unwrap();
    let formats = ["wav", "flac", "mp3", "ogg"];
    let blobs: Vec<Option<Vec<u8>>> = formats.iter().map(|f| Some(tone(d.path(), f))).collect();
    let s = Session::local();
    let b = info(&s, blobs.clone(), "audio_decode(bytes)")
        .await
        .unwrap();
    for (i, f) in formats.iter().enumerate() {
        let secs = b.column(1).as_primitive::<Float64Type>().value(i);
        assert!((secs - 1.5).abs() < 0.03, "{f}: {secs} s");
        assert_eq!(
            b.column(2).as_primitive::<Int32Type>().value(i),
            22_050,
            "{f}"
        );
        assert_eq!(b.column(3).as_primitive::<Int32Type>().value(i), 2, "{f}");
    }
    let s = Session::local();
    let b = info(&s, blobs, "audio_decode(bytes, 16000, true)")
        .await
        .unwrap();
    for (i, f) in formats.iter().enumerate() {
        let secs = b.column(1).as_primitive::<Float64Type>().value(i);
        assert!((secs - 1.5).abs() < 0.03, "{f}: {secs} s");
        assert_eq!(
            b.column(2).as_primitive::<Int32Type>().value(i),
            16_000,
            "{f}"
        );
        assert_eq!(b.column(3).as_primitive::<Int32Type>().value(i), 1, "{f}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_audio_is_null_under_null_and_an_error_naming_the_row_under_raise() {
    let d = tempfile::tempdir().unwrap();
    let flac = tone(d.path(), "flac");
    let truncated = flac[..flac.len() / 2].to_vec();
    let mut corrupt = tone(d.path(), "wav");
    corrupt.truncate(20); // a RIFF header and nothing after
    let blobs = vec![
        Some(flac),
        Some(truncated),
        Some(b"definitely not audio".to_vec()),
        Some(Vec::new()),
        Some(corrupt),
        None,
    ];
    let s = Session::local();
    let b = info(&s, blobs.clone(), "audio_decode(bytes, 0, false, 'null')")
        .await
        .unwrap();
    let nulls: Vec<bool> = (0..6).map(|i| b.column(1).is_null(i)).collect();
    assert_eq!(nulls, [false, true, true, true, true, true]);
    for (row, want) in [(1, "truncated audio"), (2, "not audio"), (3, "0 bytes")] {
        let s = Session::local();
        let blobs = vec![blobs[0].clone(), blobs[row].clone()];
        let err = info(&s, blobs, "audio_decode(bytes)").await.unwrap_err();
        assert!(err.contains("audio_decode failed at row 1"), "{err}");
        assert!(err.contains(want), "{err}");
    }
}

/// A clip whose decoding and resampling run past `timeout_ms` is that row's
/// timeout error: null under 'null', the query's error naming the row and
/// the deadline under 'raise'; with no limit the same clip decodes whole.
#[tokio::test(flavor = "multi_thread")]
async fn audio_decoded_past_its_timeout_is_the_rows_timeout_error() {
    let _one = crate::decoder_deadline_test().await;
    let d = tempfile::tempdir().unwrap();
    let long = tone_of(d.path(), "flac", 20.0);
    let s = Session::local();
    let b = info(
        &s,
        vec![Some(long.clone())],
        "audio_decode(bytes, 0, false, 'raise', 0)",
    )
    .await
    .unwrap();
    let secs = b.column(1).as_primitive::<Float64Type>().value(0);
    assert!((secs - 20.0).abs() < 0.05, "{secs} s");

    let s = Session::local();
    let b = info(
        &s,
        vec![Some(long.clone()), None],
        "audio_decode(bytes, 16000, true, 'null', 1)",
    )
    .await
    .unwrap();
    assert!(b.column(1).is_null(0), "decoded and resampled within 1 ms");
    let s = Session::local();
    let err = info(
        &s,
        vec![None, Some(long)],
        "audio_decode(bytes, 16000, true, 'raise', 1)",
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("audio_decode failed at row 1") && err.contains("timed out after 1 ms"),
        "{err}"
    );
}
