//! Lance's side of the object stores: a provider for `s3://`, `gs://` and
//! `az://` that hands Lance the process's clients (Lance is built without its
//! own cloud features), and the Lance session that knows it.

use std::sync::{Arc, OnceLock};

use lance::io::{ObjectStore, ObjectStoreParams, ObjectStoreRegistry};
use lance::session::Session;
use lance_io::object_store::ObjectStoreProvider;

use super::object_url::ObjectUrl;
use super::stores::stores;

#[derive(Debug, Default)]
struct RegattaStores;

#[async_trait::async_trait]
impl ObjectStoreProvider for RegattaStores {
    async fn new_store(
        &self,
        base_path: url::Url,
        _params: &ObjectStoreParams,
    ) -> lance::Result<ObjectStore> {
        let url = ObjectUrl::parse(base_path.as_str())
            .map_err(|e| lance::Error::invalid_input(e.to_string()))?;
        let store = stores()
            .lance_store(&url)
            .map_err(|e| lance::Error::invalid_input(e.to_string()))?;
        Ok(ObjectStore::new(
            store, base_path, None, None, false, true, // object stores list in key order
            16, 3, None,
        ))
    }
}

/// The Lance session every dataset of this process is opened and written with.
pub fn session() -> Arc<Session> {
    static SESSION: OnceLock<Arc<Session>> = OnceLock::new();
    SESSION
        .get_or_init(|| {
            let registry = ObjectStoreRegistry::default();
            for scheme in ["s3", "s3a", "gs", "az", "abfs", "abfss"] {
                registry.insert(scheme, Arc::new(RegattaStores));
            }
            Arc::new(Session::new(
                lance::dataset::DEFAULT_INDEX_CACHE_SIZE,
                lance::dataset::DEFAULT_METADATA_CACHE_SIZE,
                Arc::new(registry),
            ))
        })
        .clone()
}
