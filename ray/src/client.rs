//! [`RayClient`]: the few calls of Ray's Jobs REST API (dashboard port) the adapter
//! needs: version, nodes, working-dir packages, and jobs.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{RequestBuilder, Response, StatusCode};
use serde::Deserialize;

use crate::{RayError, Result};

/// The Jobs API version this adapter speaks (Ray 2.x answers "4").
pub const JOBS_API_VERSION: &str = "4";

/// A typed client of one Ray cluster's dashboard.
#[derive(Debug, Clone)]
pub struct RayClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

/// `GET /api/version`.
#[derive(Debug, Clone, Deserialize)]
pub struct RayVersion {
    pub version: String,
    pub ray_version: String,
}

/// One node of `GET /api/v0/nodes`.
#[derive(Debug, Clone, Deserialize)]
pub struct RayNode {
    pub node_id: String,
    pub node_ip: String,
    #[serde(default)]
    pub is_head_node: bool,
    pub state: String,
    #[serde(default)]
    pub resources_total: BTreeMap<String, f64>,
}

impl RayNode {
    pub fn alive(&self) -> bool {
        self.state == "ALIVE"
    }

    /// The node's total of resource `name` (`CPU`, `GPU`, `memory`).
    pub fn total(&self, name: &str) -> f64 {
        self.resources_total.get(name).copied().unwrap_or(0.0)
    }

    /// A short form of its id for logs and labels.
    pub fn short_id(&self) -> &str {
        &self.node_id[..self.node_id.len().min(12)]
    }
}

/// One job of `GET /api/jobs/`.
#[derive(Debug, Clone, Deserialize)]
pub struct RayJob {
    pub submission_id: Option<String>,
    pub status: String,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

impl RayJob {
    /// STOPPED, SUCCEEDED or FAILED: the job runs no more.
    pub fn ended(&self) -> bool {
        matches!(self.status.as_str(), "STOPPED" | "SUCCEEDED" | "FAILED")
    }
}

#[derive(Deserialize)]
struct NodesReply {
    data: NodesData,
}
#[derive(Deserialize)]
struct NodesData {
    result: NodesResult,
}
#[derive(Deserialize)]
struct NodesResult {
    result: Vec<RayNode>,
}

#[derive(Deserialize)]
struct SubmitReply {
    submission_id: String,
}

#[derive(Deserialize)]
struct LogsReply {
    logs: String,
}

/// The last meaningful line of an error body: Ray answers 400 and 500 with a
/// Python traceback whose last line says what was wrong.
fn gist(body: &str) -> String {
    let line = body
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("(empty answer)");
    line.chars().take(400).collect()
}

impl RayClient {
    /// A client of the dashboard at `address` (`http://host:8265`); `token` is
    /// sent as a bearer token when not empty.
    pub fn new(address: &str, token: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| RayError::Unreachable {
                url: address.to_string(),
                message: e.to_string(),
            })?;
        Ok(Self {
            base: address.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http,
        })
    }

    /// The dashboard's URL.
    pub fn address(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authed(&self, r: RequestBuilder) -> RequestBuilder {
        if self.token.is_empty() {
            r
        } else {
            r.bearer_auth(&self.token)
        }
    }

    /// Sends, and turns transport failures and error answers into errors naming
    /// the URL; `ok_404` lets a 404 through for the caller.
    async fn send(&self, r: RequestBuilder, url: &str, ok_404: bool) -> Result<Response> {
        let reply = self
            .authed(r)
            .send()
            .await
            .map_err(|e| RayError::Unreachable {
                url: url.to_string(),
                message: describe(&e),
            })?;
        let status = reply.status();
        if status.is_success() || (ok_404 && status == StatusCode::NOT_FOUND) {
            return Ok(reply);
        }
        let body = reply.text().await.unwrap_or_default();
        let (url, status) = (url.to_string(), status.as_u16());
        Err(match status {
            401 | 403 => RayError::Unauthorized {
                url,
                status,
                body: gist(&body),
            },
            _ => RayError::Rejected {
                url,
                status,
                body: gist(&body),
            },
        })
    }

    async fn json<T: serde::de::DeserializeOwned>(&self, reply: Response, url: &str) -> Result<T> {
        let text = reply.text().await.map_err(|e| RayError::Unreachable {
            url: url.to_string(),
            message: describe(&e),
        })?;
        serde_json::from_str(&text).map_err(|e| RayError::Protocol {
            url: url.to_string(),
            message: format!("{e} in {}", text.chars().take(200).collect::<String>()),
        })
    }

    /// `GET /api/version`; fails unless Ray speaks Jobs API version 4.
    pub async fn version(&self) -> Result<RayVersion> {
        let url = self.url("/api/version");
        let reply = self.send(self.http.get(&url), &url, false).await?;
        let v: RayVersion = self.json(reply, &url).await?;
        if v.version != JOBS_API_VERSION {
            return Err(RayError::Protocol {
                url,
                message: format!(
                    "Ray {} speaks Jobs API version {}; regatta needs version {JOBS_API_VERSION}",
                    v.ray_version, v.version
                ),
            });
        }
        Ok(v)
    }

    /// Every node Ray knows, dead ones included.
    pub async fn nodes(&self) -> Result<Vec<RayNode>> {
        let url = self.url("/api/v0/nodes?limit=10000");
        let reply = self.send(self.http.get(&url), &url, false).await?;
        let r: NodesReply = self.json(reply, &url).await?;
        Ok(r.data.result.result)
    }

    /// Whether working-dir package `name` is stored already (this also pins it).
    pub async fn has_package(&self, name: &str) -> Result<bool> {
        let url = self.url(&format!("/api/packages/gcs/{name}"));
        let reply = self.send(self.http.get(&url), &url, true).await?;
        Ok(reply.status().is_success())
    }

    /// Stores working-dir package `name`.
    pub async fn upload_package(&self, name: &str, zip: Vec<u8>) -> Result<()> {
        let url = self.url(&format!("/api/packages/gcs/{name}"));
        let r = self
            .http
            .put(&url)
            .header("Content-Type", "application/octet-stream")
            .timeout(Duration::from_secs(600))
            .body(zip);
        self.send(r, &url, false).await?;
        Ok(())
    }

    /// `POST /api/jobs/`; returns the submission id.
    pub async fn submit(&self, request: &serde_json::Value) -> Result<String> {
        let url = self.url("/api/jobs/");
        let reply = self
            .send(self.http.post(&url).json(request), &url, false)
            .await?;
        let r: SubmitReply = self.json(reply, &url).await?;
        Ok(r.submission_id)
    }

    /// One job; `None` when Ray does not know it.
    pub async fn job(&self, id: &str) -> Result<Option<RayJob>> {
        let url = self.url(&format!("/api/jobs/{id}"));
        let reply = self.send(self.http.get(&url), &url, true).await?;
        if reply.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        self.json(reply, &url).await.map(Some)
    }

    /// A job's output so far.
    pub async fn logs(&self, id: &str) -> Result<String> {
        let url = self.url(&format!("/api/jobs/{id}/logs"));
        let reply = self.send(self.http.get(&url), &url, false).await?;
        let r: LogsReply = self.json(reply, &url).await?;
        Ok(r.logs)
    }

    /// Stops a job (SIGTERM, then SIGKILL after Ray's grace period).
    pub async fn stop(&self, id: &str) -> Result<()> {
        let url = self.url(&format!("/api/jobs/{id}/stop"));
        self.send(self.http.post(&url), &url, true).await?;
        Ok(())
    }

    /// Deletes an ended job's record.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let url = self.url(&format!("/api/jobs/{id}"));
        self.send(self.http.delete(&url), &url, true).await?;
        Ok(())
    }

    /// Stops job `id`, waits (up to `patience`) until it ended, then deletes it.
    pub async fn stop_and_delete(&self, id: &str, patience: Duration) -> Result<()> {
        self.stop(id).await?;
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            match self.job(id).await? {
                None => return Ok(()),
                Some(j) if j.ended() => return self.delete(id).await,
                Some(_) if tokio::time::Instant::now() >= deadline => {
                    return Err(RayError::Launch(format!(
                        "Ray job {id} did not stop within {patience:?}"
                    )))
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

/// A transport error with its causes (reqwest's own message is terse).
fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(c) = source {
        s.push_str(": ");
        s.push_str(&c.to_string());
        source = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_body_is_cut_to_its_last_line() {
        let body = "Traceback (most recent call last):\n  File \"x.py\"\nTypeError: JobSubmitRequest.__init__() got an unexpected keyword argument 'entrypoint_label_selector'\n\n";
        assert_eq!(
            gist(body),
            "TypeError: JobSubmitRequest.__init__() got an unexpected keyword argument 'entrypoint_label_selector'"
        );
        assert_eq!(gist(""), "(empty answer)");
    }
}
