//! Video frames through FFmpeg: frame counts and timestamps equal ffprobe's for
//! H.264 MP4 and MPEG-4 AVI; every n-th frame, key frames, a frame limit and an
//! output size; `video_metadata`; a truncated MP4 gives its decodable frames, then
//! an error naming the file (or, under on_error = null, just those frames); a
//! file that is not a video is named too; a video past its `timeout_ms` ends
//! with a timeout naming it.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use regatta::arrow::array::{Array, AsArray, RecordBatch};
use regatta::arrow::datatypes::{Float64Type, Int64Type, UInt32Type, UInt64Type};
use regatta::prelude::*;
use regatta_tests::photos_dir;
use regatta_tests::video_makers::{ffprobe_frames, zoom_video, ProbedFrame, VideoKind};

use crate::{bytes_frame, concat};

const FRAMES: u32 = 48;

struct Videos {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    mp4: PathBuf,
    avi: PathBuf,
}

fn videos() -> Videos {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let photo = photos_dir().join("chelsea.png");
    let mp4 = path.join("zoom.mp4");
    let avi = path.join("zoom.avi");
    zoom_video(&photo, &mp4, VideoKind::H264Mp4, FRAMES, (160, 120)).unwrap();
    zoom_video(&photo, &avi, VideoKind::Mpeg4Avi, FRAMES, (160, 120)).unwrap();
    Videos {
        _dir: dir,
        dir: path,
        mp4,
        avi,
    }
}

/// (url, frame_index, pts_seconds, width, height) per row, sorted.
async fn frame_rows(session: &Session, sql: &str) -> Vec<(String, i64, f64, u32, u32)> {
    let b = session.sql(sql).await.unwrap().collect().await.unwrap();
    rows_of(&b)
}

fn rows_of(batches: &[RecordBatch]) -> Vec<(String, i64, f64, u32, u32)> {
    if batches.is_empty() {
        return Vec::new();
    }
    let b = concat(batches);
    let url = b.column(0).as_string::<i32>();
    let idx = b.column(1).as_primitive::<Int64Type>();
    let pts = b.column(2).as_primitive::<Float64Type>();
    let w = b.column(3).as_primitive::<UInt32Type>();
    let h = b.column(4).as_primitive::<UInt32Type>();
    let mut rows: Vec<_> = (0..b.num_rows())
        .map(|i| {
            (
                url.value(i).to_string(),
                idx.value(i),
                pts.value(i),
                w.value(i),
                h.value(i),
            )
        })
        .collect();
    rows.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    rows
}

fn select(input: &Path, options: &str) -> String {
    format!(
        "SELECT url, frame_index, pts_seconds, image_width(image), image_height(image) \
         FROM video_frames('{}', '{options}')",
        input.display()
    )
}

fn assert_times(got: &[(String, i64, f64, u32, u32)], want: &[ProbedFrame], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: frames");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g.2 - w.pts_seconds).abs() < 1e-6,
            "{what}: frame {} at {} s, ffprobe says {}",
            g.1,
            g.2,
            w.pts_seconds
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_counts_and_timestamps_equal_ffprobes_for_mp4_and_avi() {
    let v = videos();
    let session = Session::local();
    for path in [&v.mp4, &v.avi] {
        let probed = ffprobe_frames(path).unwrap();
        assert_eq!(probed.len(), FRAMES as usize, "{}", path.display());
        let all = frame_rows(&session, &select(path, "")).await;
        assert_times(&all, &probed, &path.display().to_string());
        let indices: Vec<i64> = all.iter().map(|r| r.1).collect();
        assert_eq!(indices, (0..FRAMES as i64).collect::<Vec<_>>());
        assert!(all.iter().all(|r| (r.3, r.4) == (160, 120)));

        // Every 5th frame at 64x48: the same timestamps as ffprobe's 0th, 5th, ...
        let fifth = frame_rows(&session, &select(path, "every=5, size=64x48")).await;
        let want: Vec<ProbedFrame> = probed.iter().step_by(5).copied().collect();
        assert_times(&fifth, &want, "every=5");
        assert!(fifth.iter().all(|r| r.1 % 5 == 0 && (r.3, r.4) == (64, 48)));

        // Six frames a second of a 24 fps video: every 4th frame.
        let six = frame_rows(&session, &select(path, "fps=6")).await;
        let want: Vec<ProbedFrame> = probed.iter().step_by(4).copied().collect();
        assert_times(&six, &want, "fps=6");
        assert!(six.iter().all(|r| r.1 % 4 == 0), "{six:?}");

        // Key frames only: exactly ffprobe's key frames (one every 12 frames).
        let keys = frame_rows(&session, &select(path, "keyframes=true")).await;
        let want: Vec<ProbedFrame> = probed.iter().filter(|f| f.key).copied().collect();
        assert!(want.len() >= 4, "{want:?}");
        assert_times(&keys, &want, "keyframes");

        // A limit per video, and a width alone keeping the aspect ratio.
        let first = frame_rows(&session, &select(path, "limit=7, width=80")).await;
        assert_times(&first, &probed[..7], "limit=7");
        assert!(first.iter().all(|r| (r.3, r.4) == (80, 60)));
    }

    // A directory: both videos, in parallel partitions.
    let both = frame_rows(&session, &select(&v.dir, "every=12")).await;
    let urls: std::collections::BTreeSet<&str> = both.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(urls.len(), 2, "{urls:?}");
    assert_eq!(both.len(), 8);

    // The DataFrame API agrees with SQL.
    let df = session
        .read_video_frames(
            &v.mp4.display().to_string(),
            VideoOptions {
                selection: FrameSelection::EveryNth(5),
                ..VideoOptions::default()
            },
        )
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(concat(&df).num_rows(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_metadata_reads_the_container() {
    let v = videos();
    let session = Session::local();
    let blobs = vec![
        Some(std::fs::read(&v.mp4).unwrap()),
        Some(std::fs::read(&v.avi).unwrap()),
        Some(b"not a video at all".to_vec()),
        None,
    ];
    session
        .register_dataframe("clips", bytes_frame(&session, blobs))
        .unwrap();
    let b = session
        .sql(
            "SELECT m.codec, m.width, m.height, m.frame_count, m.fps, m.duration FROM \
             (SELECT id, video_metadata(bytes, 'null') AS m FROM clips) ORDER BY id",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let b = concat(&b);
    let codec = b.column(0).as_string::<i32>();
    assert_eq!((codec.value(0), codec.value(1)), ("h264", "mpeg4"));
    for row in 0..2 {
        assert_eq!(b.column(1).as_primitive::<UInt32Type>().value(row), 160);
        assert_eq!(b.column(2).as_primitive::<UInt32Type>().value(row), 120);
        assert_eq!(
            b.column(3).as_primitive::<UInt64Type>().value(row),
            u64::from(FRAMES)
        );
        assert!((b.column(4).as_primitive::<Float64Type>().value(row) - 24.0).abs() < 1e-6);
        let secs = b.column(5).as_primitive::<Float64Type>().value(row);
        assert!((secs - 2.0).abs() < 0.1, "{secs}");
    }
    assert!(
        codec.is_null(2) && codec.is_null(3),
        "bad bytes and null give null under 'null'"
    );
    let err = session
        .sql("SELECT video_metadata(bytes) FROM clips")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("row 2"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_mp4_gives_its_decodable_frames_then_an_error_naming_it() {
    let v = videos();
    let bytes = std::fs::read(&v.mp4).unwrap();
    let cut = v.dir.join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() * 6 / 10]).unwrap();
    let junk = v.dir.join("junk.mp4");
    std::fs::write(&junk, b"\0\0\0\x18ftypmp42 this is not really a video").unwrap();
    let decodable = ffprobe_frames(&cut).unwrap_or_default().len();
    let session = Session::local();

    // Null: just the decodable frames, as many as ffprobe decodes.
    let kept = frame_rows(&session, &select(&cut, "on_error=null")).await;
    assert!(
        !kept.is_empty() && kept.len() < FRAMES as usize,
        "{} frames",
        kept.len()
    );
    assert_eq!(kept.len(), decodable, "ffprobe decodes {decodable}");
    let probed = ffprobe_frames(&cut).unwrap();
    assert_times(&kept, &probed, "the decodable frames");

    // Raise: frames may reach the reader first (the decoder sends them before the
    // fault), then the query fails naming the file and how far it got.
    let mut stream = session
        .sql(&select(&cut, ""))
        .await
        .unwrap()
        .stream()
        .await
        .unwrap();
    let mut rows = 0;
    let err = loop {
        match stream.next().await {
            Some(Ok(b)) => rows += b.num_rows(),
            Some(Err(e)) => break e.to_string(),
            None => panic!("a truncated video must not end quietly ({rows} frames)"),
        }
    };
    assert!(
        err.contains("cut.mp4")
            && err.contains(&format!("truncated or corrupt: {decodable} frames decoded")),
        "{err}"
    );
    assert!(rows <= decodable, "{rows} frames before the error");

    // Not a video: named under raise, skipped under null.
    let err = session
        .sql(&select(&junk, ""))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("junk.mp4") && err.contains("cannot open"),
        "{err}"
    );
    assert!(frame_rows(&session, &select(&junk, "on_error=null"))
        .await
        .is_empty());

    // Bad options and a missing file are planning errors naming them.
    for (sql, needle) in [
        (select(&v.mp4, "speed=2"), "unknown option"),
        (select(&v.dir.join("missing.mp4"), ""), "missing.mp4"),
    ] {
        let err = crate::query_error(&session, &sql).await;
        assert!(err.contains(needle), "{sql}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_past_its_timeout_ends_with_a_timeout_naming_it() {
    const LONG: usize = 96;
    let dir = tempfile::tempdir().unwrap();
    let mp4 = dir.path().join("long.mp4");
    let photo = photos_dir().join("chelsea.png");
    zoom_video(&photo, &mp4, VideoKind::H264Mp4, LONG as u32, (640, 480)).unwrap();
    let session = Session::local();

    // A limit the video fits in changes nothing.
    let all = frame_rows(&session, &select(&mp4, "timeout_ms=600000")).await;
    assert_eq!(all.len(), LONG);

    // Decoding 96 VGA frames takes well over a millisecond: raise names the
    // file and the limit.
    let err = crate::query_error(&session, &select(&mp4, "timeout_ms=1")).await;
    assert!(
        err.contains("long.mp4") && err.contains("timed out") && err.contains("over 1 ms"),
        "{err}"
    );

    // Under null the video ends early, keeping what came before, and the
    // query goes on.
    let kept = frame_rows(&session, &select(&mp4, "timeout_ms=1, on_error=null")).await;
    assert!(kept.len() < LONG, "{} frames", kept.len());
}
