//! The cluster token check every service runs before a call.

use tonic::{Request, Status};

/// An interceptor refusing calls without `Bearer <token>`.
#[derive(Debug, Clone)]
pub struct TokenCheck {
    want: String,
}

impl TokenCheck {
    pub fn new(token: &str) -> Self {
        Self {
            want: regatta_proto::bearer(token),
        }
    }

    /// Passes the request on when it carries the token.
    pub fn check(&self, request: Request<()>) -> Result<Request<()>, Status> {
        match request.metadata().get(regatta_proto::TOKEN_HEADER) {
            Some(v) if v.as_bytes() == self.want.as_bytes() => Ok(request),
            Some(_) => Err(Status::unauthenticated(
                "wrong cluster token: use the token in the cluster file's [cluster] token",
            )),
            None => Err(Status::unauthenticated(
                "no cluster token: pass the token in the cluster file's [cluster] token",
            )),
        }
    }
}
