//! Test certificates: a CA and a node certificate it signed for 127.0.0.1 and
//! localhost (`ca.pem`, `node.pem`, `node.key` in a directory), made by openssl,
//! and the node key's SPKI pin, which a browser can be told to trust.

use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
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
}

/// A CA and a certificate it signed for 127.0.0.1 and localhost, made by openssl.
pub fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
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
        ],
    );
    node_certificate(dir, "node", "IP:127.0.0.1,DNS:localhost");
}

/// `NAME.pem` and `NAME.key`: a certificate the CA of [`certificates`] signed
/// for the subject alternative names `names` (openssl's form,
/// `IP:10.0.0.7,DNS:worker-7`).
pub fn node_certificate(dir: &Path, name: &str, names: &str) {
    let (key, csr, pem, ext) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.cnf"),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join(&ext),
        format!("subjectAltName={names}\nbasicConstraints=CA:FALSE\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
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
    cluster_section_as(dir, "node")
}

/// The same, serving with `NAME.pem` and `NAME.key` ([`node_certificate`]).
pub fn cluster_section_as(dir: &Path, name: &str) -> String {
    format!(
        "[cluster]\ntls_cert = \"{}\"\ntls_key = \"{}\"\ntls_ca = \"{}\"\n",
        dir.join(format!("{name}.pem")).display(),
        dir.join(format!("{name}.key")).display(),
        dir.join("ca.pem").display()
    )
}
