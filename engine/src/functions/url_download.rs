//! `url_download(url [, on_error [, timeout_ms [, max_retries [, deadline_ms]]]])`:
//! the bytes behind each URL (`http://`, `https://`, `s3://`, `gs://`, `az://`,
//! `file://` or a plain path). Each row has a total deadline across its retries.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use datafusion::arrow::array::{Array, ArrayRef, BinaryBuilder, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use futures::StreamExt;
use tokio::sync::Semaphore;

use crate::access::LocalOpenError;

use super::args::{array_arg, check_arity, int_arg, str_arg, OnError};
use super::io_runtime::block_on_io;
use super::row_failures::RowErrorClass;
use crate::access::{
    check_url_host, cut_query, refusal_in, AccessPolicy, GuardedResolver, Refusal, SharedAccess,
    UrlScheme,
};

pub const NAME: &str = "url_download";
const USAGE: &str =
    "url_download(url [, on_error 'raise'|'null'|'skip'|'record' [, timeout_ms [, max_retries [, deadline_ms]]]])";

/// Settings of one `url_download` operator.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// Requests in flight at once, across all calls of this function instance.
    pub max_connections: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retries after a transient failure (connection refused or reset, timeout, 5xx, 429).
    pub max_retries: u32,
    /// First backoff; doubles on every retry.
    pub backoff: Duration,
    /// Time one row may take in all, retries and backoff included: a server
    /// that never answers costs a row this long, not (retries + 1) timeouts.
    pub deadline: Duration,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        Self {
            max_connections: 32,
            timeout: Duration::from_secs(30),
            max_retries: 3,
            backoff: Duration::from_millis(100),
            deadline: Duration::from_secs(60),
        }
    }
}

/// The `url_download` scalar function.
#[derive(Debug)]
pub struct UrlDownload {
    signature: Signature,
    options: DownloadOptions,
    connections: Arc<Semaphore>,
    access: Arc<SharedAccess>,
    /// For a policy that allows every address: the system's resolver and proxies.
    open_client: OnceLock<reqwest::Client>,
    /// For a policy that refuses some: addresses checked after resolution and
    /// on every redirect, and no proxy (which would resolve names itself).
    guarded_client: OnceLock<reqwest::Client>,
}

/// Redirects a download follows, as browsers and reqwest's default do.
const MAX_REDIRECTS: usize = 10;

impl UrlDownload {
    /// A downloader with its own connection bound, reading under `access`.
    pub fn new(options: DownloadOptions, access: Arc<SharedAccess>) -> Self {
        let connections = Arc::new(Semaphore::new(options.max_connections.max(1)));
        Self {
            signature: Signature::variadic_any(Volatility::Volatile),
            options,
            connections,
            access,
            open_client: OnceLock::new(),
            guarded_client: OnceLock::new(),
        }
    }

    fn client(&self, policy: &AccessPolicy) -> Result<reqwest::Client> {
        let (cell, guarded) = if policy.private_networks {
            (&self.open_client, false)
        } else {
            (&self.guarded_client, true)
        };
        if let Some(c) = cell.get() {
            return Ok(c.clone());
        }
        let mut builder =
            reqwest::Client::builder().pool_max_idle_per_host(self.options.max_connections);
        if guarded {
            let access = self.access.clone();
            builder = builder
                .no_proxy()
                .dns_resolver(Arc::new(GuardedResolver {
                    access: access.clone(),
                }))
                .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                    if attempt.previous().len() >= MAX_REDIRECTS {
                        return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
                    }
                    let policy = access.get();
                    let checked = policy
                        .check_scheme(attempt.url().as_str())
                        .and_then(|_| check_url_host(&policy, attempt.url()));
                    match checked {
                        Ok(()) => attempt.follow(),
                        Err(r) => {
                            let to = cut_query(attempt.url().as_str());
                            attempt.error(Refusal(format!("redirect to {to}: {}", r.0)))
                        }
                    }
                }));
        }
        let c = builder
            .build()
            .map_err(|e| DataFusionError::Execution(format!("cannot build HTTP client: {e}")))?;
        Ok(cell.get_or_init(|| c).clone())
    }
}

impl PartialEq for UrlDownload {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}
impl Eq for UrlDownload {}
impl std::hash::Hash for UrlDownload {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        NAME.hash(state)
    }
}

/// Why one URL failed, and whether trying again may help.
#[derive(Debug)]
struct FetchError {
    message: String,
    transient: bool,
    class: RowErrorClass,
}

impl FetchError {
    fn io(message: impl Into<String>, transient: bool) -> Self {
        Self {
            message: message.into(),
            transient,
            class: RowErrorClass::Io,
        }
    }

    fn refused(r: Refusal) -> Self {
        Self {
            message: r.to_string(),
            transient: false,
            class: RowErrorClass::Access,
        }
    }

    fn too_big(cap: u64) -> Self {
        Self::refused(Refusal::too_big(cap))
    }
}

impl ScalarUDFImpl for UrlDownload {
    fn name(&self) -> &str {
        NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_arity(NAME, arg_types.len(), 1, 5, USAGE)?;
        match &arg_types[0] {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
                Ok(DataType::Binary)
            }
            other => Err(DataFusionError::Plan(format!(
                "{NAME} expects a string column of URLs, got {other}"
            ))),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let urls = array_arg(&args.args, 0, rows)?;
        let on_error = match str_arg(&args.args, 1, NAME, "on_error")? {
            Some(s) => OnError::parse(&s)?,
            None => OnError::Raise,
        };
        let mut opts = self.options.clone();
        if let Some(ms) = int_arg(&args.args, 2, NAME, "timeout_ms")? {
            opts.timeout = Duration::from_millis(ms.max(1) as u64);
        }
        if let Some(r) = int_arg(&args.args, 3, NAME, "max_retries")? {
            opts.max_retries = r.clamp(0, 100) as u32;
        }
        if let Some(ms) = int_arg(&args.args, 4, NAME, "deadline_ms")? {
            opts.deadline = Duration::from_millis(ms.max(1) as u64);
        }
        let urls = cast(&urls, &DataType::Utf8)?;
        let urls = urls
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| DataFusionError::Internal("url column is not Utf8".into()))?;
        // Shared with the I/O task, which must own what it reads.
        let list: Arc<Vec<Option<String>>> =
            Arc::new(urls.iter().map(|u| u.map(str::to_string)).collect());
        let policy = self.access.get();
        let client = self.client(&policy)?;
        let conns = self.connections.clone();
        let results = block_on_io(fetch_all(Arc::clone(&list), client, conns, opts, policy))?;
        let total: usize = results
            .iter()
            .map(|r| {
                r.as_ref()
                    .map(|b| b.as_ref().map_or(0, |v| v.len()))
                    .unwrap_or(0)
            })
            .sum();
        let mut out = BinaryBuilder::with_capacity(rows, total);
        for (row, r) in results.into_iter().enumerate() {
            match r {
                Ok(Some(bytes)) => out.append_value(&bytes),
                Ok(None) => out.append_null(),
                Err(e) => {
                    let url = list.get(row).cloned().flatten().map(|u| cut_query(&u));
                    on_error.fail_row(NAME, row, url, e.class, e.message)?;
                    out.append_null()
                }
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
    }
}

async fn fetch_all(
    urls: Arc<Vec<Option<String>>>,
    client: reqwest::Client,
    conns: Arc<Semaphore>,
    opts: DownloadOptions,
    policy: Arc<AccessPolicy>,
) -> Vec<std::result::Result<Option<Vec<u8>>, FetchError>> {
    let parallel = opts.max_connections.max(1);
    futures::stream::iter(0..urls.len())
        .map(|row| {
            let urls = Arc::clone(&urls);
            let client = client.clone();
            let conns = conns.clone();
            let opts = opts.clone();
            let policy = policy.clone();
            async move {
                let Some(u) = urls[row].as_deref() else {
                    return Ok(None);
                };
                let _permit = conns
                    .acquire_owned()
                    .await
                    .map_err(|_| FetchError::io("downloader closed", false))?;
                let deadline = opts.deadline;
                let fetch = fetch_with_retry(u, &client, &opts, &policy);
                match tokio::time::timeout(deadline, fetch).await {
                    Ok(fetched) => fetched.map(Some),
                    Err(_) => Err(FetchError::io(
                        format!("no answer within the row's deadline of {deadline:?}"),
                        true,
                    )),
                }
            }
        })
        .buffered(parallel)
        .collect()
        .await
}

async fn fetch_with_retry(
    url: &str,
    client: &reqwest::Client,
    opts: &DownloadOptions,
    policy: &AccessPolicy,
) -> std::result::Result<Vec<u8>, FetchError> {
    let mut attempt = 0u32;
    loop {
        match fetch_once(url, client, opts, policy).await {
            Ok(b) => return Ok(b),
            Err(e) if e.transient && attempt < opts.max_retries => {
                let wait = opts.backoff.saturating_mul(1u32 << attempt.min(10));
                log::debug!(
                    "{}: {} (retry {} in {wait:?})",
                    cut_query(url),
                    e.message,
                    attempt + 1
                );
                tokio::time::sleep(wait.min(Duration::from_secs(10))).await;
                attempt += 1;
            }
            Err(e) => {
                let tries = attempt + 1;
                return Err(FetchError {
                    message: if tries > 1 {
                        format!("{} (after {tries} attempts)", e.message)
                    } else {
                        e.message
                    },
                    ..e
                });
            }
        }
    }
}

async fn fetch_once(
    url: &str,
    client: &reqwest::Client,
    opts: &DownloadOptions,
    policy: &AccessPolicy,
) -> std::result::Result<Vec<u8>, FetchError> {
    let cap = policy.max_download_bytes;
    let scheme = policy.check_scheme(url).map_err(FetchError::refused)?;
    if matches!(scheme, UrlScheme::Http | UrlScheme::Https) {
        let parsed = reqwest::Url::parse(url).map_err(|e| FetchError::io(e.to_string(), false))?;
        // A name is checked by the resolver; an address never reaches one.
        check_url_host(policy, &parsed).map_err(FetchError::refused)?;
        let mut resp = client
            .get(parsed)
            .timeout(opts.timeout)
            .send()
            .await
            .map_err(|e| match refusal_in(&e) {
                // A refusal of the policy (resolver or redirect) is final.
                Some(r) => FetchError::refused(r.clone()),
                None => FetchError::io(
                    describe_reqwest(&e),
                    e.is_timeout() || e.is_connect() || e.is_request(),
                ),
            })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(FetchError::io(
                format!("HTTP {status}"),
                status.is_server_error() || status.as_u16() == 429,
            ));
        }
        if resp.content_length().is_some_and(|n| n > cap) {
            return Err(FetchError::too_big(cap));
        }
        // Read chunk by chunk: a server that lies about (or omits) its length
        // is stopped at the cap, not when memory runs out.
        let mut body = Vec::with_capacity(resp.content_length().unwrap_or(0) as usize);
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| FetchError::io(format!("reading body: {}", describe_reqwest(&e)), true))?
        {
            if (body.len() + chunk.len()) as u64 > cap {
                return Err(FetchError::too_big(cap));
            }
            body.extend_from_slice(&chunk);
        }
        return Ok(body);
    }
    if crate::storage::is_object_url(url) {
        // The store's client retries transient failures itself (bounded by
        // [storage]); a failure that reaches here is final.
        let parsed = crate::storage::ObjectUrl::parse(url)
            .map_err(|e| FetchError::io(e.to_string(), false))?;
        let bytes = crate::storage::remote::get_bytes_capped(&parsed, cap)
            .await
            .map_err(|e| match e {
                crate::EngineError::AccessRefused(_) => FetchError::too_big(cap),
                crate::EngineError::InputNotFound { .. } => {
                    FetchError::io("object not found", false)
                }
                other => FetchError::io(other.to_string(), false),
            })?;
        return Ok(bytes.to_vec());
    }
    let path =
        crate::io::paths::local_path(url).map_err(|e| FetchError::io(e.to_string(), false))?;
    if policy.local_roots.is_some() && !path.exists() {
        return Err(FetchError::io("file not found", false));
    }
    // The file the policy approved, checked again once open (a link swapped
    // in after the check is refused).
    let file = match policy.open_local(&path) {
        Ok(f) => f,
        Err(LocalOpenError::Refused(r)) => return Err(FetchError::refused(r)),
        Err(LocalOpenError::Io(e)) => return Err(local_io_error(e)),
    };
    read_file_capped(tokio::fs::File::from_std(file), cap)
        .await
        .map_err(|e| match e {
            ReadError::TooBig => FetchError::too_big(cap),
            ReadError::Io(e) => local_io_error(e),
        })
}

/// A local read's failure, as the row's error (retried only when transient).
fn local_io_error(e: std::io::Error) -> FetchError {
    FetchError::io(
        match e.kind() {
            std::io::ErrorKind::NotFound => "file not found".to_string(),
            _ => e.to_string(),
        },
        matches!(
            e.kind(),
            std::io::ErrorKind::Interrupted | std::io::ErrorKind::TimedOut
        ),
    )
}

enum ReadError {
    TooBig,
    Io(std::io::Error),
}

/// The bytes of `file`, or TooBig past `cap` (`/dev/zero` has no end).
async fn read_file_capped(
    file: tokio::fs::File,
    cap: u64,
) -> std::result::Result<Vec<u8>, ReadError> {
    use tokio::io::AsyncReadExt;
    let mut body = Vec::new();
    file.take(cap.saturating_add(1))
        .read_to_end(&mut body)
        .await
        .map_err(ReadError::Io)?;
    if body.len() as u64 > cap {
        return Err(ReadError::TooBig);
    }
    Ok(body)
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    // reqwest names the URL; its query may be a presigned signature.
    if let Some(url) = e.url() {
        msg = msg.replace(url.as_str(), &cut_query(url.as_str()));
    }
    msg
}
