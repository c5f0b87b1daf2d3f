//! Enforcing the [`AccessPolicy`]: the engine's copy of it, the DNS resolver
//! downloads go through, and the check of every file a plan scans.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_plan::ExecutionPlan;
pub use regatta_common::access::{
    address_class, cut_query, AccessPolicy, LocalOpenError, Refusal, UrlScheme,
    DEFAULT_MAX_DOWNLOAD_BYTES,
};

use crate::{EngineError, Result};

/// The policy an engine enforces. Replaceable while the engine runs: a worker
/// starts with the strict cluster default and takes its cluster's policy from
/// the driver when it registers.
#[derive(Debug)]
pub struct SharedAccess(RwLock<Arc<AccessPolicy>>);

impl SharedAccess {
    pub fn new(policy: AccessPolicy) -> Self {
        Self(RwLock::new(Arc::new(policy.resolved())))
    }

    /// The policy now.
    pub fn get(&self) -> Arc<AccessPolicy> {
        match self.0.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the policy; reads already under way keep the one they started with.
    pub fn set(&self, policy: AccessPolicy) {
        let policy = policy.resolved();
        match self.0.write() {
            Ok(mut p) => *p = Arc::new(policy),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(policy),
        }
    }
}

/// The policy of the session `config` belongs to (the engine puts its
/// [`SharedAccess`] there); a session no engine made reads as a local one.
pub fn policy_of(config: &datafusion::prelude::SessionConfig) -> Arc<AccessPolicy> {
    config
        .get_extension::<SharedAccess>()
        .map_or_else(|| Arc::new(AccessPolicy::local()), |a| a.get())
}

/// Resolves host names for downloads and drops the addresses the policy
/// refuses, so a name that resolves to `169.254.169.254` (or is rebound to it
/// between two lookups) is never connected to. reqwest calls it for the first
/// request and for every redirect; IP-literal hosts never reach a resolver and
/// are checked by [`check_url_host`].
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub access: Arc<SharedAccess>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.access.get();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.check_address(a.ip()) {
                    Ok(()) => true,
                    Err(r) => {
                        refused.get_or_insert(r);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                // Typed, so the download tells a refusal from a failed lookup.
                return Err(match refused {
                    Some(r) => Box::new(Refusal(format!("{host}: {}", r.0)))
                        as Box<dyn std::error::Error + Send + Sync>,
                    None => format!("{host} resolves to no address").into(),
                });
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// The policy's refusal somewhere in `e`'s chain of sources (the resolver's
/// or the redirect check's, inside reqwest's own error).
pub fn refusal_in<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refusal> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(r) = err.downcast_ref::<Refusal>() {
            return Some(r);
        }
        next = err.source();
    }
    None
}

/// Refuses `url` when its host is an IP address the policy refuses (a name is
/// checked once resolved, by [`GuardedResolver`]).
pub fn check_url_host(
    policy: &AccessPolicy,
    url: &reqwest::Url,
) -> std::result::Result<(), Refusal> {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => policy.check_address(ip.into()),
        Some(url::Host::Ipv6(ip)) => policy.check_address(ip.into()),
        _ => Ok(()),
    }
}

/// Checks every local file and Lance dataset `plan` scans against `policy`:
/// the one place that sees what SQL's file tables (`FROM 'x.parquet'`), a
/// client's logical plan and registered tables all read.
pub fn check_plan(plan: &Arc<dyn ExecutionPlan>, policy: &AccessPolicy) -> Result<()> {
    if let Some(source) = plan.downcast_ref::<DataSourceExec>() {
        if let Some(files) = source.data_source().downcast_ref::<FileScanConfig>() {
            let store = files.object_store_url.as_str();
            for group in &files.file_groups {
                for file in group.iter() {
                    let location = file.object_meta.location.as_ref();
                    if store.starts_with("file://") {
                        // Object-store paths percent-encode what a file name may hold.
                        let path = url::Url::parse(&format!("file:///{location}"))
                            .ok()
                            .and_then(|u| u.to_file_path().ok())
                            .unwrap_or_else(|| format!("/{location}").into());
                        policy.check_local(&path)?;
                    } else {
                        policy.check_scheme(&format!("{store}{location}"))?;
                    }
                }
            }
        }
    }
    if let Some(lance) = plan.downcast_ref::<crate::io::lance_scan::LanceFragmentScanExec>() {
        check_input(policy, lance.uri())?;
    }
    for child in plan.children() {
        check_plan(child, policy)?;
    }
    Ok(())
}

/// Checks an input a job names (a path, glob, directory or URL) before it is
/// listed: its scheme, and for a local directory or file, where it resolves.
/// The files a glob or directory expands to are checked one by one as well.
pub fn check_input(policy: &AccessPolicy, input: &str) -> std::result::Result<(), Refusal> {
    if policy.check_scheme(input)? == UrlScheme::File && policy.local_roots.is_some() {
        let path = crate::io::paths::local_path(input).map_err(|e| Refusal(e.to_string()))?;
        // A glob's files are checked once listed; a path that does not exist
        // is left to its reader to report missing (or to SQL, as an unknown table).
        if !path.to_string_lossy().contains(['*', '?', '[']) && path.exists() {
            policy.check_local(&path)?;
        }
    }
    Ok(())
}

/// Checks an output a job names: its scheme, and for a local path, that its
/// nearest existing directory resolves under the roots (it may not exist yet).
pub fn check_output(policy: &AccessPolicy, output: &str) -> std::result::Result<(), Refusal> {
    if policy.check_scheme(output)? != UrlScheme::File || policy.local_roots.is_none() {
        return Ok(());
    }
    let path = crate::io::paths::local_path(output).map_err(|e| Refusal(e.to_string()))?;
    let mut existing = path.as_path();
    while !existing.exists() {
        match existing.parent() {
            Some(p) if p.as_os_str().is_empty() => existing = std::path::Path::new("."),
            Some(p) => existing = p,
            None => break,
        }
    }
    policy.check_local(existing).map(|_| ())
}

impl From<Refusal> for EngineError {
    fn from(r: Refusal) -> Self {
        EngineError::AccessRefused(r.to_string())
    }
}
