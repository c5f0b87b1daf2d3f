//! Listing, reading and writing objects through the process's [`Stores`]: what
//! the engine's sources and sinks need beyond DataFusion's own readers.

use std::path::Path as LocalPath;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;

use super::object_url::ObjectUrl;
use super::stores::stores;
use crate::{EngineError, Result};

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn hidden(key: &str) -> bool {
    key.split('/')
        .any(|seg| seg.starts_with('.') || seg.starts_with('_'))
}

/// The key as an object_store path.
pub fn key_path(url: &ObjectUrl) -> Path {
    Path::from(url.key.trim_end_matches('/'))
}

/// Every object under `prefix` (recursively), as keys.
pub async fn list_keys(prefix: &ObjectUrl) -> Result<Vec<String>> {
    Ok(list_meta(prefix)
        .await?
        .into_iter()
        .map(|(k, _)| k)
        .collect())
}

/// Expands `input` (an object, a prefix, or a glob over keys) into the objects
/// to read, sorted. A prefix yields the objects under it ending in `extension`,
/// skipping hidden ones (`_SUCCESS`, `.staging`); fails, naming the URL, when
/// nothing matches.
pub async fn expand_objects(input: &ObjectUrl, extension: &str) -> Result<Vec<ObjectUrl>> {
    let not_found = |reason: &str| EngineError::InputNotFound {
        path: input.to_string(),
        reason: reason.to_string(),
    };
    let mut out = Vec::new();
    if has_glob(&input.key) {
        let fixed = input
            .key
            .find(['*', '?', '['])
            .map_or(input.key.as_str(), |i| &input.key[..i]);
        let dir = fixed.rsplit_once('/').map_or("", |(d, _)| d);
        let pattern = glob::Pattern::new(&input.key).map_err(|e| {
            EngineError::InvalidArgument(format!("bad glob pattern {:?}: {e}", input.to_string()))
        })?;
        for key in list_keys(&input.with_key(dir)).await? {
            if pattern.matches(&key) && !hidden(&key) {
                out.push(input.with_key(key));
            }
        }
        if out.is_empty() {
            return Err(not_found("the glob matches no objects"));
        }
    } else {
        let s = stores();
        let store = s.store(input)?;
        let exact = !input.key.is_empty()
            && !input.key.ends_with('/')
            && store.head(&key_path(input)).await.is_ok();
        if exact {
            out.push(input.clone());
        } else {
            for key in list_keys(input).await? {
                let rel = key
                    .strip_prefix(input.key.trim_end_matches('/'))
                    .unwrap_or(&key);
                if key.ends_with(extension) && !hidden(rel) {
                    out.push(input.with_key(key));
                }
            }
            if out.is_empty() {
                return Err(not_found(&format!(
                    "no such object, and no *{extension} objects under it as a prefix"
                )));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// True when something is stored at `url` or under it as a prefix.
pub async fn exists(url: &ObjectUrl) -> Result<bool> {
    let s = stores();
    let store = s.store(url)?;
    if !url.key.is_empty() && store.head(&key_path(url)).await.is_ok() {
        return Ok(true);
    }
    let mut listing = store.list(Some(&key_path(url)));
    match listing.next().await {
        Some(Ok(_)) => Ok(true),
        Some(Err(e)) => Err(s.df_error(url, &e)),
        None => Ok(false),
    }
}

/// The whole object at `url`.
pub async fn get_bytes(url: &ObjectUrl) -> Result<Bytes> {
    get_bytes_capped(url, u64::MAX).await
}

/// The bytes of the object at `url`, refused unread when the store says it
/// holds more than `cap` (the access policy's `max_download_bytes`).
pub async fn get_bytes_capped(url: &ObjectUrl, cap: u64) -> Result<Bytes> {
    let s = stores();
    let store = s.store(url)?;
    let got = store
        .get(&key_path(url))
        .await
        .map_err(|e| s.df_error(url, &e))?;
    if got.meta.size > cap {
        return Err(regatta_common::access::Refusal::too_big(cap).into());
    }
    got.bytes().await.map_err(|e| s.df_error(url, &e))
}

/// Uploads the local file `from` to `to`, streaming it (multipart when large).
pub async fn upload_file(from: &LocalPath, to: &ObjectUrl) -> Result<()> {
    let s = stores();
    let store = s.store(to)?;
    let mut file = tokio::fs::File::open(from)
        .await
        .map_err(|source| EngineError::Io {
            path: from.display().to_string(),
            source,
        })?;
    let mut writer = object_store::buffered::BufWriter::new(store, key_path(to));
    let copied = tokio::io::copy(&mut file, &mut writer).await;
    let done = match copied {
        Ok(_) => writer.shutdown().await,
        Err(e) => Err(e),
    };
    if let Err(e) = done {
        let _ = writer.abort().await;
        return Err(s.error(
            to,
            super::stores::StoreFailure::classify(&e.to_string()),
            &format!("uploading {}: {e}", from.display()),
        ));
    }
    Ok(())
}

/// Copies one object to another key of the same bucket.
pub async fn copy(from: &ObjectUrl, to: &ObjectUrl) -> Result<()> {
    let s = stores();
    let store = s.store(from)?;
    store
        .copy(&key_path(from), &key_path(to))
        .await
        .map_err(|e| s.df_error(to, &e))
}

/// Deletes every object under `prefix` (and the object `prefix` itself).
pub async fn delete_prefix(prefix: &ObjectUrl) -> Result<()> {
    let s = stores();
    let store = s.store(prefix)?;
    let mut keys = list_keys(prefix).await?;
    if !prefix.key.is_empty() && store.head(&key_path(prefix)).await.is_ok() {
        keys.push(prefix.key.clone());
    }
    let locations = futures::stream::iter(keys.into_iter().map(|k| Ok(Path::from(k)))).boxed();
    store
        .delete_stream(locations)
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| s.df_error(prefix, &e))?;
    Ok(())
}

/// Every object under `prefix` with its last-modified time.
pub async fn list_meta(prefix: &ObjectUrl) -> Result<Vec<(String, std::time::SystemTime)>> {
    let s = stores();
    let store = s.store(prefix)?;
    let path = key_path(prefix);
    let listed: Vec<object_store::ObjectMeta> = store
        .list((!prefix.key.is_empty()).then_some(&path))
        .try_collect()
        .await
        .map_err(|e| s.df_error(prefix, &e))?;
    Ok(listed
        .into_iter()
        .map(|m| (m.location.to_string(), m.last_modified.into()))
        .collect())
}

/// Deletes one object (absent is fine).
pub async fn delete_object(url: &ObjectUrl) -> Result<()> {
    let s = stores();
    let store = s.store(url)?;
    match store.delete(&key_path(url)).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(s.df_error(url, &e)),
    }
}
