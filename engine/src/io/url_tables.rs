//! SQL's file tables (`SELECT * FROM 'data/*.parquet'`) under the access
//! policy: DataFusion's own factory, asked only for inputs the policy allows.
//! The check comes before the factory opens anything, since inferring a
//! table's schema already reads the file.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{DynamicFileCatalog, TableProvider, UrlTableFactory};
use datafusion::datasource::dynamic_file::DynamicListTableFactory;
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionContext;
use datafusion_session::SessionStore;

use crate::access::{check_input, SharedAccess};

#[derive(Debug)]
struct GuardedUrlTables {
    inner: Arc<DynamicListTableFactory>,
    access: Arc<SharedAccess>,
}

#[async_trait]
impl UrlTableFactory for GuardedUrlTables {
    async fn try_new(&self, url: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        check_input(&self.access.get(), url)
            .map_err(|r| DataFusionError::Plan(format!("table '{url}': {r}")))?;
        self.inner.try_new(url).await
    }
}

/// `ctx` with file tables in SQL, each checked against `access` (what
/// `SessionContext::enable_url_table` does, with the check in front).
pub fn enable_guarded_url_tables(ctx: SessionContext, access: Arc<SharedAccess>) -> SessionContext {
    let inner = Arc::new(DynamicListTableFactory::new(SessionStore::new()));
    let factory = Arc::new(GuardedUrlTables {
        inner: inner.clone(),
        access,
    });
    let catalogs = Arc::new(DynamicFileCatalog::new(
        Arc::clone(ctx.state().catalog_list()),
        factory as Arc<dyn UrlTableFactory>,
    ));
    let session_id = ctx.session_id();
    let ctx: SessionContext = ctx
        .into_state_builder()
        .with_session_id(session_id)
        .with_catalog_list(catalogs)
        .build()
        .into();
    inner.session_store().with_state(ctx.state_weak_ref());
    ctx
}
