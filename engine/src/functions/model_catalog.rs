//! [`ModelCatalog`]: the models one engine can call, by name.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::ScalarUDF;

use super::model_pool::{ModelPool, ModelProvider};
use super::model_udf::ModelUdf;
use super::{FunctionCost, FunctionRegistry};

#[derive(Debug, Default)]
struct Inner {
    udfs: HashMap<String, Arc<ScalarUDF>>,
    provider: Option<Arc<dyn ModelProvider>>,
}

/// Model pools known to one engine: registered by hand, or made on first use by a
/// [`ModelProvider`]. Cheap to clone; clones share the catalog.
#[derive(Debug, Clone, Default)]
pub struct ModelCatalog {
    inner: Arc<RwLock<Inner>>,
    registry: FunctionRegistry,
}

impl ModelCatalog {
    /// A catalog that records each model's cost in `registry`.
    pub fn new(registry: FunctionRegistry) -> Self {
        Self {
            inner: Arc::default(),
            registry,
        }
    }

    /// Sets who supplies models not registered by hand.
    pub fn set_provider(&self, provider: Arc<dyn ModelProvider>) {
        if let Ok(mut inner) = self.inner.write() {
            inner.provider = Some(provider);
        }
    }

    /// Adds `pool`; returns the function that calls it.
    pub fn register(&self, pool: Arc<dyn ModelPool>) -> Arc<ScalarUDF> {
        let name = pool.name().to_string();
        self.registry
            .insert(&name, FunctionCost::Model(pool.batch_size()));
        let udf = Arc::new(ScalarUDF::new_from_impl(ModelUdf::new(pool)));
        if let Ok(mut inner) = self.inner.write() {
            inner.udfs.insert(name, udf.clone());
        }
        udf
    }

    /// The function calling model `name`, asking the provider if it is not known yet.
    pub fn udf(&self, name: &str) -> Result<Arc<ScalarUDF>> {
        let provider = {
            let inner = self
                .inner
                .read()
                .map_err(|_| DataFusionError::Internal("model catalog lock poisoned".into()))?;
            if let Some(udf) = inner.udfs.get(name) {
                return Ok(udf.clone());
            }
            inner.provider.clone()
        };
        if let Some(pool) = provider
            .as_ref()
            .map(|p| p.pool(name))
            .transpose()?
            .flatten()
        {
            return Ok(self.register(pool));
        }
        Err(DataFusionError::Plan(format!(
            "unknown model {name:?}; known models: {}",
            self.known(provider.as_deref()).join(", ")
        )))
    }

    fn known(&self, provider: Option<&dyn ModelProvider>) -> Vec<String> {
        let mut names: Vec<String> = self
            .inner
            .read()
            .map(|i| i.udfs.keys().cloned().collect())
            .unwrap_or_default();
        if let Some(p) = provider {
            names.extend(p.known());
        }
        names.sort();
        names.dedup();
        if names.is_empty() {
            names.push("(none)".into());
        }
        names
    }
}
