//! [`HttpServer`]: the HTTP/1.1 listeners beside the gRPC ones (the driver's
//! dashboard, every Prometheus endpoint). Like every listener, one beyond
//! loopback needs the cluster token; with a token set, every request must
//! carry it; with cluster TLS, it serves HTTPS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::ClusterTls;

/// The cookie a browser keeps the token in after opening a page with `?token=`.
pub const TOKEN_COOKIE: &str = "regatta_token";

/// A running HTTP listener; dropping it stops it.
pub struct HttpServer {
    pub address: SocketAddr,
    /// `http` or `https`.
    pub scheme: &'static str,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpServer {
    /// Serves `router` on `bind` for the `what` listener (set by `key`). Refused
    /// beyond loopback without `token`.
    pub async fn start(
        what: &str,
        key: &str,
        bind: &str,
        token: &str,
        tls: Option<&ClusterTls>,
        router: Router,
    ) -> Result<Self, String> {
        regatta_common::check_listener(what, bind, key, token).map_err(|e| e.to_string())?;
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|e| format!("the {what} cannot listen on {bind} ({key}): {e}"))?;
        Self::serve(what, listener, token, tls, router)
    }

    /// Serves `router` on a bound `listener` (its address already checked).
    pub fn serve(
        what: &str,
        listener: TcpListener,
        token: &str,
        tls: Option<&ClusterTls>,
        router: Router,
    ) -> Result<Self, String> {
        let address = listener
            .local_addr()
            .map_err(|e| format!("the {what}'s address: {e}"))?;
        let gate = TokenGate {
            token: token.to_string(),
            secure: tls.is_some(),
        };
        let router = router.layer(axum::middleware::from_fn_with_state(
            Arc::new(gate),
            require_token,
        ));
        let name = what.to_string();
        let (scheme, task) = match tls {
            None => (
                "http",
                tokio::spawn(async move {
                    if let Err(e) = axum::serve(listener, router).await {
                        log::error!("the {name} stopped: {e}");
                    }
                }),
            ),
            Some(t) => {
                let acceptor = acceptor(t).map_err(|e| format!("the {what}'s TLS: {e}"))?;
                let tls_listener = TlsListener {
                    tcp: listener,
                    acceptor,
                };
                (
                    "https",
                    tokio::spawn(async move {
                        if let Err(e) = axum::serve(tls_listener, router).await {
                            log::error!("the {name} stopped: {e}");
                        }
                    }),
                )
            }
        };
        Ok(Self {
            address,
            scheme,
            task,
        })
    }

    /// Its base URL, e.g. `http://127.0.0.1:8265`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.address)
    }
}

/// True when `headers` or the query carry `want` (a bearer header, the cookie
/// a `?token=` visit set, or the query itself).
fn carries(want: &str, headers: &HeaderMap, query: Option<&str>) -> (bool, bool) {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| same(t, want));
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .any(|(k, v)| k == TOKEN_COOKIE && same(v, want));
    let in_query = query
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .any(|(k, v)| k == "token" && same(&percent_decode(v), want));
    (bearer || cookie, in_query)
}

/// Compares in time independent of where the strings differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What every request must carry, and whether the listener speaks TLS.
struct TokenGate {
    token: String,
    secure: bool,
}

/// The cookie a `?token=` visit gets: Secure over TLS, so the browser never
/// sends it over plain HTTP.
fn token_cookie(token: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}")
}

async fn require_token(
    State(gate): State<Arc<TokenGate>>,
    request: Request,
    next: Next,
) -> Response {
    let want = &gate.token;
    if want.is_empty() {
        return next.run(request).await;
    }
    let (ok, in_query) = carries(want, request.headers(), request.uri().query());
    if ok {
        return next.run(request).await;
    }
    if in_query {
        // Keep it in a cookie, and take it out of the address bar and history.
        let path = request.uri().path().to_string();
        let cookie = token_cookie(want, gate.secure);
        return (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, path), (header::SET_COOKIE, cookie)],
        )
            .into_response();
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"regatta\"")],
        "401: this regatta endpoint needs the cluster token (cluster.token). Send \
         `authorization: Bearer <token>`, or open the page once as ?token=<token>.\n",
    )
        .into_response()
}

fn acceptor(tls: &ClusterTls) -> Result<TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    crate::install_crypto_provider();
    let certs = CertificateDer::pem_slice_iter(&tls.cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cluster.tls_cert: {e}"))?;
    let key =
        PrivateKeyDer::from_pem_slice(&tls.key_pem).map_err(|e| format!("cluster.tls_key: {e}"))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts TCP connections and completes their TLS handshakes.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, peer) = match self.tcp.accept().await {
                Ok(s) => s,
                Err(e) => {
                    // Out of descriptors and the like: wait, then go on.
                    log::warn!("accepting an HTTPS connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let handshake =
                tokio::time::timeout(Duration::from_secs(5), self.acceptor.accept(stream)).await;
            match handshake {
                Ok(Ok(tls)) => return (tls, peer),
                Ok(Err(e)) => log::debug!("a TLS handshake from {peer} failed: {e}"),
                Err(_) => log::debug!("a TLS handshake from {peer} timed out"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_cookie_is_secure_over_tls_only() {
        assert!(token_cookie("t", true).ends_with("; Secure"));
        assert!(!token_cookie("t", false).contains("Secure"));
        assert!(token_cookie("t", false).contains("HttpOnly"));
    }

    #[test]
    fn the_token_is_found_in_a_header_a_cookie_or_the_query() {
        let mut h = HeaderMap::new();
        assert_eq!(carries("s3cret", &h, None), (false, false));
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert_eq!(carries("s3cret", &h, None), (true, false));
        assert_eq!(carries("other", &h, None), (false, false));
        let mut c = HeaderMap::new();
        c.insert(header::COOKIE, "a=b; regatta_token=s3cret".parse().unwrap());
        assert_eq!(carries("s3cret", &c, None), (true, false));
        let none = HeaderMap::new();
        assert_eq!(
            carries("s 3", &none, Some("x=1&token=s%203")),
            (false, true)
        );
        assert_eq!(
            carries("s3cret", &none, Some("token=s3cre")),
            (false, false)
        );
    }
}
