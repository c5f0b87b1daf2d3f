//! [`ObjectUrl`]: an object-store URL (`s3://bucket/key`, `gs://…`, `az://…`)
//! split into the store it lives in and the key inside it.

use std::fmt;

use crate::{EngineError, Result};

/// The kinds of object store regatta reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreKind {
    /// Amazon S3 and S3-compatible servers (`s3://`, `s3a://`).
    S3,
    /// Google Cloud Storage (`gs://`).
    Gcs,
    /// Azure Blob Storage (`az://`, `abfs://`, `abfss://`).
    Azure,
}

impl StoreKind {
    fn from_scheme(scheme: &str) -> Option<Self> {
        match scheme {
            "s3" | "s3a" => Some(Self::S3),
            "gs" => Some(Self::Gcs),
            "az" | "abfs" | "abfss" | "azure" => Some(Self::Azure),
            _ => None,
        }
    }

    /// The canonical scheme, as URLs are rebuilt with it.
    pub fn scheme(self) -> &'static str {
        match self {
            Self::S3 => "s3",
            Self::Gcs => "gs",
            Self::Azure => "az",
        }
    }
}

/// An object (or prefix) in a bucket: `s3://bucket/a/b.parquet`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectUrl {
    pub kind: StoreKind,
    pub bucket: String,
    /// The key, without a leading `/`; empty for the bucket itself.
    pub key: String,
}

/// True when `input` names an object store (rather than a local path or a
/// `file://` URL).
pub fn is_object_url(input: &str) -> bool {
    input
        .split_once("://")
        .is_some_and(|(scheme, _)| StoreKind::from_scheme(&scheme.to_ascii_lowercase()).is_some())
}

impl ObjectUrl {
    /// Parses `scheme://bucket/key`. Fails, naming the input, on another scheme
    /// or a missing bucket.
    pub fn parse(input: &str) -> Result<Self> {
        let bad = |why: &str| EngineError::InvalidArgument(format!("{input:?}: {why}"));
        let (scheme, rest) = input
            .split_once("://")
            .ok_or_else(|| bad("not a URL (expected s3://bucket/key)"))?;
        let kind = StoreKind::from_scheme(&scheme.to_ascii_lowercase()).ok_or_else(|| {
            bad("unsupported scheme; object stores are s3://, gs:// and az:// (file:// and plain paths are local)")
        })?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        // `az://container@account.dfs.core.windows.net/…` names the container.
        let bucket = bucket.split('@').next().unwrap_or_default();
        if bucket.is_empty() {
            return Err(bad("the bucket name is missing"));
        }
        Ok(Self {
            kind,
            bucket: bucket.to_string(),
            key: key.trim_start_matches('/').to_string(),
        })
    }

    /// The store's root, `s3://bucket`: what DataFusion registers stores under.
    pub fn store_root(&self) -> String {
        format!("{}://{}", self.kind.scheme(), self.bucket)
    }

    /// The same store, another key.
    pub fn with_key(&self, key: impl Into<String>) -> Self {
        Self {
            kind: self.kind,
            bucket: self.bucket.clone(),
            key: key.into(),
        }
    }

    /// A key under this one (`prefix/child`).
    pub fn join(&self, child: &str) -> Self {
        let key = if self.key.is_empty() {
            child.to_string()
        } else {
            format!("{}/{child}", self.key.trim_end_matches('/'))
        };
        self.with_key(key)
    }

    /// The last segment of the key.
    pub fn file_name(&self) -> &str {
        self.key
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default()
    }
}

impl fmt::Display for ObjectUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}/{}", self.kind.scheme(), self.bucket, self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buckets_and_keys_of_each_store() {
        let u = ObjectUrl::parse("s3://data/images/a.jpg").unwrap();
        assert_eq!(
            (u.kind, u.bucket.as_str(), u.key.as_str()),
            (StoreKind::S3, "data", "images/a.jpg")
        );
        assert_eq!(u.to_string(), "s3://data/images/a.jpg");
        assert_eq!(u.store_root(), "s3://data");
        assert_eq!(ObjectUrl::parse("s3a://b").unwrap().key, "");
        assert_eq!(ObjectUrl::parse("gs://b/k").unwrap().kind, StoreKind::Gcs);
        assert_eq!(
            ObjectUrl::parse("az://c@acct.dfs.core.windows.net/k")
                .unwrap()
                .bucket,
            "c"
        );
        assert_eq!(u.join("x").to_string(), "s3://data/images/a.jpg/x");
        assert_eq!(u.file_name(), "a.jpg");
    }

    #[test]
    fn refuses_other_schemes_and_missing_buckets_naming_the_input() {
        let e = ObjectUrl::parse("ftp://h/x").unwrap_err().to_string();
        assert!(
            e.contains("ftp://h/x") && e.contains("unsupported scheme"),
            "{e}"
        );
        let e = ObjectUrl::parse("s3:///k").unwrap_err().to_string();
        assert!(e.contains("bucket name is missing"), "{e}");
        assert!(is_object_url("S3://b/k") && !is_object_url("file:///x") && !is_object_url("/x"));
    }
}
