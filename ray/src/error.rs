//! Errors of the Ray adapter.

/// What talking to Ray can fail with. Each names the URL, job or node at fault.
#[derive(Debug, thiserror::Error)]
pub enum RayError {
    #[error("Ray at {url} is unreachable: {message} (is the dashboard running, and is ray.address right?)")]
    Unreachable { url: String, message: String },
    #[error("Ray at {url} refused the token ({status}): {body} (set ray.token or REGATTA_RAY_TOKEN to the cluster's RAY_AUTH_TOKEN)")]
    Unauthorized {
        url: String,
        status: u16,
        body: String,
    },
    #[error("Ray at {url} rejected the request ({status}): {body}")]
    Rejected {
        url: String,
        status: u16,
        body: String,
    },
    #[error("Ray at {url} answered something unexpected: {message}")]
    Protocol { url: String, message: String },
    #[error("packaging the worker for Ray ({path}): {message}")]
    Package { path: String, message: String },
    #[error("{0}")]
    Infeasible(String),
    #[error("{0}")]
    Launch(String),
    #[error("Ray job {job} {status}: {message}")]
    JobEnded {
        job: String,
        status: String,
        message: String,
    },
}

impl From<RayError> for regatta_scheduler::SchedulerError {
    fn from(e: RayError) -> Self {
        regatta_scheduler::SchedulerError::Launch(e.to_string())
    }
}

/// Result alias of this crate.
pub type Result<T, E = RayError> = std::result::Result<T, E>;
