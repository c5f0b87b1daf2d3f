//! Installs a cluster file's `[storage]` as the process's object-store settings.

use regatta::storage::{install, BucketOptions, StorageOptions};
use regatta_cluster_config::StorageConfig;

/// The engine's options from `[storage]` (credentials stay in the standard chain).
pub fn storage_options(c: &StorageConfig) -> StorageOptions {
    StorageOptions {
        endpoint: c.endpoint.clone(),
        region: c.region.clone(),
        anonymous: c.anonymous,
        profile: c.profile.clone(),
        buckets: c
            .buckets
            .iter()
            .map(|(name, b)| {
                (
                    name.clone(),
                    BucketOptions {
                        endpoint: b.endpoint.clone(),
                        region: b.region.clone(),
                        anonymous: b.anonymous,
                        profile: b.profile.clone(),
                    },
                )
            })
            .collect(),
        max_retries: c.max_retries as usize,
        request_timeout: std::time::Duration::from_secs(c.request_timeout_secs),
        ..StorageOptions::default()
    }
}

/// Makes `[storage]` this process's object-store settings.
pub fn install_storage(c: &StorageConfig) {
    install(storage_options(c));
}
