//! The HTTP listeners (dashboard, metrics) against hostile clients: malformed
//! request bytes never panic a connection, a client that opens a TLS
//! connection and stays silent holds no one else up, and a loopback listener
//! answers only requests addressed to loopback (DNS rebinding).

use std::time::Duration;

use regatta::proto::axum::routing::get;
use regatta::proto::axum::Router;
use regatta::proto::{ClusterTls, HttpServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOKEN: &str = "s3cret-token";

async fn server(tls: Option<&ClusterTls>) -> HttpServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let router = Router::new().route("/", get(|| async { "ok" }));
    HttpServer::serve("test endpoint", listener, TOKEN, tls, router).unwrap()
}

/// Sends `request` as is; the status code of the answer, or None when the
/// connection closed without one.
async fn raw(address: std::net::SocketAddr, request: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(address).await.unwrap();
    let _ = s.write_all(request).await;
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut reply)).await;
    assert!(
        read.is_ok(),
        "no answer within 10 s to {:?}",
        String::from_utf8_lossy(request)
    );
    let text = String::from_utf8_lossy(&reply);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
}

fn request(path: &str, host: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n").into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_get_answers_not_panics() {
    let s = server(None).await;
    let a = s.address;
    let host = a.to_string();
    let bearer = format!("Authorization: Bearer {TOKEN}\r\n");
    assert_eq!(raw(a, &request("/", &host, &bearer)).await, Some(200));
    // Queries a client made up: each is answered (401: no valid token).
    for query in [
        "/?token=%E2%82%AC",
        "/?token=%é",
        "/?token=é%",
        "/?token=%",
        "/?token=%4",
        "/?token=%%%",
        "/?token=%4é",
        "/?token=\u{10348}%1",
        "/?&&=&token",
    ] {
        // Sent as raw UTF-8 bytes, as a careless client would.
        assert_eq!(
            raw(a, &request(query, &host, "")).await,
            Some(401),
            "{query}"
        );
    }
    // Bytes that are not HTTP at all, or break it halfway.
    let long_header = format!("X-Long: {}\r\n", "a".repeat(200_000));
    for junk in [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
        b"\x00\xff\xfe\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        request("/", &host, "Bad\x01Header: x\r\n"),
        [&b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: \xff\xfe=\xfd\r\nConnection: close\r\n\r\n"[..]].concat(),
        request("/", &host, &long_header),
        request("/../../../etc/passwd", &host, ""),
        request("*", &host, ""),
        format!("GET / HTTP/1.1\r\nHost: {host}\r\nContent-Length: -1\r\n\r\n").into_bytes(),
        format!("GET / HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
            .into_bytes(),
    ] {
        let _ = raw(a, &junk).await;
    }
    assert_eq!(
        raw(a, &request("/", &host, &bearer)).await,
        Some(200),
        "the listener still serves"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_loopback_listener_refuses_other_host_names() {
    let s = server(None).await;
    let a = s.address;
    let bearer = format!("Authorization: Bearer {TOKEN}\r\n");
    assert_eq!(
        raw(a, &request("/", "evil.example", &bearer)).await,
        Some(421)
    );
    assert_eq!(
        raw(
            a,
            &request("/", &format!("evil.example:{}", a.port()), &bearer)
        )
        .await,
        Some(421)
    );
    for host in [a.to_string(), format!("localhost:{}", a.port())] {
        assert_eq!(
            raw(a, &request("/", &host, &bearer)).await,
            Some(200),
            "{host}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_tls_clients_hold_up_no_one() {
    let d = tempfile::tempdir().unwrap();
    regatta_tests::tls_certs::certificates(d.path());
    let read = |f: &str| std::fs::read(d.path().join(f)).unwrap();
    let tls = ClusterTls {
        cert_pem: read("node.pem"),
        key_pem: read("node.key"),
        ca_pem: read("ca.pem"),
    };
    let s = server(Some(&tls)).await;
    // Connections that never start a handshake, and one that sends a broken
    // TLS record; before the fix each held the accept loop for 5 s in turn.
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpStream::connect(s.address).await.unwrap());
    }
    let mut broken = TcpStream::connect(s.address).await.unwrap();
    broken
        .write_all(b"\x16\x03\x01\xff\xff garbage that is no ClientHello")
        .await
        .unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&tls.ca_pem).unwrap())
        .timeout(Duration::from_secs(4))
        .build()
        .unwrap();
    let reply = client
        .get(format!("https://127.0.0.1:{}/", s.address.port()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("served while silent clients wait in their handshakes");
    assert_eq!(reply.status().as_u16(), 200);
    assert_eq!(reply.text().await.unwrap(), "ok");
    drop(silent);
}
