//! The cluster token check every service runs before a call.

use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

/// Refuses calls without `Bearer <token>`.
#[derive(Debug, Clone)]
pub struct TokenCheck {
    want: String,
}

impl TokenCheck {
    pub fn new(token: &str) -> Self {
        Self {
            want: crate::bearer(token),
        }
    }

    /// Ok when `metadata` carries the token.
    pub fn verify(&self, metadata: &MetadataMap) -> Result<(), Status> {
        match metadata.get(crate::TOKEN_HEADER) {
            Some(v) if regatta_common::constant_time_eq(v.as_bytes(), self.want.as_bytes()) => {
                Ok(())
            }
            Some(_) => Err(Status::unauthenticated(
                "wrong cluster token: use the token in the cluster file's [cluster] token",
            )),
            None => Err(Status::unauthenticated(
                "no cluster token: pass the token in the cluster file's [cluster] token",
            )),
        }
    }

    /// An interceptor: passes the request on when it carries the token.
    pub fn check(&self, request: Request<()>) -> Result<Request<()>, Status> {
        self.verify(request.metadata())?;
        Ok(request)
    }
}
