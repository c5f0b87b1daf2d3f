//! [`StorageOptions`]: where object stores are and how to reach them, beyond what
//! the standard environment (`AWS_*`) and the AWS shared files already say.

use std::collections::BTreeMap;
use std::time::Duration;

/// Settings of every object store a process reaches. Credentials come from
/// `credentials` when a program sets them, else the environment, else the AWS
/// shared files; Debug never shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageOptions {
    /// S3 keys set by a program (the SDK); None: the standard chain.
    pub credentials: Option<S3Credentials>,
    /// An S3-compatible endpoint, e.g. `http://127.0.0.1:9000`; None: AWS (or
    /// `AWS_ENDPOINT_URL`). Addressed path-style (`endpoint/bucket/key`).
    pub endpoint: Option<String>,
    /// The S3 region; None: `AWS_REGION`, the profile's, else `us-east-1`.
    pub region: Option<String>,
    /// Unsigned requests, for public buckets.
    pub anonymous: bool,
    /// The AWS profile (in `~/.aws/credentials` and `~/.aws/config`); None:
    /// `AWS_PROFILE`, else `default`.
    pub profile: Option<String>,
    /// Per-bucket overrides, by bucket name.
    pub buckets: BTreeMap<String, BucketOptions>,
    /// Retries of one request (with exponential backoff) before it fails.
    pub max_retries: usize,
    /// Time one request may take in all its retries.
    pub retry_timeout: Duration,
    /// Time to open a connection.
    pub connect_timeout: Duration,
    /// Time one request may take.
    pub request_timeout: Duration,
}

/// What one bucket does differently.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BucketOptions {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub anonymous: Option<bool>,
    pub profile: Option<String>,
}

/// An S3 access key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("S3Credentials(***)")
    }
}

impl Default for StorageOptions {
    fn default() -> Self {
        Self {
            credentials: None,
            endpoint: None,
            region: None,
            anonymous: false,
            profile: None,
            buckets: BTreeMap::new(),
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// The settings that apply to one bucket, the overrides folded in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSettings {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub anonymous: bool,
    pub profile: Option<String>,
}

impl StorageOptions {
    /// The settings of `bucket`.
    pub fn for_bucket(&self, bucket: &str) -> BucketSettings {
        let o = self.buckets.get(bucket).cloned().unwrap_or_default();
        BucketSettings {
            endpoint: o.endpoint.or_else(|| self.endpoint.clone()),
            region: o.region.or_else(|| self.region.clone()),
            anonymous: o.anonymous.unwrap_or(self.anonymous),
            profile: o.profile.or_else(|| self.profile.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_override_wins_and_the_rest_falls_back() {
        let mut o = StorageOptions {
            endpoint: Some("http://127.0.0.1:9000".into()),
            region: Some("eu-west-1".into()),
            ..StorageOptions::default()
        };
        o.buckets.insert(
            "public".into(),
            BucketOptions {
                anonymous: Some(true),
                region: Some("us-west-2".into()),
                ..BucketOptions::default()
            },
        );
        let p = o.for_bucket("public");
        assert!(p.anonymous);
        assert_eq!(p.region.as_deref(), Some("us-west-2"));
        assert_eq!(p.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        let other = o.for_bucket("other");
        assert!(!other.anonymous);
        assert_eq!(other.region.as_deref(), Some("eu-west-1"));
    }
}
