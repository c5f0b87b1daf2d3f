//! Who a worker is: a token holder that is not the worker cannot act on its
//! id (report its tasks, take its orders, take its id over), and no report can
//! point the driver's commit at files outside the job's staging prefix.

// Test scaffolding: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{cluster_with, ok, WorkerSetup, TOKEN};
use regatta::proto::worker_control_client::WorkerControlClient;
use regatta::proto::{
    HeartbeatRequest, OrdersRequest, RegisterRequest, Resources, TaskKey, TaskReport,
    TokenInterceptor,
};
use tonic::Code;

#[tokio::test(flavor = "multi_thread")]
async fn forged_calls_on_another_workers_id_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let c = cluster_with(
        &d.path().join("spill"),
        WorkerSetup {
            count: 1,
            ..WorkerSetup::default()
        },
    );
    // A job with an output, so its reports name staged files.
    let table = common::table(d.path(), "t", "id", 1, "SELECT 1 AS id");
    let out = d.path().join("out");
    let mut submit = c.cli();
    submit.args(["submit", "-t", &table, "-o"]).arg(&out);
    ok(submit.arg("SELECT id FROM t"));
    let real = c.workers()[0]
        .line
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let real_id: u64 = real.trim_start_matches("worker-").parse().unwrap();

    let channel = regatta::proto::endpoint(&c.driver, None)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut forger = WorkerControlClient::with_interceptor(channel, TokenInterceptor::new(TOKEN));
    let report = |worker_id: u64, written: &str| TaskReport {
        worker_id,
        key: Some(TaskKey {
            job_id: 1,
            stage_id: 0,
            partition: 0,
            attempt: 0,
        }),
        ok: true,
        written: written.to_string(),
        ..TaskReport::default()
    };

    // Without the worker's credential: the token alone does not make one the worker.
    let e = forger
        .report_task(report(real_id, "part-0.parquet"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    let e = forger
        .heartbeat(HeartbeatRequest {
            worker_id: real_id,
            ..HeartbeatRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    let e = forger
        .orders(OrdersRequest { worker_id: real_id })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    let take_over = RegisterRequest {
        flight_address: "127.0.0.1:1".into(),
        resources: Some(Resources {
            cpus: 1,
            ..Resources::default()
        }),
        previous_worker_id: real_id,
        ..RegisterRequest::default()
    };
    let e = forger.register(take_over.clone()).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");

    // Registered as a worker of its own, it still cannot report on the
    // other's id, nor name files outside the staging prefix on its own.
    let mine = forger
        .register(RegisterRequest {
            previous_worker_id: 0,
            ..take_over
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(mine.worker_id, real_id);
    let signed = |r: TaskReport| regatta::proto::with_worker_secret(r, &mine.worker_secret);
    let e = forger
        .report_task(signed(report(real_id, "x")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    for forged in ["/etc/passwd", "../../victim.parquet", "a/b.parquet"] {
        let e = forger
            .report_task(signed(report(mine.worker_id, forged)))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{forged}: {e}");
        assert!(e.message().contains("staging"), "{e}");
    }

    // The real worker is untouched: it still runs jobs.
    assert_eq!(
        c.csv(&[table], "SELECT count(*) AS n FROM t")
            .lines()
            .nth(1),
        Some("1")
    );
}

#[test]
fn require_tls_refuses_a_worker_that_would_dial_off_loopback_in_clear_text() {
    let d = tempfile::tempdir().unwrap();
    let config = d.path().join("cluster.toml");
    std::fs::write(&config, "[security]\nrequire_tls = true\n").unwrap();
    // Refused before it dials anything: 192.0.2.1 is a documentation address.
    let (success, _, err) = common::output(
        common::regatta()
            .args(["worker", "-c"])
            .arg(&config)
            .args(["--driver", "192.0.2.1:7700", "--spill-dir"])
            .arg(d.path().join("spill")),
    );
    assert!(!success);
    assert!(err.contains("security.require_tls"), "{err}");
    assert!(err.contains("192.0.2.1:7700"), "{err}");
    assert!(err.contains("without TLS"), "{err}");
}

#[test]
fn verified_worker_certificates_without_tls_refuse_to_start_the_driver() {
    let d = tempfile::tempdir().unwrap();
    let config = d.path().join("cluster.toml");
    std::fs::write(&config, "[security]\nverify_worker_certs = true\n").unwrap();
    let (success, _, err) = common::output(
        common::regatta()
            .args(["driver", "-c"])
            .arg(&config)
            .args(["--bind", "127.0.0.1:0"]),
    );
    assert!(!success, "the driver started without TLS");
    assert!(
        err.contains("security.verify_worker_certs") && err.contains("needs TLS"),
        "{err}"
    );
}
