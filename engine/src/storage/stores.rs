//! [`Stores`]: the process's object-store clients, one per bucket, built on first
//! use from [`StorageOptions`] and the standard chain, for DataFusion (object_store
//! 0.13) and for Lance (0.14). The process installs its options once (the CLI,
//! the driver and each worker from their cluster file); secrets never leave it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use super::object_url::{ObjectUrl, StoreKind};
use super::options::StorageOptions;
use super::resolved::Resolved;
use crate::{EngineError, Result};

/// A store client for DataFusion and regatta's own reads and writes.
pub type DfStore = Arc<dyn object_store::ObjectStore>;
/// A store client for Lance.
pub type LanceStore = Arc<dyn object_store_lance::ObjectStore>;

type Key = (StoreKind, String);

/// Builds a client of one object_store version; the two versions' builders have
/// the same methods on different types.
macro_rules! build_client {
    ($os:ident, $url:expr, $resolved:expr, $options:expr) => {{
        let (url, resolved, options): (&ObjectUrl, &Resolved, &StorageOptions) =
            ($url, $resolved, $options);
        let retry = $os::RetryConfig {
            backoff: Default::default(),
            max_retries: options.max_retries,
            retry_timeout: options.retry_timeout,
        };
        let client = $os::ClientOptions::new()
            .with_timeout(options.request_timeout)
            .with_connect_timeout(options.connect_timeout)
            .with_allow_http(resolved.allow_http);
        let built: std::result::Result<Arc<dyn $os::ObjectStore>, $os::Error> = (|| {
            Ok(match url.kind {
                StoreKind::S3 => {
                    let mut b = $os::aws::AmazonS3Builder::from_env()
                        .with_bucket_name(&url.bucket)
                        .with_retry(retry)
                        .with_client_options(client);
                    for (k, v) in &resolved.pairs {
                        b = b.with_config(k.parse()?, v.clone());
                    }
                    Arc::new(b.build()?) as Arc<dyn $os::ObjectStore>
                }
                StoreKind::Gcs => Arc::new(
                    $os::gcp::GoogleCloudStorageBuilder::from_env()
                        .with_bucket_name(&url.bucket)
                        .with_retry(retry)
                        .with_client_options(client)
                        .build()?,
                ),
                StoreKind::Azure => Arc::new(
                    $os::azure::MicrosoftAzureBuilder::from_env()
                        .with_container_name(&url.bucket)
                        .with_retry(retry)
                        .with_client_options(client)
                        .build()?,
                ),
            })
        })();
        built.map_err(|e| EngineError::Storage {
            url: url.store_root(),
            message: format!(
                "cannot set up the client: {}",
                resolved.scrub(&e.to_string())
            ),
        })
    }};
}

/// Every bucket's clients, cached.
#[derive(Debug)]
pub struct Stores {
    options: StorageOptions,
    resolved: Mutex<HashMap<Key, Resolved>>,
    df: Mutex<HashMap<Key, DfStore>>,
    lance: Mutex<HashMap<Key, LanceStore>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

static GLOBAL: OnceLock<RwLock<Arc<Stores>>> = OnceLock::new();

fn global() -> &'static RwLock<Arc<Stores>> {
    GLOBAL.get_or_init(|| RwLock::new(Arc::new(Stores::new(StorageOptions::default()))))
}

/// The process's stores.
pub fn stores() -> Arc<Stores> {
    global().read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Sets the process's storage options (dropping clients built with older ones).
pub fn install(options: StorageOptions) {
    *global().write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Stores::new(options));
}

impl Stores {
    pub fn new(options: StorageOptions) -> Self {
        Self {
            options,
            resolved: Mutex::new(HashMap::new()),
            df: Mutex::new(HashMap::new()),
            lance: Mutex::new(HashMap::new()),
        }
    }

    pub fn options(&self) -> &StorageOptions {
        &self.options
    }

    fn key(url: &ObjectUrl) -> Key {
        (url.kind, url.bucket.clone())
    }

    /// The settings of `url`'s bucket.
    pub fn resolved(&self, url: &ObjectUrl) -> Resolved {
        lock(&self.resolved)
            .entry(Self::key(url))
            .or_insert_with(|| Resolved::of(url, &self.options))
            .clone()
    }

    /// The DataFusion-side client of `url`'s bucket.
    pub fn store(&self, url: &ObjectUrl) -> Result<DfStore> {
        if let Some(s) = lock(&self.df).get(&Self::key(url)) {
            return Ok(s.clone());
        }
        let resolved = self.resolved(url);
        let store = build_client!(object_store, url, &resolved, &self.options)?;
        lock(&self.df).insert(Self::key(url), store.clone());
        Ok(store)
    }

    /// The Lance-side client of `url`'s bucket.
    pub fn lance_store(&self, url: &ObjectUrl) -> Result<LanceStore> {
        if let Some(s) = lock(&self.lance).get(&Self::key(url)) {
            return Ok(s.clone());
        }
        let resolved = self.resolved(url);
        let store = build_client!(object_store_lance, url, &resolved, &self.options)?;
        lock(&self.lance).insert(Self::key(url), store.clone());
        Ok(store)
    }

    /// An error about `url` from a store's error: what failed, with what to
    /// check, never a secret.
    pub fn error(&self, url: &ObjectUrl, failure: StoreFailure, message: &str) -> EngineError {
        let resolved = self.resolved(url);
        let message = resolved.scrub(message);
        let hint = match failure {
            StoreFailure::NotFound => "no such object: check the bucket and the key".to_string(),
            StoreFailure::Denied => format!(
                "access denied by {}: check the credentials (AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the shared credentials file) \
                 or set [storage] anonymous for a public bucket",
                resolved.endpoint
            ),
            StoreFailure::Other => format!(
                "the store at {} failed (after {} retries): check that it is up and \
                 that [storage] endpoint or AWS_ENDPOINT_URL points at it",
                resolved.endpoint, self.options.max_retries
            ),
        };
        if failure == StoreFailure::NotFound {
            return EngineError::InputNotFound {
                path: url.to_string(),
                reason: hint,
            };
        }
        EngineError::Storage {
            url: url.to_string(),
            message: format!("{hint}; {message}"),
        }
    }

    /// [`Stores::error`] from a DataFusion-side error.
    pub fn df_error(&self, url: &ObjectUrl, e: &object_store::Error) -> EngineError {
        use object_store::Error as E;
        let failure = match e {
            E::NotFound { .. } => StoreFailure::NotFound,
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => StoreFailure::Denied,
            _ => StoreFailure::classify(&e.to_string()),
        };
        self.error(url, failure, &e.to_string())
    }
}

/// The kinds of store failure that call for different advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFailure {
    NotFound,
    Denied,
    Other,
}

impl StoreFailure {
    /// From a message, where the error's type was lost on the way (S3 servers
    /// answer 403 for a bad signature and object_store reports it generically).
    pub fn classify(message: &str) -> Self {
        let m = message.to_ascii_lowercase();
        if m.contains("403")
            || m.contains("forbidden")
            || m.contains("accessdenied")
            || m.contains("signaturedoesnotmatch")
            || m.contains("invalidaccesskeyid")
        {
            Self::Denied
        } else if m.contains("nosuchkey") || m.contains("nosuchbucket") || m.contains("404") {
            Self::NotFound
        } else {
            Self::Other
        }
    }
}

/// DataFusion's object store registry, with regatta's buckets behind it: any
/// `s3://`, `gs://` or `az://` URL gets the process's client for its bucket.
#[derive(Debug, Default)]
pub struct StoreRegistry {
    local: datafusion::execution::object_store::DefaultObjectStoreRegistry,
}

impl datafusion::execution::object_store::ObjectStoreRegistry for StoreRegistry {
    fn register_store(&self, url: &url::Url, store: DfStore) -> Option<DfStore> {
        self.local.register_store(url, store)
    }

    fn get_store(&self, url: &url::Url) -> datafusion::error::Result<DfStore> {
        let text = url.as_str();
        if super::object_url::is_object_url(text) {
            let parsed = ObjectUrl::parse(text)?;
            return Ok(stores().store(&parsed)?);
        }
        self.local.get_store(url)
    }
}
