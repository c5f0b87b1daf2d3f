//! A cluster with TLS: the driver and a worker serve with a certificate signed by a
//! test CA; a client trusting the CA runs a query; a plain client is refused; the
//! dashboard is served over HTTPS only, to a browser that checks the certificate.

// Test scaffolding: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{
    local_csv, ok, output, regatta, save_screenshot, start, start_lines, tpch_tables, Proc, Q1,
};
use regatta_tests::webdriver::Browser;
use regatta_tests::{free_port, http};

/// A TLS driver (its cluster file: the test CA's section and `extra`) and one
/// worker: the processes, the cluster file, the driver's gRPC address and what
/// the driver printed until it listened.
struct TlsCluster {
    _procs: [Proc; 2],
    config: PathBuf,
    address: String,
    driver_lines: Vec<String>,
}

impl TlsCluster {
    /// `SELECT 6 * 7` submitted by a client holding the cluster file (the CA
    /// and the token; it presents no certificate of its own), as CSV.
    fn answer(&self) -> String {
        ok(regatta()
            .args(["submit", "-f", "csv", "-c"])
            .arg(&self.config)
            .env("REGATTA_DRIVER", &self.address)
            .arg("SELECT 6 * 7 AS answer"))
    }
}

fn tls_cluster(dir: &Path, extra: &str) -> TlsCluster {
    regatta_tests::tls_certs::certificates(dir);
    let config = dir.join("cluster.toml");
    let section = regatta_tests::tls_certs::cluster_section(dir);
    std::fs::write(&config, format!("{section}{extra}")).unwrap();
    let mut cmd = regatta();
    cmd.args(["driver", "-c"])
        .arg(&config)
        .args(["--bind", "127.0.0.1:0"]);
    let (driver, driver_lines) = start_lines(cmd, "listening on");
    let address = driver_lines
        .last()
        .and_then(|l| l.rsplit(' ').next())
        .unwrap()
        .to_string();
    let mut cmd = regatta();
    cmd.args(["worker", "-c"])
        .arg(&config)
        .args(["--driver", &address, "--spill-dir"])
        .arg(dir.join("spill"));
    let (worker, _) = start(cmd, "serving shuffle data");
    TlsCluster {
        _procs: [driver, worker],
        config,
        address,
        driver_lines,
    }
}

#[test]
fn a_tls_cluster_serves_clients_that_trust_its_ca_and_refuses_plain_ones() {
    let d = tempfile::tempdir().unwrap();
    let c = tls_cluster(d.path(), "");
    let tables = tpch_tables(d.path(), 5_000, 2);
    let mut submit = regatta();
    submit
        .args(["submit", "-f", "csv", "-c"])
        .arg(&c.config)
        .env("REGATTA_DRIVER", &c.address);
    common::with_tables(&mut submit, &tables);
    assert_eq!(ok(submit.arg(Q1)), local_csv(&tables, Q1));

    // Without the CA the client speaks plain HTTP/2 to a TLS server: refused, named.
    let (success, _, err) = output(regatta().args(["jobs"]).env("REGATTA_DRIVER", &c.address));
    assert!(!success && err.contains(&c.address), "{err}");
}

#[test]
fn over_tls_the_browser_gets_the_dashboard_by_https_only() {
    let d = tempfile::tempdir().unwrap();
    let dashboard = format!("127.0.0.1:{}", free_port());
    let c = tls_cluster(
        d.path(),
        &format!("[driver]\ndashboard_bind = \"{dashboard}\"\n"),
    );
    assert!(
        c.driver_lines
            .iter()
            .any(|l| l == &format!("regatta dashboard at https://{dashboard}/")),
        "the driver did not print an https URL: {:?}",
        c.driver_lines
    );
    assert_eq!(c.answer(), "answer\n42\n");

    // Plain HTTP to the TLS listener gets no page.
    let bearer = format!("Bearer {}", common::TOKEN);
    let plain = http::get(&dashboard, "/api/overview", &[("Authorization", &bearer)]);
    assert!(
        plain.as_ref().map_or(true, |r| r.status != 200),
        "plain HTTP was served: {plain:?}"
    );
    // Chromium trusts exactly this certificate's key (pinned; with another pin
    // the page does not load), so the page comes over a verified TLS connection.
    let pin = regatta_tests::tls_certs::node_spki_pin(d.path());
    let b = Browser::start_with(
        1200,
        800,
        &[format!("--ignore-certificate-errors-spki-list={pin}")],
    )
    .unwrap_or_else(|e| panic!("{e}: the browser tests need chromium and chromium-driver"));
    b.open(&format!("https://{dashboard}/?token={}", common::TOKEN))
        .unwrap();
    b.wait_for(
        "the finished job, over https",
        Duration::from_secs(30),
        "return location.protocol === 'https:' && \
         document.querySelector('#jobs tr[data-status=\"succeeded\"]') !== null;",
    )
    .unwrap();
    save_screenshot(&b, "https-jobs");
}

/// Mutual TLS for workers (`security.verify_worker_certs`): the driver registers
/// a worker whose certificate names the host it registers, and refuses one
/// whose certificate (signed by the same CA, holding the same token) was made
/// for another node, naming why. Clients without a certificate still submit.
#[test]
fn with_verified_worker_certificates_a_worker_joins_only_as_the_node_its_certificate_names() {
    let d = tempfile::tempdir().unwrap();
    let c = tls_cluster(d.path(), "[security]\nverify_worker_certs = true\n");
    // The good worker (its certificate names 127.0.0.1) runs the job; the
    // client (which checks the driver against the CA) presents no certificate.
    assert_eq!(c.answer(), "answer\n42\n");

    regatta_tests::tls_certs::node_certificate(d.path(), "elsewhere", "IP:10.9.8.7,DNS:elsewhere");
    let other = d.path().join("elsewhere.toml");
    std::fs::write(
        &other,
        format!(
            "{}[security]\nverify_worker_certs = true\n",
            regatta_tests::tls_certs::cluster_section_as(d.path(), "elsewhere")
        ),
    )
    .unwrap();
    let (joined, _, err) = output(
        regatta()
            .args(["worker", "-c"])
            .arg(&other)
            .args(["--driver", &c.address, "--spill-dir"])
            .arg(d.path().join("spill-elsewhere")),
    );
    assert!(!joined, "a worker with another node's certificate joined");
    assert!(
        err.contains("security.verify_worker_certs") && err.contains("does not name 127.0.0.1"),
        "{err}"
    );
}
