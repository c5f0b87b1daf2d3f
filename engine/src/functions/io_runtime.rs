//! A small runtime dedicated to network and file I/O of multimodal functions.
//!
//! Functions are called synchronously by DataFusion (on a blocking thread when the
//! morsel operator runs them), so they hand their async I/O to this runtime and wait
//! for it. Keeping I/O here means a download never needs the caller's runtime flavour.

use regatta_common::AbortOnDrop;
use std::future::Future;
use std::sync::{Arc, Mutex};

use datafusion::error::{DataFusionError, Result};
use tokio::runtime::Runtime;

static IO_RUNTIME: Mutex<Option<Arc<Runtime>>> = Mutex::new(None);

fn runtime() -> Result<Arc<Runtime>> {
    let mut guard = IO_RUNTIME
        .lock()
        .map_err(|_| DataFusionError::Internal("I/O runtime lock poisoned".into()))?;
    if let Some(rt) = guard.as_ref() {
        return Ok(rt.clone());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // File reads run on blocking threads; a few suffice for local disks, and
        // every extra thread keeps its own allocator cache resident.
        .max_blocking_threads(8)
        .thread_name("regatta-io")
        .enable_all()
        .build()
        .map_err(|e| DataFusionError::Execution(format!("cannot start the I/O runtime: {e}")))?;
    let rt = Arc::new(rt);
    *guard = Some(rt.clone());
    Ok(rt)
}

/// Runs `fut` on the I/O runtime and blocks the calling thread until it is done.
pub fn block_on_io<F, T>(fut: F) -> Result<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let rt = runtime()?;
    let mut handle = AbortOnDrop(rt.spawn(fut));
    futures::executor::block_on(&mut handle.0)
        .map_err(|e| DataFusionError::Execution(format!("I/O task failed: {e}")))
}
