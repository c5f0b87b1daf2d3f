//! `[storage]`: how every process of the cluster reaches object stores
//! (`s3://`, `gs://`, `az://`). Credentials stay in the standard chain
//! (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, the shared credentials file, a
//! profile): the file names where and how, never a secret.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `[storage]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `storage.endpoint`: an S3-compatible endpoint (`http://host:9000`);
    /// unset: AWS or `AWS_ENDPOINT_URL`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// `storage.region`; unset: `AWS_REGION`, the profile's, else us-east-1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `storage.anonymous`: unsigned requests (public buckets).
    pub anonymous: bool,
    /// `storage.profile`: the AWS profile; unset: `AWS_PROFILE`, else default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// `storage.max_retries`: retries of a failed request, with backoff.
    pub max_retries: u32,
    /// `storage.request_timeout_secs`: time one request may take.
    pub request_timeout_secs: u64,
    /// `storage.buckets`: per-bucket overrides, by bucket name.
    pub buckets: BTreeMap<String, BucketConfig>,
}

/// One bucket's overrides.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BucketConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anonymous: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: None,
            anonymous: false,
            profile: None,
            max_retries: 3,
            request_timeout_secs: 60,
            buckets: BTreeMap::new(),
        }
    }
}

impl StorageConfig {
    /// The problem with an endpoint, if it has one: (key, value, what is allowed).
    pub(crate) fn invalid(&self) -> Option<(String, String, &'static str)> {
        let endpoints = std::iter::once(("storage.endpoint".to_string(), &self.endpoint)).chain(
            self.buckets
                .iter()
                .map(|(b, c)| (format!("storage.buckets.{b}.endpoint"), &c.endpoint)),
        );
        for (key, e) in endpoints {
            if let Some(e) = e {
                if !(e.starts_with("http://") || e.starts_with("https://")) {
                    return Some((key, e.clone(), "an http:// or https:// URL"));
                }
            }
        }
        if self.request_timeout_secs == 0 {
            return Some((
                "storage.request_timeout_secs".into(),
                "0".into(),
                "an integer ≥ 1 (seconds)",
            ));
        }
        None
    }
}
