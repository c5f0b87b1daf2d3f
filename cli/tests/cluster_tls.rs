//! A cluster with TLS: the driver and a worker serve with a certificate signed by a
//! test CA; a client trusting the CA runs a query; a plain client is refused.

// Test scaffolding: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{local_csv, ok, output, regatta, start, tpch_tables, Q1};

#[test]
fn a_tls_cluster_serves_clients_that_trust_its_ca_and_refuses_plain_ones() {
    let d = tempfile::tempdir().unwrap();
    regatta_tests::tls_certs::certificates(d.path());
    let tables = tpch_tables(d.path(), 5_000, 2);
    let config = d.path().join("cluster.toml");
    let tls = regatta_tests::tls_certs::cluster_section(d.path());
    std::fs::write(&config, &tls).unwrap();
    let mut cmd = regatta();
    cmd.args(["driver", "-c"])
        .arg(&config)
        .args(["--bind", "127.0.0.1:0"]);
    let (_driver, line) = start(cmd, "listening on");
    let address = line.rsplit(' ').next().unwrap().to_string();
    let mut cmd = regatta();
    cmd.args(["worker", "-c"])
        .arg(&config)
        .args(["--driver", &address, "--spill-dir"])
        .arg(d.path().join("spill"));
    let (_worker, _) = start(cmd, "serving shuffle data");

    let mut submit = regatta();
    submit
        .args(["submit", "-f", "csv", "-c"])
        .arg(&config)
        .env("REGATTA_DRIVER", &address);
    common::with_tables(&mut submit, &tables);
    assert_eq!(ok(submit.arg(Q1)), local_csv(&tables, Q1));

    // Without the CA the client speaks plain HTTP/2 to a TLS server: refused, named.
    let (success, _, err) = output(regatta().args(["jobs"]).env("REGATTA_DRIVER", &address));
    assert!(!success && err.contains(&address), "{err}");
}
