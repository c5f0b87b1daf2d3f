//! The rule every listener follows, whatever set its address (the cluster file,
//! a flag, the environment, a launcher): beyond loopback only with a token.

use crate::{CommonError, Result};

/// True when `address` (`host:port`, `[v6]:port`, or a URL) names only this
/// machine. A host name other than `localhost` counts as beyond loopback: it
/// may resolve anywhere.
pub fn is_loopback(address: &str) -> bool {
    let bare = address
        .trim_start_matches("http://")
        .trim_start_matches("https://");
    let host = match bare.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => bare,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// Refuses `address` for the `what` listener (set by `key`) when it reaches
/// beyond loopback and `token` is empty.
pub fn check_listener(what: &str, address: &str, key: &str, token: &str) -> Result<()> {
    if token.is_empty() && !is_loopback(address) {
        return Err(CommonError::Unprotected {
            what: what.to_string(),
            address: address.to_string(),
            key: key.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_told_from_the_rest() {
        for a in [
            "127.0.0.1:7700",
            "127.3.2.1:0",
            "localhost:80",
            "[::1]:9",
            "http://127.0.0.1:1",
        ] {
            assert!(is_loopback(a), "{a}");
        }
        for a in [
            "0.0.0.0:7700",
            "[::]:7700",
            "10.0.0.5:1",
            "example.org:80",
            "192.168.1.2",
        ] {
            assert!(!is_loopback(a), "{a}");
        }
    }

    #[test]
    fn beyond_loopback_needs_a_token_and_the_error_names_address_and_key() {
        assert!(check_listener("driver", "127.0.0.1:7700", "driver.bind", "").is_ok());
        assert!(check_listener("driver", "0.0.0.0:7700", "driver.bind", "s3cret").is_ok());
        let e = check_listener("dashboard", "0.0.0.0:8265", "driver.dashboard_bind", "")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("0.0.0.0:8265") && e.contains("driver.dashboard_bind"),
            "{e}"
        );
        assert!(e.contains("cluster.token"), "{e}");
    }
}
