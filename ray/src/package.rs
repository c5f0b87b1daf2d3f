//! [`WorkerPackage`]: the working_dir Ray unpacks on every node: the regatta
//! binary (stripped) and the bootstrap script, zipped, named by a hash of what is
//! in it so Ray stores and unpacks it once per content.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::client::RayClient;
use crate::{RayError, Result};

/// The bootstrap Ray runs as the job of launch mode `bootstrap`.
pub const BOOTSTRAP: &str = include_str!("regatta_ray_bootstrap.py");
/// Its name in the package.
pub const BOOTSTRAP_NAME: &str = "regatta_ray_bootstrap.py";
/// The binary's name in the package.
pub const BINARY_NAME: &str = "regatta";

/// A built package, kept in a local cache directory.
#[derive(Debug, Clone)]
pub struct WorkerPackage {
    /// `_ray_pkg_<hash>.zip`.
    pub name: String,
    /// The zip on local disk.
    pub path: PathBuf,
}

impl WorkerPackage {
    /// The `gcs://` URI a job's `runtime_env.working_dir` names.
    pub fn uri(&self) -> String {
        format!("gcs://{}", self.name)
    }

    /// Packages `binary`; reuses the package built before from the same binary.
    pub fn build(binary: &Path) -> Result<Self> {
        let cache = cache_dir();
        let err = |path: &Path, message: String| RayError::Package {
            path: path.display().to_string(),
            message,
        };
        std::fs::create_dir_all(&cache)
            .map_err(|e| err(&cache, format!("cannot create the package cache: {e}")))?;
        let meta = std::fs::metadata(binary).map_err(|e| err(binary, e.to_string()))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let identity = hex(&Sha256::digest(
            format!(
                "{}|{}|{mtime}|{}|{}",
                binary.display(),
                meta.len(),
                env!("CARGO_PKG_VERSION"),
                hex(&Sha256::digest(BOOTSTRAP))
            )
            .as_bytes(),
        ));
        let index = cache.join(format!("{}.name", &identity[..32]));
        if let Ok(name) = std::fs::read_to_string(&index) {
            let path = cache.join(name.trim());
            if path.is_file() {
                return Ok(Self {
                    name: name.trim().to_string(),
                    path,
                });
            }
        }
        let started = std::time::Instant::now();
        let stripped = cache.join(format!("{}.bin", &identity[..32]));
        strip_into(binary, &stripped)?;
        let part = cache.join(format!("{}.zip.part", &identity[..32]));
        let hash = write_zip(&stripped, &part).map_err(|e| err(&part, e.to_string()));
        let _ = std::fs::remove_file(&stripped);
        let hash = hash?;
        let name = format!("_ray_pkg_{}.zip", &hash[..32]);
        let path = cache.join(&name);
        std::fs::rename(&part, &path).map_err(|e| err(&path, e.to_string()))?;
        std::fs::write(&index, &name).map_err(|e| err(&index, e.to_string()))?;
        prune(&cache, KEPT_PACKAGES);
        log::info!(
            "packaged {} for Ray as {name} ({} MiB) in {:?}",
            binary.display(),
            std::fs::metadata(&path).map_or(0, |m| m.len() >> 20),
            started.elapsed()
        );
        Ok(Self { name, path })
    }

    /// The zip's bytes.
    pub fn bytes(&self) -> Result<Vec<u8>> {
        std::fs::read(&self.path).map_err(|e| RayError::Package {
            path: self.path.display().to_string(),
            message: e.to_string(),
        })
    }
}

/// Builds (or reuses) the package of `binary` and stores it in Ray unless Ray
/// has it already.
pub async fn ensure_package(client: &RayClient, binary: &Path) -> Result<WorkerPackage> {
    let owned = binary.to_path_buf();
    let package = tokio::task::spawn_blocking(move || WorkerPackage::build(&owned))
        .await
        .map_err(|e| RayError::Launch(format!("packaging stopped: {e}")))??;
    if !client.has_package(&package.name).await? {
        let started = std::time::Instant::now();
        let bytes = package.bytes()?;
        let size = bytes.len();
        client.upload_package(&package.name, bytes).await?;
        log::info!(
            "uploaded {} ({} MiB) to Ray in {:?}",
            package.name,
            size >> 20,
            started.elapsed()
        );
    }
    Ok(package)
}

/// Packages kept in the cache: each rebuilt binary makes a new one.
const KEPT_PACKAGES: usize = 3;

/// Removes all but the `keep` newest packages (and their index files).
fn prune(cache: &Path, keep: usize) {
    let Ok(dir) = std::fs::read_dir(cache) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = dir
        .flatten()
        .filter_map(|e| {
            let modified = e.metadata().and_then(|m| m.modified()).ok()?;
            Some((modified, e.path()))
        })
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    let zips = files
        .iter()
        .filter(|(_, p)| p.extension().is_some_and(|e| e == "zip"));
    for (_, old) in zips.skip(keep) {
        let _ = std::fs::remove_file(old);
    }
    // An index whose package is gone is dropped too.
    for (_, p) in &files {
        if p.extension().is_some_and(|e| e == "name") {
            let named = std::fs::read_to_string(p).unwrap_or_default();
            if !cache.join(named.trim()).is_file() {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// `$REGATTA_RAY_PACKAGE_CACHE`, else `~/.cache/regatta/ray-packages`, else under
/// the temp dir.
fn cache_dir() -> PathBuf {
    if let Ok(d) = std::env::var("REGATTA_RAY_PACKAGE_CACHE") {
        return PathBuf::from(d);
    }
    match std::env::var_os("XDG_CACHE_HOME")
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache").into_os_string()))
    {
        Some(c) => Path::new(&c).join("regatta").join("ray-packages"),
        None => std::env::temp_dir().join("regatta-ray-packages"),
    }
}

/// Copies `binary` to `out` without its debug info and symbols (a debug build
/// shrinks by half); a plain copy when `strip` is not installed.
fn strip_into(binary: &Path, out: &Path) -> Result<()> {
    let stripped = Command::new("strip")
        .arg("-o")
        .arg(out)
        .arg(binary)
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        log::warn!("`strip` is not available: the worker package carries the whole binary");
        std::fs::copy(binary, out).map_err(|e| RayError::Package {
            path: binary.display().to_string(),
            message: e.to_string(),
        })?;
    }
    Ok(())
}

/// One zip entry as written: where its local header is and what it holds.
pub(crate) struct Entry {
    name: String,
    method: u16,
    mode: u32,
    crc: u32,
    compressed: u64,
    size: u64,
    offset: u64,
}

/// ZIP method numbers Python's zipfile reads.
const STORED: u16 = 0;
const LZMA: u16 = 14;
/// Bit 1 with LZMA: the stream ends with an end marker.
const LZMA_EOS_FLAG: u16 = 0x02;
/// Version 6.3, the first to define LZMA (what Python writes for it).
const ZIP_VERSION: u16 = 63;

/// Writes the zip (files at its root, the binary executable, LZMA-compressed)
/// and returns a sha256 of the names and contents it holds. Written by hand:
/// no Rust zip crate writes LZMA entries, and LZMA halves what deflate leaves.
fn write_zip(binary: &Path, out: &Path) -> std::io::Result<String> {
    let mut hash = Sha256::new();
    let mut file = std::io::BufWriter::with_capacity(1 << 20, File::create(out)?);
    let mut entries = Vec::new();
    let mut offset = 0u64;

    // The binary, through a raw LZMA1 encoder.
    let mut options = liblzma::stream::LzmaOptions::new_preset(0).map_err(std::io::Error::other)?;
    let (lc, lp, pb, dict) = (3u32, 0u32, 2u32, 1u32 << 20);
    options
        .literal_context_bits(lc)
        .literal_position_bits(lp)
        .position_bits(pb)
        .dict_size(dict);
    let mut filters = liblzma::stream::Filters::new();
    filters.lzma1(&options);
    let stream =
        liblzma::stream::Stream::new_raw_encoder(&filters).map_err(std::io::Error::other)?;
    let header_len = local_header(&mut file, BINARY_NAME, LZMA, LZMA_EOS_FLAG, 0, 0, 0)?;
    // Python's LZMA entry header: version 9.4, the property size, the properties.
    let mut props = vec![9u8, 4, 5, 0, ((pb * 5 + lp) * 9 + lc) as u8];
    props.extend_from_slice(&dict.to_le_bytes());
    file.write_all(&props)?;
    let counted = CountingWriter {
        inner: &mut file,
        written: 0,
    };
    let mut encoder = liblzma::write::XzEncoder::new_stream(counted, stream);
    let mut crc = crc32fast::Hasher::new();
    hash.update(BINARY_NAME.as_bytes());
    let mut reader = BufReader::with_capacity(1 << 20, File::open(binary)?);
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        crc.update(&buf[..n]);
        encoder.write_all(&buf[..n])?;
        size += n as u64;
    }
    let counted = encoder.finish()?;
    let compressed = props.len() as u64 + counted.written;
    entries.push(Entry {
        name: BINARY_NAME.to_string(),
        method: LZMA,
        mode: 0o100755,
        crc: crc.finalize(),
        compressed,
        size,
        offset,
    });
    offset += header_len + compressed;

    // The bootstrap, stored.
    let bootstrap = BOOTSTRAP.as_bytes();
    hash.update(BOOTSTRAP_NAME.as_bytes());
    hash.update(bootstrap);
    let (entry, offset) = write_stored(&mut file, BOOTSTRAP_NAME, 0o100644, bootstrap, offset)?;
    entries.push(entry);
    if offset > u64::from(u32::MAX) || size > u64::from(u32::MAX) {
        return Err(std::io::Error::other(
            "the package would exceed 4 GiB, which needs ZIP64",
        ));
    }

    // The sizes go into the local header too: rewrite the binary's.
    let mut file = file.into_inner().map_err(|e| e.into_error())?;
    {
        use std::io::{Seek, SeekFrom};
        let e = &entries[0];
        file.seek(SeekFrom::Start(e.offset + 14))?;
        file.write_all(&e.crc.to_le_bytes())?;
        file.write_all(&(e.compressed as u32).to_le_bytes())?;
        file.write_all(&(e.size as u32).to_le_bytes())?;
        file.seek(SeekFrom::End(0))?;
    }
    let mut file = std::io::BufWriter::new(file);
    write_directory(&mut file, &entries, offset)?;
    file.flush()?;
    Ok(hex(&hash.finalize()))
}

/// Writes the central directory of `entries`, which starts at `start`, and the
/// end record.
pub(crate) fn write_directory(
    file: &mut impl Write,
    entries: &[Entry],
    start: u64,
) -> std::io::Result<()> {
    let mut directory_len = 0u64;
    for e in entries {
        let flags = if e.method == LZMA { LZMA_EOS_FLAG } else { 0 };
        let mut h = Vec::with_capacity(46 + e.name.len());
        h.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        h.extend_from_slice(&((3u16 << 8) | ZIP_VERSION).to_le_bytes()); // made by Unix
        h.extend_from_slice(&ZIP_VERSION.to_le_bytes());
        h.extend_from_slice(&flags.to_le_bytes());
        h.extend_from_slice(&e.method.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes()); // time
        h.extend_from_slice(&0x0021u16.to_le_bytes()); // 1980-01-01
        h.extend_from_slice(&e.crc.to_le_bytes());
        h.extend_from_slice(&(e.compressed as u32).to_le_bytes());
        h.extend_from_slice(&(e.size as u32).to_le_bytes());
        h.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        h.extend_from_slice(&[0; 8]); // extra, comment, disk, internal attributes
        h.extend_from_slice(&(e.mode << 16).to_le_bytes());
        h.extend_from_slice(&(e.offset as u32).to_le_bytes());
        h.extend_from_slice(e.name.as_bytes());
        file.write_all(&h)?;
        directory_len += h.len() as u64;
    }
    let mut end = Vec::with_capacity(22);
    end.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    end.extend_from_slice(&[0; 4]); // this disk, the directory's disk
    end.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    end.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    end.extend_from_slice(&(directory_len as u32).to_le_bytes());
    end.extend_from_slice(&(start as u32).to_le_bytes());
    end.extend_from_slice(&0u16.to_le_bytes());
    file.write_all(&end)
}

/// Writes a stored (uncompressed) entry at `offset`; returns it and the offset
/// after it.
pub(crate) fn write_stored(
    w: &mut impl Write,
    name: &str,
    mode: u32,
    bytes: &[u8],
    offset: u64,
) -> std::io::Result<(Entry, u64)> {
    let crc = crc32fast::hash(bytes);
    let len = bytes.len() as u64;
    let header_len = local_header(w, name, STORED, 0, crc, len, len)?;
    w.write_all(bytes)?;
    let entry = Entry {
        name: name.to_string(),
        method: STORED,
        mode,
        crc,
        compressed: len,
        size: len,
        offset,
    };
    Ok((entry, offset + header_len + len))
}

/// Writes a local file header; returns its length.
fn local_header(
    w: &mut impl Write,
    name: &str,
    method: u16,
    flags: u16,
    crc: u32,
    compressed: u64,
    size: u64,
) -> std::io::Result<u64> {
    let mut h = Vec::with_capacity(30 + name.len());
    h.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
    h.extend_from_slice(&ZIP_VERSION.to_le_bytes());
    h.extend_from_slice(&flags.to_le_bytes());
    h.extend_from_slice(&method.to_le_bytes());
    h.extend_from_slice(&0u16.to_le_bytes());
    h.extend_from_slice(&0x0021u16.to_le_bytes());
    h.extend_from_slice(&crc.to_le_bytes());
    h.extend_from_slice(&(compressed as u32).to_le_bytes());
    h.extend_from_slice(&(size as u32).to_le_bytes());
    h.extend_from_slice(&(name.len() as u16).to_le_bytes());
    h.extend_from_slice(&0u16.to_le_bytes());
    h.extend_from_slice(name.as_bytes());
    w.write_all(&h)?;
    Ok(h.len() as u64)
}

/// Counts the bytes the encoder writes.
struct CountingWriter<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_package_holds_an_executable_binary_and_the_bootstrap_and_is_named_by_content() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("fake-binary");
        let body: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        std::fs::write(&bin, &body).unwrap();
        let out = d.path().join("p.zip");
        let h1 = write_zip(&bin, &out).unwrap();
        // Ray unpacks packages with Python's zipfile: it must read ours, CRCs and
        // modes included.
        let unpacked = d.path().join("unpacked");
        let script = "import sys, zipfile, os\n\
            z = zipfile.ZipFile(sys.argv[1])\n\
            assert z.testzip() is None\n\
            print(' '.join(f'{i.filename}:{oct(i.external_attr >> 16)}' for i in z.infolist()))\n\
            z.extractall(sys.argv[2])\n";
        let run = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&out)
            .arg(&unpacked)
            .output()
            .expect("python3 is needed to check the package as Ray reads it");
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&run.stdout).trim(),
            format!("{BINARY_NAME}:0o100755 {BOOTSTRAP_NAME}:0o100644")
        );
        assert_eq!(std::fs::read(unpacked.join(BINARY_NAME)).unwrap(), body);
        assert_eq!(
            std::fs::read_to_string(unpacked.join(BOOTSTRAP_NAME)).unwrap(),
            BOOTSTRAP
        );
        // The same content gives the same name; other content another.
        assert_eq!(write_zip(&bin, &d.path().join("q.zip")).unwrap(), h1);
        std::fs::write(&bin, b"other").unwrap();
        assert_ne!(write_zip(&bin, &d.path().join("r.zip")).unwrap(), h1);
    }
}
