//! [`WorkerCredentials`]: the secret each worker got when it registered with
//! this leader. The cluster token admits any holder as a worker; the secret
//! makes the calls that name a worker id (orders, heartbeats, task reports, a
//! registration taking an id over again) that worker's alone.
//!
//! Secrets are the leader's, not replicated: a new leader has issued none, and
//! takes a worker's calls on its id until the worker registers with it (which
//! every worker does at once when its leader changes) and gets one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use regatta_common::WorkerId;
use tonic::metadata::MetadataMap;
use tonic::Status;

/// The secrets this driver issued, with the term it issued each in.
#[derive(Debug, Clone, Default)]
pub struct WorkerCredentials {
    issued: Arc<Mutex<HashMap<WorkerId, (u64, String)>>>,
}

impl WorkerCredentials {
    /// A fresh secret for `worker`, registered in `term`.
    pub fn issue(&self, worker: WorkerId, term: u64) -> String {
        let secret = regatta_common::random_hex_128();
        self.lock().insert(worker, (term, secret.clone()));
        secret
    }

    /// Refuses a call on `worker`'s behalf (`what`) that does not carry the
    /// secret this driver issued it in `term`. A worker with none from this
    /// term passes (see the module's note).
    pub fn check(
        &self,
        worker: WorkerId,
        term: u64,
        metadata: &MetadataMap,
        what: &str,
    ) -> Result<(), Status> {
        let guard = self.lock();
        let Some((issued_in, want)) = guard.get(&worker) else {
            return Ok(());
        };
        if *issued_in != term {
            return Ok(());
        }
        let presented = metadata
            .get(regatta_proto::WORKER_SECRET_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if regatta_common::constant_time_eq(presented, want.as_bytes()) {
            Ok(())
        } else {
            log::warn!("refused {what} for {worker}: not that worker's credential");
            Err(Status::permission_denied(format!(
                "{what}: {worker} registered with another credential; only that worker \
                 may act on its id"
            )))
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<WorkerId, (u64, String)>> {
        self.issued.lock().unwrap_or_else(|p| p.into_inner())
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
    fn only_the_registered_worker_acts_on_its_id() {
        let c = WorkerCredentials::default();
        let w = WorkerId(3);
        assert!(
            c.check(w, 1, &MetadataMap::new(), "a report").is_ok(),
            "none issued yet"
        );
        let secret = c.issue(w, 1);
        assert!(c.check(w, 1, &carrying(&secret), "a report").is_ok());
        let e = c.check(w, 1, &carrying("forged"), "a report").unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert!(c.check(w, 1, &MetadataMap::new(), "a report").is_err());
        // Issued by an earlier term of this driver's: the worker has since
        // registered with another leader, whose secret this one never saw.
        assert!(c
            .check(w, 2, &carrying("from another leader"), "orders")
            .is_ok());
        let again = c.issue(w, 2);
        assert_ne!(again, secret);
        assert!(c.check(w, 2, &carrying(&secret), "orders").is_err());
    }
}
