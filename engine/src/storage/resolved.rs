//! [`Resolved`]: the object_store settings of one bucket, from the standard
//! chain (environment, then the AWS shared files) and [`StorageOptions`].

use super::aws_profile::AwsProfile;
use super::object_url::{ObjectUrl, StoreKind};
use super::options::StorageOptions;

/// One bucket's settings as object_store configuration keys, on top of what the
/// builders read from the environment themselves. Debug never shows a value.
#[derive(Clone, Default)]
pub struct Resolved {
    /// (object_store key, value).
    pub pairs: Vec<(&'static str, String)>,
    /// Plain `http://` endpoints are allowed (local S3-compatible servers).
    pub allow_http: bool,
    /// Where requests go, for error messages.
    pub endpoint: String,
    /// Values never to show (keys and tokens), for scrubbing messages.
    pub secrets: Vec<String>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self.pairs.iter().map(|(k, _)| *k).collect();
        f.debug_struct("Resolved")
            .field("keys", &keys)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Resolved {
    /// The settings of `url`'s bucket.
    pub fn of(url: &ObjectUrl, options: &StorageOptions) -> Self {
        match url.kind {
            StoreKind::S3 => Self::s3(url, options),
            // GCS and Azure read their own standard variables
            // (GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_*).
            StoreKind::Gcs => Self {
                endpoint: "Google Cloud Storage".into(),
                ..Self::default()
            },
            StoreKind::Azure => Self {
                endpoint: "Azure Blob Storage".into(),
                ..Self::default()
            },
        }
    }

    fn s3(url: &ObjectUrl, options: &StorageOptions) -> Self {
        let bucket = options.for_bucket(&url.bucket);
        let profile = AwsProfile::load(bucket.profile.as_deref());
        let mut r = Self::default();
        let env_keys = env("AWS_ACCESS_KEY_ID").is_some();
        if bucket.anonymous {
            r.pairs.push(("aws_skip_signature", "true".into()));
        } else if let Some(c) = &options.credentials {
            r.pairs.push(("aws_access_key_id", c.access_key_id.clone()));
            r.pairs
                .push(("aws_secret_access_key", c.secret_access_key.clone()));
            if let Some(t) = &c.session_token {
                r.pairs.push(("aws_session_token", t.clone()));
            }
            r.secrets
                .extend([c.access_key_id.clone(), c.secret_access_key.clone()]);
            r.secrets.extend(c.session_token.clone());
        } else if !env_keys {
            if let (Some(id), Some(secret)) = (&profile.access_key_id, &profile.secret_access_key) {
                r.pairs.push(("aws_access_key_id", id.clone()));
                r.pairs.push(("aws_secret_access_key", secret.clone()));
                if let Some(t) = &profile.session_token {
                    r.pairs.push(("aws_session_token", t.clone()));
                }
            }
        }
        let env_endpoint = env("AWS_ENDPOINT_URL_S3")
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .or_else(|| env("AWS_ENDPOINT"));
        let endpoint = match (&bucket.endpoint, &env_endpoint, &profile.endpoint_url) {
            (Some(e), _, _) => {
                r.pairs.push(("aws_endpoint", e.clone()));
                Some(e.clone())
            }
            (None, Some(e), _) => Some(e.clone()),
            (None, None, Some(e)) => {
                r.pairs.push(("aws_endpoint", e.clone()));
                Some(e.clone())
            }
            (None, None, None) => None,
        };
        let env_region = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION"));
        match (&bucket.region, &env_region, &profile.region) {
            (Some(region), _, _) | (None, None, Some(region)) => {
                r.pairs.push(("aws_region", region.clone()));
            }
            _ => {}
        }
        r.allow_http = endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"));
        r.endpoint = endpoint.unwrap_or_else(|| "Amazon S3".into());
        r.secrets.extend(
            [
                env("AWS_ACCESS_KEY_ID"),
                env("AWS_SECRET_ACCESS_KEY"),
                env("AWS_SESSION_TOKEN"),
                profile.access_key_id,
                profile.secret_access_key,
                profile.session_token,
            ]
            .into_iter()
            .flatten(),
        );
        r.secrets.retain(|s| s.len() >= 4);
        r
    }

    /// `message` with every secret replaced by `***`.
    pub fn scrub(&self, message: &str) -> String {
        let mut m = message.to_string();
        for s in &self.secrets {
            m = m.replace(s.as_str(), "***");
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{S3Credentials, StorageOptions};

    #[test]
    fn settings_never_show_or_leak_the_keys() {
        let options = StorageOptions {
            endpoint: Some("http://127.0.0.1:9000".into()),
            credentials: Some(S3Credentials {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: "wJalrXUtnFEMI/K7MDENG".into(),
                session_token: None,
            }),
            ..StorageOptions::default()
        };
        let url = ObjectUrl::parse("s3://b/k").unwrap();
        let r = Resolved::of(&url, &options);
        for shown in [format!("{options:?}"), format!("{r:?}")] {
            assert!(
                !shown.contains("wJalrXUtnFEMI") && !shown.contains("AKIDEXAMPLE"),
                "{shown}"
            );
        }
        assert!(r.allow_http, "a plain-http endpoint is allowed");
        let scrubbed =
            r.scrub("403 SignatureDoesNotMatch for AKIDEXAMPLE with wJalrXUtnFEMI/K7MDENG");
        assert!(
            !scrubbed.contains("AKIDEXAMPLE") && !scrubbed.contains("wJalr"),
            "{scrubbed}"
        );
    }
}
