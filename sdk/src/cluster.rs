//! [`ClusterClient`]: submits jobs to a regatta driver over gRPC and follows them.

use std::io::Cursor;
use std::time::Duration;

use regatta_engine::arrow::ipc::reader::StreamReader;
use regatta_engine::arrow::record_batch::RecordBatch;
use regatta_proto::job_service_client::JobServiceClient;
use regatta_proto::{
    submit_request, AuthChannel, JobInfo, JobRequest, ListJobsRequest, ListWorkersRequest,
    SubmitRequest, TableSource, TokenInterceptor, WorkerInfo,
};

use crate::{Error, Result};

/// A connection to one driver. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ClusterClient {
    address: String,
    client: JobServiceClient<AuthChannel>,
}

impl ClusterClient {
    /// Connects to the driver at `url` (`http://host:port` or `host:port`) with the
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
        let url = regatta_proto::url(url, tls.is_some());
        let unreachable = |message: String| Error::Unreachable {
            address: url.clone(),
            message,
        };
        let channel = regatta_proto::endpoint(&url, tls.as_ref())
            .map_err(|e| unreachable(format!("not a valid address: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| unreachable(describe(&e)))?;
        let client = JobServiceClient::with_interceptor(channel, TokenInterceptor::new(token))
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20);
        Ok(Self {
            address: url,
            client,
        })
    }

    /// The driver's address.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn status(&self, s: tonic::Status) -> Error {
        if s.code() == tonic::Code::Unavailable && s.message().contains("transport") {
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
                    format: String::new(),
                })
                .collect(),
            ..Default::default()
        })
        .await
    }

    /// Submits any request.
    pub async fn submit(&self, request: SubmitRequest) -> Result<JobInfo> {
        let mut c = self.client.clone();
        Ok(c.submit(request)
            .await
            .map_err(|s| self.status(s))?
            .into_inner())
    }

    /// A job's progress.
    pub async fn job(&self, job: u64) -> Result<JobInfo> {
        let mut c = self.client.clone();
        Ok(c.get_job(JobRequest { job_id: job })
            .await
            .map_err(|s| self.status(s))?
            .into_inner())
    }

    /// Every job the driver knows.
    pub async fn jobs(&self) -> Result<Vec<JobInfo>> {
        let mut c = self.client.clone();
        Ok(c.list_jobs(ListJobsRequest {})
            .await
            .map_err(|s| self.status(s))?
            .into_inner()
            .jobs)
    }

    /// Cancels a job.
    pub async fn cancel(&self, job: u64) -> Result<JobInfo> {
        let mut c = self.client.clone();
        Ok(c.cancel_job(JobRequest { job_id: job })
            .await
            .map_err(|s| self.status(s))?
            .into_inner())
    }

    /// The workers and their resources.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let mut c = self.client.clone();
        Ok(c.list_workers(ListWorkersRequest {})
            .await
            .map_err(|s| self.status(s))?
            .into_inner()
            .workers)
    }

    /// Follows a job until it ends, calling `progress` on every change; returns the
    /// last state.
    pub async fn watch(&self, job: u64, mut progress: impl FnMut(&JobInfo)) -> Result<JobInfo> {
        let mut c = self.client.clone();
        let mut stream = c
            .watch_job(JobRequest { job_id: job })
            .await
            .map_err(|s| self.status(s))?
            .into_inner();
        let mut last = None;
        while let Some(info) = stream.message().await.map_err(|s| self.status(s))? {
            progress(&info);
            last = Some(info);
        }
        match last {
            Some(l) if l.status != "running" => Ok(l),
            _ => Err(Error::Unreachable {
                address: self.address.clone(),
                message: format!("the progress stream of job-{job} ended early"),
            }),
        }
    }

    /// The result rows of a finished job.
    pub async fn results(&self, job: u64) -> Result<Vec<RecordBatch>> {
        let mut c = self.client.clone();
        let mut stream = c
            .fetch_results(JobRequest { job_id: job })
            .await
            .map_err(|s| self.status(s))?
            .into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = stream.message().await.map_err(|s| self.status(s))? {
            let reader = StreamReader::try_new(Cursor::new(chunk.ipc_stream), None)?;
            for b in reader {
                out.push(b?);
            }
        }
        Ok(out)
    }

    /// Submits, waits and fetches: the rows of `request`'s query.
    pub async fn run(&self, request: SubmitRequest) -> Result<Vec<RecordBatch>> {
        let job = self.submit(request).await?;
        let end = self.watch(job.job_id, |_| {}).await?;
        if end.status != "succeeded" {
            return Err(Error::JobFailed {
                job: end.job_id,
                status: end.status,
                message: end.error,
            });
        }
        self.results(job.job_id).await
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
