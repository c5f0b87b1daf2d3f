//! [`HttpServer`]: the HTTP/1.1 listeners beside the gRPC ones (the driver's
//! dashboard, every Prometheus endpoint). Like every listener, one beyond
//! loopback needs the cluster token; with a token set, every request must
//! carry it; with cluster TLS, it serves HTTPS.

use regatta_common::AbortOnDrop;
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

/// The prefix of the cookie a browser keeps after opening a page with
/// `?token=`; the rest of its name comes from the cluster's token, so two
/// clusters on one host keep separate cookies.
pub const TOKEN_COOKIE: &str = "regatta_session";

/// How long a TLS handshake may take before its connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS handshakes under way at once; more connections wait in the kernel's backlog.
const MAX_HANDSHAKES: usize = 256;

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
            cookie: SessionCookie::of(token),
            secure: tls.is_some(),
            loopback: address.ip().is_loopback(),
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
                let tls_listener = TlsListener::start(listener, acceptor);
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

/// The cookie standing in for the token in a browser: a name and a value
/// derived from the token, never the token itself. Cookies are not scoped by
/// port, so every other service on the host sees it; what it sees opens this
/// cluster's HTTP pages and nothing else (not its gRPC services).
#[derive(Debug, Clone)]
struct SessionCookie {
    name: String,
    value: String,
}

impl SessionCookie {
    fn of(token: &str) -> Self {
        let name = blake3::derive_key("regatta 2026-12 dashboard cookie name", token.as_bytes());
        let value = blake3::derive_key("regatta 2026-12 dashboard cookie value", token.as_bytes());
        Self {
            name: format!("{TOKEN_COOKIE}_{}", hex(&name[..6])),
            value: hex(&value),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// True when `headers` or the query carry the gate's token (a bearer header,
/// the cookie a `?token=` visit set, or the query itself).
fn carries(gate: &TokenGate, headers: &HeaderMap, query: Option<&str>) -> (bool, bool) {
    let want = gate.token.as_str();
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
        .any(|(k, v)| k == gate.cookie.name && same(v, &gate.cookie.value));
    let in_query = query
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .any(|(k, v)| k == "token" && same(&percent_decode(v), want));
    (bearer || cookie, in_query)
}

fn same(a: &str, b: &str) -> bool {
    regatta_common::constant_time_eq(a.as_bytes(), b.as_bytes())
}

/// `%XX` and `+` decoded, on bytes: a query is whatever a client sent, and a
/// multi-byte character after `%` must not split a `str` (it panicked).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex_digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => match (
                bytes.get(i + 1).copied().and_then(hex_digit),
                bytes.get(i + 2).copied().and_then(hex_digit),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `host` (a Host header) names this machine's loopback: an address
/// in 127.0.0.0/8 or ::1, or `localhost`. A page on another name that reached
/// a loopback listener got there by DNS rebinding (a site whose name first
/// resolved to itself, then to 127.0.0.1), and its script must not read the
/// answer.
fn names_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        }),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What every request must carry, and where the listener is.
struct TokenGate {
    token: String,
    cookie: SessionCookie,
    /// It speaks TLS.
    secure: bool,
    /// It is bound to a loopback address.
    loopback: bool,
}

/// The cookie a `?token=` visit gets: HttpOnly (no script reads it),
/// SameSite=Strict (no other site's page sends it), Secure over TLS (never
/// sent over plain HTTP).
fn session_cookie(cookie: &SessionCookie, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{}={}; Path=/; HttpOnly; SameSite=Strict{secure}",
        cookie.name, cookie.value
    )
}

async fn require_token(
    State(gate): State<Arc<TokenGate>>,
    request: Request,
    next: Next,
) -> Response {
    if gate.loopback {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| request.uri().authority().map(|a| a.as_str()))
            .unwrap_or("");
        if !names_loopback(host) {
            return (
                StatusCode::MISDIRECTED_REQUEST,
                "421: this regatta endpoint listens on loopback and answers only \
                 requests addressed to 127.0.0.1, ::1 or localhost\n",
            )
                .into_response();
        }
    }
    if gate.token.is_empty() {
        return next.run(request).await;
    }
    let (ok, in_query) = carries(&gate, request.headers(), request.uri().query());
    if ok {
        return next.run(request).await;
    }
    if in_query {
        // Keep it in a cookie, and take it out of the address bar and history.
        let path = request.uri().path().to_string();
        let cookie = session_cookie(&gate.cookie, gate.secure);
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

/// Accepts TCP connections and hands on those whose TLS handshake completed.
/// Handshakes run in tasks of their own, each with a timeout: a client that
/// connects and sends nothing holds only its own connection, not the accept
/// loop (it held every new connection for 5 s).
struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(tokio_rustls::server::TlsStream<TcpStream>, SocketAddr)>,
    address: std::io::Result<SocketAddr>,
    /// Accepts and starts handshakes; aborted with the listener.
    acceptor_task: AbortOnDrop<()>,
}

impl TlsListener {
    fn start(tcp: TcpListener, acceptor: TlsAcceptor) -> Self {
        let address = tcp.local_addr();
        let (tx, ready) = tokio::sync::mpsc::channel(MAX_HANDSHAKES);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        let task = tokio::spawn(async move {
            let mut handshakes = tokio::task::JoinSet::new();
            loop {
                // Finished handshakes are reaped so the set stays small.
                while handshakes.try_join_next().is_some() {}
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (stream, peer) = match tcp.accept().await {
                    Ok(s) => s,
                    Err(e) => {
                        // Out of descriptors and the like: wait, then go on.
                        log::warn!("accepting an HTTPS connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                handshakes.spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => log::debug!("a TLS handshake from {peer} failed: {e}"),
                        Err(_) => log::debug!("a TLS handshake from {peer} timed out"),
                    }
                });
            }
        });
        Self {
            ready,
            address,
            acceptor_task: AbortOnDrop(task),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The acceptor ended (its runtime is shutting down): accept nothing more.
            None => {
                let _ = &self.acceptor_task;
                std::future::pending().await
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        match &self.address {
            Ok(a) => Ok(*a),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(token: &str) -> TokenGate {
        TokenGate {
            token: token.into(),
            cookie: SessionCookie::of(token),
            secure: false,
            loopback: true,
        }
    }

    #[test]
    fn the_cookie_is_scoped_and_never_holds_the_token() {
        let a = SessionCookie::of("s3cret");
        let line = session_cookie(&a, true);
        assert!(line.ends_with("; Secure"), "{line}");
        assert!(line.contains("HttpOnly; SameSite=Strict"), "{line}");
        assert!(!session_cookie(&a, false).contains("Secure"));
        assert!(!line.contains("s3cret"), "{line}");
        let b = SessionCookie::of("another cluster");
        assert_ne!(a.name, b.name, "two clusters, two cookies");
        assert_ne!(a.value, b.value);
    }

    #[test]
    fn the_token_is_found_in_a_header_a_cookie_or_the_query() {
        let g = gate("s3cret");
        let mut h = HeaderMap::new();
        assert_eq!(carries(&g, &h, None), (false, false));
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert_eq!(carries(&g, &h, None), (true, false));
        assert_eq!(carries(&gate("other"), &h, None), (false, false));
        let mut c = HeaderMap::new();
        let pair = format!("a=b; {}={}", g.cookie.name, g.cookie.value);
        c.insert(header::COOKIE, pair.parse().unwrap());
        assert_eq!(carries(&g, &c, None), (true, false));
        // The token itself in a cookie is not the session.
        let mut raw = HeaderMap::new();
        let pair = format!("{}=s3cret", g.cookie.name);
        raw.insert(header::COOKIE, pair.parse().unwrap());
        assert_eq!(carries(&g, &raw, None), (false, false));
        let none = HeaderMap::new();
        assert_eq!(
            carries(&gate("s 3"), &none, Some("x=1&token=s%203")),
            (false, true)
        );
        assert_eq!(carries(&g, &none, Some("token=s3cre")), (false, false));
    }

    #[test]
    fn percent_decoding_takes_any_bytes() {
        assert_eq!(percent_decode("a%41"), "aA");
        assert_eq!(percent_decode("%e2%82%ac"), "€");
        for odd in ["%", "%4", "%é", "é%", "%%", "%zz", "x%\u{10348}1", "%4é"] {
            let _ = percent_decode(odd);
        }
    }

    #[test]
    fn only_loopback_names_reach_a_loopback_listener() {
        for ok in [
            "127.0.0.1:8265",
            "localhost",
            "LOCALHOST:1",
            "[::1]:80",
            "a.localhost",
            "127.1.2.3",
        ] {
            assert!(names_loopback(ok), "{ok}");
        }
        for bad in [
            "evil.example:8265",
            "evil.example",
            "",
            "10.0.0.1",
            "[::2]:80",
            "localhost.evil.example",
        ] {
            assert!(!names_loopback(bad), "{bad}");
        }
    }
}
