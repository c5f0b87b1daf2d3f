//! Test certificates: a CA and a node certificate it signed for 127.0.0.1 and
//! localhost (`ca.pem`, `node.pem`, `node.key` in a directory), made by openssl,
//! and the node key's SPKI pin, which a browser can be told to trust.

use std::path::Path;
use std::process::Command;

/// A CA and a certificate it signed for 127.0.0.1 and localhost, made by openssl.
pub fn certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is needed for the TLS test (scripts/setup.sh installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=regatta test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "node.key",
        "-out",
        "node.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "node.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "node.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

/// The base64 SHA-256 of `node.pem`'s public key (SubjectPublicKeyInfo), as
/// Chromium's `--ignore-certificate-errors-spki-list` takes it.
pub fn node_spki_pin(dir: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(
            "openssl x509 -in node.pem -pubkey -noout | openssl pkey -pubin -outform der \
             | openssl dgst -sha256 -binary | base64",
        )
        .current_dir(dir)
        .output()
        .expect("openssl is needed (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The `[cluster]` section of a cluster file serving with the certificates
/// [`certificates`] made in `dir`.
pub fn cluster_section(dir: &Path) -> String {
    format!(
        "[cluster]\ntls_cert = \"{}\"\ntls_key = \"{}\"\ntls_ca = \"{}\"\n",
        dir.join("node.pem").display(),
        dir.join("node.key").display(),
        dir.join("ca.pem").display()
    )
}
