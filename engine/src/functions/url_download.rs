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

use super::args::{array_arg, check_arity, int_arg, str_arg, OnError};
use super::io_runtime::block_on_io;
use super::row_failures::RowErrorClass;

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
    client: OnceLock<reqwest::Client>,
}

impl UrlDownload {
    /// A downloader with its own connection bound.
    pub fn new(options: DownloadOptions) -> Self {
        let connections = Arc::new(Semaphore::new(options.max_connections.max(1)));
        Self {
            signature: Signature::variadic_any(Volatility::Volatile),
            options,
            connections,
            client: OnceLock::new(),
        }
    }

    fn client(&self) -> Result<reqwest::Client> {
        if let Some(c) = self.client.get() {
            return Ok(c.clone());
        }
        let c = reqwest::Client::builder()
            .pool_max_idle_per_host(self.options.max_connections)
            .build()
            .map_err(|e| DataFusionError::Execution(format!("cannot build HTTP client: {e}")))?;
        Ok(self.client.get_or_init(|| c).clone())
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
        let client = self.client()?;
        let conns = self.connections.clone();
        let results = block_on_io(fetch_all(Arc::clone(&list), client, conns, opts))?;
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
                    let url = list.get(row).cloned().flatten();
                    on_error.fail_row(NAME, row, url, RowErrorClass::Io, e.message)?;
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
) -> Vec<std::result::Result<Option<Vec<u8>>, FetchError>> {
    let parallel = opts.max_connections.max(1);
    futures::stream::iter(0..urls.len())
        .map(|row| {
            let urls = Arc::clone(&urls);
            let client = client.clone();
            let conns = conns.clone();
            let opts = opts.clone();
            async move {
                let Some(u) = urls[row].as_deref() else {
                    return Ok(None);
                };
                let _permit = conns.acquire_owned().await.map_err(|_| FetchError {
                    message: "downloader closed".into(),
                    transient: false,
                })?;
                let deadline = opts.deadline;
                match tokio::time::timeout(deadline, fetch_with_retry(u, &client, &opts)).await {
                    Ok(fetched) => fetched.map(Some),
                    Err(_) => Err(FetchError {
                        message: format!("no answer within the row's deadline of {deadline:?}"),
                        transient: true,
                    }),
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
) -> std::result::Result<Vec<u8>, FetchError> {
    let mut attempt = 0u32;
    loop {
        match fetch_once(url, client, opts).await {
            Ok(b) => return Ok(b),
            Err(e) if e.transient && attempt < opts.max_retries => {
                let wait = opts.backoff.saturating_mul(1u32 << attempt.min(10));
                log::debug!("{url}: {} (retry {} in {wait:?})", e.message, attempt + 1);
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
                    transient: e.transient,
                });
            }
        }
    }
}

async fn fetch_once(
    url: &str,
    client: &reqwest::Client,
    opts: &DownloadOptions,
) -> std::result::Result<Vec<u8>, FetchError> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        let resp = client
            .get(url)
            .timeout(opts.timeout)
            .send()
            .await
            .map_err(|e| FetchError {
                transient: e.is_timeout() || e.is_connect() || e.is_request(),
                message: describe_reqwest(&e),
            })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(FetchError {
                message: format!("HTTP {status}"),
                transient: status.is_server_error() || status.as_u16() == 429,
            });
        }
        let body = resp.bytes().await.map_err(|e| FetchError {
            transient: true,
            message: format!("reading body: {}", describe_reqwest(&e)),
        })?;
        return Ok(body.to_vec());
    }
    if crate::storage::is_object_url(url) {
        // The store's client retries transient failures itself (bounded by
        // [storage]); a failure that reaches here is final.
        let parsed = crate::storage::ObjectUrl::parse(url).map_err(|e| FetchError {
            message: e.to_string(),
            transient: false,
        })?;
        return crate::storage::remote::get_bytes(&parsed)
            .await
            .map(|b| b.to_vec())
            .map_err(|e| FetchError {
                message: match e {
                    crate::EngineError::InputNotFound { .. } => "object not found".to_string(),
                    other => other.to_string(),
                },
                transient: false,
            });
    }
    let path = crate::io::paths::local_path(url).map_err(|e| FetchError {
        message: e.to_string(),
        transient: false,
    })?;
    tokio::fs::read(&path).await.map_err(|e| FetchError {
        transient: matches!(
            e.kind(),
            std::io::ErrorKind::Interrupted | std::io::ErrorKind::TimedOut
        ),
        message: match e.kind() {
            std::io::ErrorKind::NotFound => "file not found".to_string(),
            _ => e.to_string(),
        },
    })
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}
