//! [`ClusterTls`]: TLS for every gRPC connection of a cluster (client ↔ driver,
//! worker ↔ driver, worker ↔ worker shuffle), from PEM files.

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// One certificate and key that every driver and worker serves with, and the CA
/// that signed it, which every client trusts. Absent: plain HTTP/2.
#[derive(Clone)]
pub struct ClusterTls {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub ca_pem: Vec<u8>,
}

impl std::fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.write_str("ClusterTls { .. }")
    }
}

/// Makes ring rustls's process-wide provider. With both ring (tonic's TLS) and
/// aws-lc-rs (object_store's S3 client) in the build, rustls cannot pick one
/// itself and tonic's TLS setup would panic.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider was installed first; that one serves too.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl ClusterTls {
    /// What servers present.
    pub fn server(&self) -> ServerTlsConfig {
        install_crypto_provider();
        ServerTlsConfig::new().identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
    }

    /// What servers present, also asking each client for a certificate of the
    /// cluster's CA (mutual TLS). Optional: a client without one (the CLI, the
    /// SDK) still connects, and the calls that need one check
    /// [`peer_names_cover`] themselves.
    pub fn server_asking_clients(&self) -> ServerTlsConfig {
        self.server()
            .client_ca_root(Certificate::from_pem(&self.ca_pem))
            .client_auth_optional(true)
    }

    /// What clients check servers against; they present this node's own
    /// certificate to a server that asks for one.
    pub fn client(&self) -> ClientTlsConfig {
        client_trusting(&self.ca_pem).identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
    }
}

/// Whether the first of `certs` (a peer's certificate, already verified against
/// the cluster's CA by the TLS handshake) names `host` (an IP address or a DNS
/// name) among its subject alternative names; the error says why not.
pub fn peer_names_cover(
    certs: Option<&[rustls::pki_types::CertificateDer<'static>]>,
    host: &str,
) -> Result<(), String> {
    let cert = certs
        .and_then(|c| c.first())
        .ok_or_else(|| "no client certificate was presented".to_string())?;
    let cert = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| format!("its certificate cannot be read: {e:?}"))?;
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| format!("{host:?} is not a host name or address: {e}"))?;
    cert.verify_is_valid_for_subject_name(&name)
        .map_err(|_| format!("its certificate does not name {host}"))
}

/// A client config trusting the CA in `ca_pem`.
pub fn client_trusting(ca_pem: &[u8]) -> ClientTlsConfig {
    install_crypto_provider();
    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem))
}

/// The URL of `address` (`host:port`, or a URL of either scheme): `https://` when
/// `tls`, else `http://`.
pub fn url(address: &str, tls: bool) -> String {
    let host_port = address
        .strip_prefix("http://")
        .or_else(|| address.strip_prefix("https://"))
        .unwrap_or(address);
    format!("{}://{host_port}", if tls { "https" } else { "http" })
}

/// The connections a gRPC server accepts on `listener`, with `TCP_NODELAY` set.
/// Every server of the cluster starts this way: `serve_with_incoming` ignores
/// the builder's nodelay setting, and with Nagle on each small message after the
/// first (a task order, a Flight batch header) waited for the peer's delayed ACK,
/// about 40 ms a stage.
pub fn incoming(listener: tokio::net::TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// An endpoint for `address` (`host:port`, or a URL), over TLS when `tls` is given.
pub fn endpoint(address: &str, tls: Option<&ClientTlsConfig>) -> Result<Endpoint, String> {
    let endpoint = Endpoint::from_shared(url(address, tls.is_some()))
        .map_err(|e| format!("{address}: {e}"))?;
    match tls {
        Some(t) => endpoint
            .tls_config(t.clone())
            .map_err(|e| format!("{address}: TLS: {e}")),
        None => Ok(endpoint),
    }
}
