//! The driver's parts driven directly, with a lone consensus and fake workers
//! (order channels read by the test): placement, completion, loss, expiry and
//! cancellation, fast and without processes or sockets.

use std::time::Duration;

use regatta_common::{JobId, RequestId, Resources, StageId, WorkerId};
use regatta_proto::{worker_order, WorkerOrder};
use tokio::sync::mpsc;

use super::{job_info, schedule_round, Driver, DriverOptions, WorkerReport};
use crate::{
    Command, JobStatus, OutputStats, Refusal, SchedulerError, StageSpec, TaskKey, WorkerSpec,
};

/// A loopback worker with `cpus` CPUs, no GPU and 1 GiB.
fn worker_spec(cpus: f64) -> WorkerSpec {
    WorkerSpec {
        address: "127.0.0.1:1".into(),
        host: "127.0.0.1".into(),
        resources: Resources {
            cpus,
            gpus: 0.0,
            memory: 1 << 30,
        },
        ..WorkerSpec::default()
    }
}

/// A worker the test plays: its id and the orders the driver sends it.
struct FakeWorker {
    id: WorkerId,
    orders: mpsc::Receiver<WorkerOrder>,
}

impl FakeWorker {
    async fn join(driver: &Driver, cpus: f64) -> Self {
        let (id, _) = driver
            .membership()
            .register(worker_spec(cpus), None, &[])
            .await
            .unwrap();
        let orders = driver.membership().connect(id).unwrap();
        Self { id, orders }
    }

    /// The tasks it was ordered to run so far.
    fn tasks(&mut self) -> Vec<(TaskKey, u32)> {
        let mut out = Vec::new();
        while let Ok(o) = self.orders.try_recv() {
            if let Some(worker_order::Order::Task(t)) = o.order {
                let k = t.key.unwrap();
                let key = TaskKey {
                    job: JobId(k.job_id),
                    stage: StageId(u64::from(k.stage_id)),
                    partition: k.partition,
                };
                out.push((key, k.attempt));
            }
        }
        out
    }

    /// Whether it was told to drop `job`.
    fn told_to_end(&mut self, job: JobId) -> bool {
        let mut seen = false;
        while let Ok(o) = self.orders.try_recv() {
            seen |= o.order == Some(worker_order::Order::EndJob(job.0));
        }
        seen
    }

    async fn finish(&self, driver: &Driver, (task, attempt): (TaskKey, u32), rows: u64) {
        let done = Command::TaskFinished {
            task,
            worker: self.id,
            attempt,
            outputs: vec![OutputStats {
                partition: 0,
                rows,
                bytes: rows * 8,
            }],
            spilled_bytes: 0,
            written: String::new(),
            operators: Vec::new(),
            row_failures: Default::default(),
        };
        driver.consensus().apply(done).await.unwrap();
    }
}

fn options() -> DriverOptions {
    DriverOptions {
        worker_timeout: Duration::from_millis(200),
        result_retention: Duration::from_secs(3600),
        ..DriverOptions::default()
    }
}

async fn submit(driver: &Driver, tasks: u32) -> JobId {
    let job = driver.jobs().new_id();
    let cmd = Command::SubmitJob {
        submitted_unix_ms: 0,
        row_errors: Default::default(),
        job,
        name: "test".into(),
        stages: vec![StageSpec {
            stage: StageId(1),
            tasks,
            inputs: vec![],
            output_partitions: 1,
            demand: Resources {
                cpus: 1.0,
                gpus: 0.0,
                memory: 1 << 20,
            },
            plan: Vec::new(),
            task_inputs: Vec::new(),
        }],
        output: None,
        request_id: RequestId::generate(),
    };
    driver.jobs().submit(cmd, Duration::ZERO).await.unwrap();
    job
}

fn status(driver: &Driver, job: JobId) -> JobStatus {
    driver
        .with_state(|s| s.job(job).map(|j| j.status.clone()))
        .unwrap()
}

#[tokio::test]
async fn tasks_go_to_connected_workers_within_their_cpus_and_the_job_completes() {
    let driver = Driver::new(options());
    let mut a = FakeWorker::join(&driver, 2.0).await;
    let mut b = FakeWorker::join(&driver, 1.0).await;
    let job = submit(&driver, 5).await;
    assert_eq!(schedule_round(&driver).await, 3, "3 CPUs, 3 tasks at once");
    let (on_a, on_b) = (a.tasks(), b.tasks());
    assert_eq!((on_a.len(), on_b.len()), (2, 1));
    for t in on_a {
        a.finish(&driver, t, 10).await;
    }
    for t in on_b {
        b.finish(&driver, t, 10).await;
    }
    // The freed CPUs take the last two.
    assert_eq!(schedule_round(&driver).await, 2);
    let (on_a, on_b) = (a.tasks(), b.tasks());
    assert_eq!(on_a.len() + on_b.len(), 2);
    for t in on_a {
        a.finish(&driver, t, 10).await;
    }
    for t in on_b {
        b.finish(&driver, t, 10).await;
    }
    driver.jobs().advance().await;
    assert_eq!(status(&driver, job), JobStatus::Succeeded);
    let info = job_info(&driver, job).unwrap();
    assert_eq!((info.tasks_done, info.rows_out), (5, 50));
}

#[tokio::test]
async fn a_lost_worker_s_task_is_placed_again_on_another() {
    let driver = Driver::new(options());
    let mut a = FakeWorker::join(&driver, 1.0).await;
    let job = submit(&driver, 1).await;
    assert_eq!(schedule_round(&driver).await, 1);
    let first = a.tasks();
    assert_eq!(first.len(), 1);
    let mut b = FakeWorker::join(&driver, 1.0).await;
    driver.membership().lose(a.id, "test").await;
    assert_eq!(schedule_round(&driver).await, 1);
    let again = b.tasks();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].0, first[0].0);
    assert!(
        again[0].1 > first[0].1,
        "a new attempt: {again:?} after {first:?}"
    );
    b.finish(&driver, again[0], 1).await;
    driver.jobs().advance().await;
    assert_eq!(status(&driver, job), JobStatus::Succeeded);
    assert!(driver.with_state(|s| !s.worker(a.id).unwrap().alive));
}

#[tokio::test]
async fn a_silent_worker_is_lost_at_its_timeout_and_one_that_beats_is_kept() {
    let driver = Driver::new(options());
    let silent = FakeWorker::join(&driver, 1.0).await;
    let beating = FakeWorker::join(&driver, 1.0).await;
    let watch = tokio::spawn(super::loops::heartbeat_loop(driver.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while driver.with_state(|s| s.worker(silent.id).unwrap().alive) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never declared lost"
        );
        assert!(driver
            .membership()
            .heartbeat(beating.id, WorkerReport::default()));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    watch.abort();
    assert!(driver.with_state(|s| s.worker(beating.id).unwrap().alive));
    assert!(!driver
        .membership()
        .heartbeat(silent.id, WorkerReport::default()));
}

#[tokio::test]
async fn cancelling_ends_the_job_on_every_worker_and_an_unknown_job_is_not_found() {
    let driver = Driver::new(options());
    let mut a = FakeWorker::join(&driver, 1.0).await;
    let job = submit(&driver, 2).await;
    schedule_round(&driver).await;
    driver.jobs().cancel(job).await.unwrap();
    assert_eq!(status(&driver, job), JobStatus::Cancelled);
    assert!(a.told_to_end(job));
    let unknown = driver.jobs().cancel(JobId(999)).await.unwrap_err();
    assert!(
        matches!(
            unknown,
            SchedulerError::Refusal(Refusal::UnknownJob(JobId(999)))
        ),
        "{unknown}"
    );
    let status: tonic::Status = unknown.into();
    assert_eq!(status.code(), tonic::Code::NotFound);
    // Refusals come back typed from a batch too.
    let refused = driver
        .consensus()
        .propose(Command::Batch(vec![Command::CancelJob { job: JobId(998) }]))
        .await
        .unwrap();
    assert_eq!(refused, vec![Some(Refusal::UnknownJob(JobId(998)))]);
}

#[tokio::test]
async fn results_expire_when_their_retention_ends_without_a_tick() {
    let driver = Driver::new(DriverOptions {
        result_retention: Duration::from_millis(100),
        ..options()
    });
    let mut a = FakeWorker::join(&driver, 1.0).await;
    let job = submit(&driver, 1).await;
    let looping = tokio::spawn(super::loops::schedule_loop(driver.clone()));
    let mut changes = driver.changes();
    let task = loop {
        if let Some(t) = a.tasks().pop() {
            break t;
        }
        changes.changed().await.unwrap();
    };
    a.finish(&driver, task, 3).await;
    // Succeeds, then its results are released once the retention ends; no
    // other change wakes the loop meanwhile.
    let released = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if driver.with_state(|s| s.job(job).is_some_and(|j| j.released.is_some())) {
                break;
            }
            changes.changed().await.unwrap();
        }
    })
    .await;
    looping.abort();
    assert!(released.is_ok(), "the results were never released");
    assert_eq!(status(&driver, job), JobStatus::Succeeded);
    assert!(a.told_to_end(job));
}

#[tokio::test]
async fn a_launcher_waiting_for_a_node_wakes_when_its_worker_joins_and_names_what_never_came() {
    let driver = Driver::new(options());
    let ctx =
        crate::launcher::LaunchContext::new("127.0.0.1:1".into(), "token".into(), driver.clone());
    let labels = std::collections::BTreeSet::from(["node:a".to_string()]);
    let waiting = {
        let ctx = ctx.clone();
        let labels = labels.clone();
        tokio::spawn(async move { ctx.wait_for(&labels, Duration::from_secs(60)).await })
    };
    let spec = WorkerSpec {
        node_label: "node:a".into(),
        ..worker_spec(1.0)
    };
    driver.membership().register(spec, None, &[]).await.unwrap();
    // The join wakes the wait (well inside its 60 s).
    let woke = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the wait did not wake when the worker joined")
        .unwrap();
    assert_eq!(woke, Ok(()));
    // A node with no worker: the wait ends at its timeout, naming it.
    let never = std::collections::BTreeSet::from(["node:a".to_string(), "node:b".to_string()]);
    assert_eq!(
        ctx.wait_for(&never, Duration::from_millis(100)).await,
        Err(std::collections::BTreeSet::from(["node:b".to_string()]))
    );
}
