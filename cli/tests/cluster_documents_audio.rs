//! The document-embedding (W6) and audio-transcription (W7) pipelines on a driver
//! and three workers (real processes on 127.0.0.1) give the local engine's rows:
//! PDFs by three producers downloaded, split into pages and 2048/200 chunks and
//! embedded; spoken FLAC clips decoded, resampled and transcribed by Whisper;
//! photographs classified by EfficientNet-Lite0 and searched for faces by MTCNN.

// Test scaffolding: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{cluster, cluster_with, ok, output, regatta, start, table, WorkerSetup};
use regatta_tests::pdf_makers::{make_pdf, PdfProducer};
use regatta_tests::speech::{spoken_flac, HARVARD};

/// A `name (id, url)` table of `paths` in three Parquet files; its `-t` argument.
fn url_table(dir: &std::path::Path, name: &str, paths: &[std::path::PathBuf]) -> String {
    let rows: Vec<String> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| format!("({i}, '{}')", p.display()))
        .collect();
    table(
        dir,
        name,
        "id",
        3,
        &format!(
            "SELECT column1 AS id, column2 AS url FROM (VALUES {})",
            rows.join(", ")
        ),
    )
}

const W6: &str = "\
WITH pages AS (
  SELECT id, unnest(pdf_pages(url_download(url), 100)) AS p FROM docs
), chunks AS (
  SELECT id, p['page'] AS page, unnest(text_split(p['text'], 2048, 200)) AS chunk FROM pages
)
SELECT id, page, chunk, embed_text(chunk, 'all-MiniLM-L6-v2') AS e
FROM chunks ORDER BY id, page, chunk";

#[test]
fn document_embedding_on_the_cluster_gives_the_local_rows() {
    regatta_tests::minilm_dir();
    regatta_tests::pdfium_dir();
    let d = tempfile::tempdir().unwrap();
    let pdf_dir = d.path().join("pdfs");
    std::fs::create_dir_all(&pdf_dir).unwrap();
    // Three pages' worth of distinct prose per document, so chunks overlap pages.
    let paths: Vec<_> = (0..6)
        .map(|i| {
            let text: String = (0..120)
                .map(|l| format!("Document {i} line {l} tells of boats, rivers and regattas.\n"))
                .collect();
            let producer = PdfProducer::ALL[i % PdfProducer::ALL.len()];
            make_pdf(producer, &text, &pdf_dir, &format!("doc{i}")).unwrap()
        })
        .collect();
    let docs = url_table(d.path(), "docs", &paths);
    let local = ok(regatta().args(["sql", "-f", "json", "-t", &docs, W6]));
    let rows = local.lines().filter(|l| l.starts_with('{')).count();
    assert!(rows >= 12, "expected several chunks per document: {local}");
    let c = cluster(&d.path().join("spill"));
    let remote = ok(c.cli().args(["submit", "-f", "json", "-t", &docs, W6]));
    // Same chunks in the same order; embeddings equal to float tolerance.
    common::assert_same_embeddings(&local, &remote, rows, "W6 ");
    let strip = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| l.split("\"e\"").next().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(strip(&remote), strip(&local));
}

const W7: &str = "\
SELECT id, transcribe(audio_decode(url_download(url), 16000, true), 'whisper-tiny.en') AS text
FROM clips ORDER BY id";

#[test]
fn audio_transcription_on_the_cluster_gives_the_local_text() {
    regatta_tests::whisper_dir();
    let d = tempfile::tempdir().unwrap();
    let paths: Vec<_> = HARVARD[..9]
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let p = d.path().join(format!("clip{i}.flac"));
            std::fs::write(&p, spoken_flac(s, d.path(), &format!("c{i}")).unwrap()).unwrap();
            p
        })
        .collect();
    let clips = url_table(d.path(), "clips", &paths);
    let local = ok(regatta().args(["sql", "-f", "csv", "-t", &clips, W7]));
    assert_eq!(local.lines().count(), 10, "{local}");
    assert!(local.to_lowercase().contains("lemons"), "{local}");
    let c = cluster(&d.path().join("spill"));
    let remote = ok(c.cli().args(["submit", "-f", "csv", "-t", &clips, W7]));
    assert_eq!(remote, local);
}

#[test]
fn a_job_calling_a_model_one_worker_lacks_is_refused_when_planned_naming_both() {
    regatta_tests::whisper_dir();
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("clip0.flac");
    std::fs::write(&p, spoken_flac(HARVARD[0], d.path(), "c0").unwrap()).unwrap();
    let clips = url_table(d.path(), "clips", &[p]);
    let c = cluster_with(
        &d.path().join("spill"),
        WorkerSetup {
            count: 1,
            ..WorkerSetup::default()
        },
    );
    // A second worker on a "node" without Whisper: its variable names an
    // empty directory's missing child, its cache and working directory are empty.
    let bare = d.path().join("bare-node");
    std::fs::create_dir_all(&bare).unwrap();
    let config = bare.join("worker.toml");
    std::fs::write(&config, "[worker]\ncpus = 1\n").unwrap();
    let mut cmd = regatta();
    cmd.current_dir(&bare)
        .env("REGATTA_WHISPER_DIR", bare.join("no-whisper-here"))
        .env("REGATTA_HOME", &bare)
        .args(["worker", "-c"])
        .arg(&config)
        .args(["--driver", &c.driver, "--spill-dir"])
        .arg(bare.join("spill"));
    let _bare_worker = start(cmd, "serving shuffle data").0;
    let (success, out, err) = output(c.cli().args(["submit", "-f", "csv", "-t", &clips, W7]));
    assert!(!success, "the job ran: {out}");
    assert!(
        err.contains("whisper-tiny.en")
            && err.contains("does not have it")
            && err.contains("regatta models pull whisper-tiny.en"),
        "{err}"
    );
    // A job without models still runs on both workers.
    let rows = ok(c.cli().args([
        "submit",
        "-f",
        "csv",
        "-t",
        &clips,
        "SELECT count(*) AS n FROM clips",
    ]));
    assert!(rows.contains('1'), "{rows}");
}

const W8: &str = "\
SELECT id, classify_image(image_decode(url_download(url)), 'efficientnet-lite0')['label'] AS label
FROM photos ORDER BY id";

const FACES: &str = "\
SELECT id, array_length(detect_faces(image_decode(url_download(url)))) AS faces
FROM photos ORDER BY id";

#[test]
fn image_classification_and_face_detection_on_the_cluster_give_the_local_rows() {
    regatta_tests::efficientnet_dir();
    regatta_tests::mtcnn_dir();
    let d = tempfile::tempdir().unwrap();
    let photos = regatta_tests::photos_dir();
    let paths: Vec<_> = [
        "chelsea.png",
        "coffee.png",
        "rocket.jpg",
        "astronaut.png",
        "camera.png",
    ]
    .iter()
    .map(|p| photos.join(p))
    .collect();
    let table = url_table(d.path(), "photos", &paths);
    // A cluster per model: a worker that already holds one model's actor stalled
    // starting a second model's (docs/architecture.md, Known limits).
    for (i, (sql, needle)) in [(W8, "espresso"), (FACES, "3,1")].into_iter().enumerate() {
        let local = ok(regatta().args(["sql", "-f", "csv", "-t", &table, sql]));
        assert_eq!(local.lines().count(), 6, "{local}");
        assert!(local.contains(needle), "{local}");
        let c = cluster(&d.path().join(format!("spill{i}")));
        let remote = ok(c.cli().args(["submit", "-f", "csv", "-t", &table, sql]));
        assert_eq!(remote, local);
    }
}

/// W9's steps (frames → faces → one row per face → crop → PNG), counted per frame.
fn w9_faces_per_frame(videos: &std::path::Path) -> String {
    format!(
        "SELECT regexp_replace(url, '^.*/', '') AS video, frame_index, pts_seconds, \
           count(*) AS faces, min(image_decode(png)['width']) > 8 AS cropped \
         FROM (SELECT url, frame_index, pts_seconds, \
                 image_encode(image_crop(image, CAST(f['x'] AS INT), CAST(f['y'] AS INT), \
                   CAST(f['w'] AS INT), CAST(f['h'] AS INT)), 'png') AS png \
               FROM (SELECT url, frame_index, pts_seconds, image, \
                       unnest(detect_faces(image)) AS f \
                     FROM video_frames('{}', 'every=6, size=320x240'))) \
         GROUP BY url, frame_index, pts_seconds ORDER BY video, frame_index",
        videos.display()
    )
}

#[test]
fn video_face_detection_on_the_cluster_decodes_on_the_workers_and_gives_the_local_rows() {
    use regatta_tests::video_makers::{zoom_video, VideoKind};
    regatta_tests::mtcnn_dir();
    let d = tempfile::tempdir().unwrap();
    let videos = d.path().join("videos");
    std::fs::create_dir_all(&videos).unwrap();
    let astronaut = regatta_tests::photos_dir().join("astronaut.png");
    for (name, kind) in [
        ("a.mp4", VideoKind::H264Mp4),
        ("b.avi", VideoKind::Mpeg4Avi),
        ("c.mp4", VideoKind::H264Mp4),
    ] {
        zoom_video(&astronaut, &videos.join(name), kind, 24, (320, 240)).unwrap();
    }
    let sql = w9_faces_per_frame(&videos);
    let local = ok(regatta().args(["sql", "-f", "csv", &sql]));
    // Three videos, every 6th of 24 frames, the astronaut's face in each.
    assert_eq!(local.lines().count(), 1 + 3 * 4, "{local}");
    assert!(
        local.lines().skip(1).all(|l| l.ends_with(",true")),
        "{local}"
    );
    let c = cluster(&d.path().join("spill"));
    let remote = ok(c.cli().args(["submit", "-f", "csv", &sql]));
    assert_eq!(remote, local);
    // The frames were decoded by the workers' tasks, more than one of them.
    let busy = c.workers().iter().filter(|w| w.tasks_done > 0).count();
    assert!(busy >= 2, "one worker did everything");

    // A connected session's read_video_frames DataFrame runs there too.
    let frames = |session: regatta::prelude::Session| {
        let videos = videos.clone();
        async move {
            use regatta::prelude::*;
            let options = VideoOptions::parse("every=4, limit=5, size=64x48").unwrap();
            session
                .read_video_frames(videos.to_str().unwrap(), options)?
                .select_columns(&["url", "frame_index", "pts_seconds"])?
                .sort(vec![
                    col("url").sort(true, false),
                    col("frame_index").sort(true, false),
                ])?
                .to_table_string(100)
                .await
        }
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (here, there) = rt
        .block_on(async {
            use regatta::prelude::*;
            let session =
                Session::connect_with_token(&format!("http://{}", c.driver), common::TOKEN).await?;
            let tasks_before: u64 = c.workers().iter().map(|w| w.tasks_done).sum();
            let there = frames(session).await?;
            let tasks_after: u64 = c.workers().iter().map(|w| w.tasks_done).sum();
            assert!(tasks_after > tasks_before, "the frames were read locally");
            Ok::<_, regatta::Error>((frames(Session::local()).await?, there))
        })
        .unwrap();
    // Every 4th frame, at most 5 per video: 0, 4, 8, 12, 16 of each of three.
    assert_eq!(
        here.matches(".mp4").count() + here.matches(".avi").count(),
        15,
        "{here}"
    );
    assert_eq!(there, here);
}
