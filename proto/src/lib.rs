//! regatta's wire protocol, generated from `proto/regatta.proto` by tonic and prost.
//!
//! Clients use [`job_service_client`]; workers use [`worker_control_client`]; the
//! driver implements both servers. [`PlanNode`] carries regatta's own physical plan
//! nodes inside datafusion-proto plans.

#![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]

tonic::include_proto!("regatta.v1");

mod access_policy;
mod cluster_tls;
mod drivers;
mod file_format;
mod http_server;
mod operator_stats;
mod token_check;
pub use axum;
pub use cluster_tls::{
    client_trusting, endpoint, incoming, install_crypto_provider, peer_names_cover, url, ClusterTls,
};
pub use drivers::{is_retryable, Drivers, LEADER_HEADER};
pub use http_server::{HttpServer, TOKEN_COOKIE};
/// A peer's certificate, as TLS hands it over (`tonic::Request::peer_certs`).
pub use rustls::pki_types::CertificateDer;
pub use token_check::TokenCheck;
pub use tonic::Status;

/// The metadata key carrying the cluster token on every call.
pub const TOKEN_HEADER: &str = "authorization";

/// The metadata key carrying a worker's own credential (from its registration)
/// on the calls that name its worker id.
pub const WORKER_SECRET_HEADER: &str = "x-regatta-worker-secret";

/// `message` with the worker credential `secret` attached (none when empty).
pub fn with_worker_secret<T>(message: T, secret: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(v) = secret.parse() {
        if !secret.is_empty() {
            request.metadata_mut().insert(WORKER_SECRET_HEADER, v);
        }
    }
    request
}

/// What the driver keeps (and replicates) of a worker's credential: a BLAKE3
/// derived key of it, hex. Any replica can check a credential against it; none
/// can recover the credential from it.
pub fn worker_secret_digest(secret: &str) -> String {
    let key = blake3::derive_key("regatta 2026-12 worker credential", secret.as_bytes());
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// The metadata value for `token`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Adds the cluster token to every outgoing call.
#[derive(Debug, Clone)]
pub struct TokenInterceptor {
    value: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl TokenInterceptor {
    /// An interceptor sending `token`; a token that is not visible ASCII sends
    /// nothing, so the server refuses the call with a clear error.
    pub fn new(token: &str) -> Self {
        Self {
            value: bearer(token).parse().ok(),
        }
    }
}

impl tonic::service::Interceptor for TokenInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.value {
            request.metadata_mut().insert(TOKEN_HEADER, v.clone());
        }
        Ok(request)
    }
}

/// A client channel with the token added to each call.
pub type AuthChannel =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, TokenInterceptor>;

impl JobStatus {
    /// The status a [`Self::word`] names (`Unspecified` for any other word).
    pub fn from_word(word: &str) -> Self {
        [
            Self::Running,
            Self::Succeeded,
            Self::Failed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|s| s.word() == word)
        .unwrap_or(Self::Unspecified)
    }

    /// The word people read: running, succeeded, failed or cancelled.
    pub fn word(self) -> &'static str {
        match self {
            Self::Unspecified => "unknown",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl DriverRole {
    /// The word people read: leader, follower, candidate, learner, shutdown or
    /// unreachable.
    pub fn word(self) -> &'static str {
        match self {
            Self::Unspecified => "unknown",
            Self::Leader => "leader",
            Self::Follower => "follower",
            Self::Candidate => "candidate",
            Self::Learner => "learner",
            Self::Shutdown => "shutdown",
            Self::Unreachable => "unreachable",
        }
    }
}

impl ResultsState {
    /// The word people read.
    pub fn word(self) -> &'static str {
        match self {
            Self::Unspecified => "none",
            Self::Pending => "pending",
            Self::Available => "available",
            Self::Released => "released",
            Self::Written => "written",
        }
    }
}
