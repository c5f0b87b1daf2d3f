//! `[security]`: what a driver or worker demands of its connections.

use regatta_common::is_loopback;
use serde::{Deserialize, Serialize};

use crate::{ClusterConfig, ConfigError, Result};

/// `[security]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// `security.require_tls`: refuse to start a driver or worker whose
    /// connections would leave the machine without TLS (otherwise a warning).
    pub require_tls: bool,
    /// `security.verify_worker_certs`: the driver asks every connection for a
    /// certificate of the cluster's CA and registers only a worker whose
    /// certificate names the host it registers (mutual TLS).
    pub verify_worker_certs: bool,
}

impl ClusterConfig {
    /// Refuses (`security.require_tls`) or warns about a `role` whose
    /// `addresses` (what it binds and dials) leave loopback without TLS: the
    /// token and the rows would cross the network in clear text.
    pub fn check_plain_text(&self, role: &str, addresses: &[&str]) -> Result<()> {
        if self.cluster.tls_cert.is_some() {
            return Ok(());
        }
        let mut all = addresses.iter().flat_map(|a| a.split(',')).map(str::trim);
        let Some(beyond) = all.find(|a| !a.is_empty() && !is_loopback(a)) else {
            return Ok(());
        };
        let problem = format!(
            "the {role} uses {beyond} without TLS: the cluster token and the rows cross \
             the network in clear text (set cluster.tls_cert, tls_key and tls_ca; see \
             docs/security.md)"
        );
        if self.security.require_tls {
            return Err(ConfigError::Invalid {
                path: "cluster file".into(),
                key: "security.require_tls".into(),
                value: "true".into(),
                allowed: problem,
            });
        }
        // Printed, not logged: it must be seen whatever RUST_LOG says.
        eprintln!("warning: {problem}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_beyond_loopback_is_refused_when_tls_is_required() {
        let mut cfg = ClusterConfig::default();
        assert!(cfg
            .check_plain_text("worker", &["127.0.0.1:0", "localhost:7700"])
            .is_ok());
        assert!(
            cfg.check_plain_text("worker", &["10.0.0.2:7701"]).is_ok(),
            "a warning only"
        );
        cfg.security.require_tls = true;
        assert!(cfg.check_plain_text("driver", &["127.0.0.1:7700"]).is_ok());
        let e = cfg
            .check_plain_text("worker", &["127.0.0.1:0", "127.0.0.1:1,10.0.0.1:7700"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("security.require_tls") && e.contains("10.0.0.1:7700"),
            "{e}"
        );
        cfg.cluster.tls_cert = Some("/etc/regatta/node.pem".into());
        assert!(cfg.check_plain_text("worker", &["10.0.0.2:7701"]).is_ok());
    }
}
