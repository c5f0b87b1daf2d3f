//! [`WorkerCredentials`]: each worker's own credential. The cluster token admits
//! any holder as a worker; the credential makes the calls that name a worker id
//! (orders, heartbeats, task reports, a registration taking an id over again)
//! that worker's alone.
//!
//! The leader that admits a worker draws the credential and hands it to the
//! worker once; the cluster keeps only its digest, in the worker's replicated
//! record ([`crate::WorkerSpec::credential_digest`]). Every replica can therefore
//! check a worker's calls, and a new leader refuses a forged call on a worker's
//! id before that worker has even found it.

use regatta_common::WorkerId;
use tonic::metadata::MetadataMap;
use tonic::Status;

/// Draws and checks worker credentials against the replicated digests.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkerCredentials;

/// A credential drawn for a worker about to join, with what the cluster keeps.
#[derive(Debug, Clone)]
pub struct IssuedCredential {
    /// Sent to the worker once, in its registration's reply.
    pub secret: String,
    /// Replicated in the worker's record.
    pub digest: String,
}

impl WorkerCredentials {
    /// A fresh credential (128 random bits).
    pub fn issue(&self) -> IssuedCredential {
        let secret = regatta_common::random_hex_128();
        let digest = regatta_proto::worker_secret_digest(&secret);
        IssuedCredential { secret, digest }
    }

    /// The credential a call carries; empty when it carries none.
    pub fn presented(metadata: &MetadataMap) -> &str {
        metadata
            .get(regatta_proto::WORKER_SECRET_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// Refuses a call on `worker`'s behalf (`what`) whose credential does not
    /// match `digest`, the digest replicated in the worker's record. A worker
    /// without a record (unknown ids are refused where they are used) or with
    /// an empty digest (a record from before credentials were replicated) is
    /// not checked.
    pub fn check(
        &self,
        worker: WorkerId,
        digest: Option<&str>,
        metadata: &MetadataMap,
        what: &str,
    ) -> Result<(), Status> {
        let Some(want) = digest.filter(|d| !d.is_empty()) else {
            return Ok(());
        };
        let got = regatta_proto::worker_secret_digest(Self::presented(metadata));
        if regatta_common::constant_time_eq(got.as_bytes(), want.as_bytes()) {
            Ok(())
        } else {
            log::warn!("refused {what} for {worker}: not that worker's credential");
            Err(Status::permission_denied(format!(
                "{what}: {worker} registered with another credential; only that worker \
                 may act on its id"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn carrying(secret: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert(regatta_proto::WORKER_SECRET_HEADER, secret.parse().unwrap());
        m
    }

    #[test]
    fn only_the_holder_of_the_credential_acts_on_its_id() {
        let c = WorkerCredentials;
        let w = WorkerId(3);
        assert!(
            c.check(w, None, &MetadataMap::new(), "a report").is_ok(),
            "no record: refused where the id is used"
        );
        assert!(
            c.check(w, Some(""), &MetadataMap::new(), "a report")
                .is_ok(),
            "a record from before credentials were replicated"
        );
        let issued = c.issue();
        assert_ne!(issued.digest, issued.secret);
        let digest = Some(issued.digest.as_str());
        assert!(c
            .check(w, digest, &carrying(&issued.secret), "a report")
            .is_ok());
        let e = c
            .check(w, digest, &carrying("forged"), "a report")
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert!(
            e.message().contains("worker-3") || e.message().contains('3'),
            "{e}"
        );
        assert!(c.check(w, digest, &MetadataMap::new(), "orders").is_err());
        // The digest is no credential: presenting it is refused too.
        assert!(c
            .check(w, digest, &carrying(&issued.digest), "orders")
            .is_err());
        let again = c.issue();
        assert_ne!(again.secret, issued.secret);
        assert!(c
            .check(w, digest, &carrying(&again.secret), "orders")
            .is_err());
    }
}
