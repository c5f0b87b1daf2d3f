//! [`ClusterClient`]: submits jobs to a regatta driver over gRPC and follows them.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use regatta_engine::arrow::record_batch::RecordBatch;
use regatta_proto::job_service_client::JobServiceClient;
use regatta_proto::{
    submit_request, AuthChannel, Drivers, JobInfo, JobRequest, JobStatus, ListJobsRequest,
    ListWorkersRequest, ResultLocationsResponse, SubmitRequest, TableSource, WorkerInfo,
};
use regatta_shuffle::ShuffleFetcher;

use crate::result_stream::ResultStream;
use crate::{Error, Result};

/// A connection to a driver, or to the replicas of a replicated one: calls go to
/// the leader and follow it when it changes. Cheap to clone.
#[derive(Clone)]
pub struct ClusterClient {
    address: String,
    drivers: Arc<Drivers>,
    /// For reading results from the workers, as the drivers are called.
    token: String,
    tls: Option<tonic::transport::ClientTlsConfig>,
}

impl std::fmt::Debug for ClusterClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterClient")
            .field("address", &self.address)
            .finish()
    }
}

impl ClusterClient {
    /// Connects to the driver at `url` (`http://host:port` or `host:port`; a
    /// comma-separated list names every replica of a replicated driver) with the
    /// cluster token. When `REGATTA_TLS_CA` names a PEM file, the connection is TLS
    /// and the driver's certificate must be signed by that CA.
    pub async fn connect(url: &str, token: &str) -> Result<Self> {
        let ca = match std::env::var_os("REGATTA_TLS_CA") {
            Some(path) => Some(std::fs::read(&path).map_err(|e| {
                Error::InvalidArgument(format!(
                    "REGATTA_TLS_CA {}: {e}",
                    std::path::Path::new(&path).display()
                ))
            })?),
            None => None,
        };
        Self::connect_with_ca(url, token, ca.as_deref()).await
    }

    /// [`ClusterClient::connect`] over TLS trusting `ca_pem` (PEM), or plain
    /// HTTP/2 when it is None.
    pub async fn connect_with_ca(url: &str, token: &str, ca_pem: Option<&[u8]>) -> Result<Self> {
        let tls = ca_pem.map(regatta_proto::client_trusting);
        let addresses: Vec<String> = Drivers::split(url)
            .iter()
            .map(|a| regatta_proto::url(a, tls.is_some()))
            .collect();
        let shown = addresses.join(",");
        let unreachable = |message: String| Error::Unreachable {
            address: shown.clone(),
            message,
        };
        // One replica must answer now, so a wrong address fails here, clearly.
        let mut reasons = Vec::new();
        for a in &addresses {
            let endpoint = regatta_proto::endpoint(a, tls.as_ref())
                .map_err(|e| unreachable(format!("not a valid address: {e}")))?
                .connect_timeout(Duration::from_secs(5));
            match endpoint.connect().await {
                Ok(_) => {
                    reasons.clear();
                    break;
                }
                Err(e) => reasons.push(format!("{a}: {}", describe(&e))),
            }
        }
        if !reasons.is_empty() {
            return Err(unreachable(reasons.join("; ")));
        }
        let drivers = Drivers::new(addresses, token, tls.clone()).map_err(unreachable)?;
        Ok(Self {
            address: shown,
            drivers: Arc::new(drivers),
            token: token.to_string(),
            tls,
        })
    }

    /// The driver's address (every replica's, comma-separated).
    pub fn address(&self) -> &str {
        &self.address
    }

    fn status(&self, s: tonic::Status) -> Error {
        if regatta_proto::is_retryable(&s) {
            return Error::Unreachable {
                address: self.address.clone(),
                message: s.message().to_string(),
            };
        }
        Error::Cluster {
            address: self.address.clone(),
            code: s.code(),
            message: s.message().to_string(),
        }
    }

    /// Calls the leading driver's JobService.
    async fn call<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: Fn(JobServiceClient<AuthChannel>) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        self.drivers
            .call(|ch| {
                // Only plans and job states travel here; rows come from the
                // workers over Flight.
                f(JobServiceClient::new(ch)
                    .max_decoding_message_size(256 << 20)
                    .max_encoding_message_size(256 << 20))
            })
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| self.status(s))
    }

    /// Submits SQL over `tables` (name, path); returns the accepted job.
    pub async fn submit_sql(
        &self,
        name: &str,
        sql: &str,
        tables: &[(&str, &str)],
    ) -> Result<JobInfo> {
        self.submit(SubmitRequest {
            name: name.to_string(),
            plan: Some(submit_request::Plan::Sql(sql.to_string())),
            tables: tables
                .iter()
                .map(|(n, p)| TableSource {
                    name: n.to_string(),
                    path: p.to_string(),
                    format: regatta_proto::FileFormat::Unspecified as i32,
                })
                .collect(),
            ..Default::default()
        })
        .await
    }

    /// Submits any request. Retries (to another replica, after a leader change)
    /// carry one `request_id`, chosen here when the request has none, so they
    /// never start the job twice.
    pub async fn submit(&self, mut request: SubmitRequest) -> Result<JobInfo> {
        if request.request_id.is_empty() {
            request.request_id = regatta_common::RequestId::generate().to_string();
        }
        self.call(|mut c| {
            let r = request.clone();
            async move { c.submit(r).await }
        })
        .await
    }

    /// A job's progress.
    pub async fn job(&self, job: u64) -> Result<JobInfo> {
        self.call(|mut c| async move { c.get_job(JobRequest { job_id: job }).await })
            .await
    }

    /// Every job the driver knows.
    pub async fn jobs(&self) -> Result<Vec<JobInfo>> {
        Ok(self
            .call(|mut c| async move { c.list_jobs(ListJobsRequest {}).await })
            .await?
            .jobs)
    }

    /// Cancels a job.
    pub async fn cancel(&self, job: u64) -> Result<JobInfo> {
        self.call(|mut c| async move { c.cancel_job(JobRequest { job_id: job }).await })
            .await
    }

    /// The workers and their resources.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        Ok(self
            .call(|mut c| async move { c.list_workers(ListWorkersRequest {}).await })
            .await?
            .workers)
    }

    /// Follows a job until it ends, calling `progress` on every change; returns the
    /// last state.
    pub async fn watch(&self, job: u64, mut progress: impl FnMut(&JobInfo)) -> Result<JobInfo> {
        let mut last: Option<JobInfo> = None;
        // A leader change ends the stream; the watch goes on at the new leader.
        let deadline_per_gap = self.drivers.patience;
        let mut gap_since = std::time::Instant::now();
        loop {
            let mut stream = self
                .call(|mut c| async move { c.watch_job(JobRequest { job_id: job }).await })
                .await?;
            loop {
                match stream.message().await {
                    Ok(Some(info)) => {
                        progress(&info);
                        last = Some(info);
                        gap_since = std::time::Instant::now();
                    }
                    Ok(None) => break,
                    Err(s) if regatta_proto::is_retryable(&s) => {
                        self.drivers.follow(&s);
                        break;
                    }
                    Err(s) => return Err(self.status(s)),
                }
            }
            if last
                .as_ref()
                .is_some_and(|l| l.status() != JobStatus::Running)
                || gap_since.elapsed() > deadline_per_gap
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        match last {
            Some(l) if l.status() != JobStatus::Running => Ok(l),
            _ => Err(Error::Unreachable {
                address: self.address.clone(),
                message: format!("the progress stream of job-{job} ended early"),
            }),
        }
    }

    /// The driver's progress messages for `job`, one per change, ending with it.
    pub(crate) async fn watch_stream(&self, job: u64) -> Result<tonic::Streaming<JobInfo>> {
        self.call(|mut c| async move { c.watch_job(JobRequest { job_id: job }).await })
            .await
    }

    /// Where a job's result partitions are (the rows stay on the workers).
    pub async fn result_locations(&self, job: u64) -> Result<ResultLocationsResponse> {
        self.call(|mut c| async move { c.result_locations(JobRequest { job_id: job }).await })
            .await
    }

    /// Drops a finished job's results from its workers.
    pub async fn delete(&self, job: u64) -> Result<JobInfo> {
        self.call(|mut c| async move { c.delete_job(JobRequest { job_id: job }).await })
            .await
    }

    /// A reader of worker Flight servers with this client's token and TLS.
    pub(crate) fn fetcher(&self) -> ShuffleFetcher {
        ShuffleFetcher::remote(self.token.clone()).with_tls(self.tls.clone())
    }

    /// A job's result rows as a stream, read from the workers that hold them in
    /// bounded memory; partitions that are done stream while the job still runs.
    pub fn result_stream(&self, job: u64) -> ResultStream {
        ResultStream::start(self.clone(), job)
    }

    /// The result rows of a job, all in memory (for small results; use
    /// [`Self::result_stream`] for large ones).
    pub async fn results(&self, job: u64) -> Result<Vec<RecordBatch>> {
        self.result_stream(job).try_collect().await
    }

    /// Submits and waits; returns the job as it ended, failing if it did not
    /// succeed.
    pub async fn run_to_end(&self, request: SubmitRequest) -> Result<JobInfo> {
        let job = self.submit(request).await?;
        let end = self.watch(job.job_id, |_| {}).await?;
        if end.status() != JobStatus::Succeeded {
            return Err(Error::JobFailed {
                job: end.job_id,
                status: end.status().word().to_string(),
                message: end.error,
            });
        }
        Ok(end)
    }

    /// Submits `request` and streams its rows as they are made.
    pub async fn run_stream(&self, request: SubmitRequest) -> Result<ResultStream> {
        let job = self.submit(request).await?;
        Ok(self.result_stream(job.job_id))
    }

    /// Submits, waits and fetches: the rows of `request`'s query.
    pub async fn run(&self, request: SubmitRequest) -> Result<Vec<RecordBatch>> {
        self.run_stream(request).await?.try_collect().await
    }
}

/// A transport error with its causes, which name what actually went wrong.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}
