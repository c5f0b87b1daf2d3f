//! regatta's wire protocol, generated from `proto/regatta.proto` by tonic and prost.
//!
//! Clients use [`job_service_client`]; workers use [`worker_control_client`]; the
//! driver implements both servers. [`PlanNode`] carries regatta's own physical plan
//! nodes inside datafusion-proto plans.

#![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]

tonic::include_proto!("regatta.v1");

/// The metadata key carrying the cluster token on every call.
pub const TOKEN_HEADER: &str = "authorization";

/// The metadata value for `token`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}
