//! Actor pools: build once per actor, GPU placement, growth, shrinking and failures.

// Test scaffolding: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use arrow::datatypes::{DataType, Int64Type};
use regatta_actors::{
    ActorContext, ActorError, ActorRuntime, Model, ModelError, ModelFactory, NodeResources,
    PoolConfig,
};
use regatta_common::Resources;
use regatta_engine::functions::{ModelPool, OnError};

/// What a test model does with each batch.
#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    /// Doubles its input after sleeping this long.
    Double(Duration),
    /// Fails the first call made across all actors, then doubles.
    FailOnce,
    /// Always fails.
    AlwaysFail,
    /// Panics on the first call made across all actors, then doubles.
    PanicOnce,
}

/// One batch as an actor saw it.
#[derive(Debug, Clone)]
struct Visit {
    actor: u64,
    gpus: Vec<u32>,
    start: Instant,
    end: Instant,
}

struct TestFactory {
    behaviour: Behaviour,
    builds: AtomicUsize,
    calls: Arc<AtomicUsize>,
    visits: Arc<Mutex<Vec<Visit>>>,
}

impl TestFactory {
    fn new(behaviour: Behaviour) -> Arc<Self> {
        Arc::new(Self {
            behaviour,
            builds: AtomicUsize::new(0),
            calls: Arc::default(),
            visits: Arc::default(),
        })
    }
    fn builds(&self) -> usize {
        self.builds.load(Ordering::SeqCst)
    }
}

struct TestModel {
    behaviour: Behaviour,
    ctx: ActorContext,
    calls: Arc<AtomicUsize>,
    visits: Arc<Mutex<Vec<Visit>>>,
}

impl Model for TestModel {
    fn process(&mut self, inputs: &[ArrayRef]) -> Result<ArrayRef, ModelError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        let start = Instant::now();
        match self.behaviour {
            Behaviour::Double(d) => std::thread::sleep(d),
            Behaviour::FailOnce if call == 0 => return Err("transient failure".into()),
            Behaviour::AlwaysFail => return Err("the model is broken".into()),
            Behaviour::PanicOnce if call == 0 => panic!("model state corrupted"),
            _ => {}
        }
        self.visits.lock().unwrap().push(Visit {
            actor: self.ctx.actor.0,
            gpus: self.ctx.gpus.clone(),
            start,
            end: Instant::now(),
        });
        let x = inputs[0].as_primitive::<Int64Type>();
        Ok(Arc::new(x.unary::<_, Int64Type>(|v| v * 2)))
    }
}

impl ModelFactory for TestFactory {
    fn output_type(&self) -> DataType {
        DataType::Int64
    }
    fn build(&self, ctx: &ActorContext) -> Result<Box<dyn Model>, ModelError> {
        self.builds.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(TestModel {
            behaviour: self.behaviour,
            ctx: ctx.clone(),
            calls: self.calls.clone(),
            visits: self.visits.clone(),
        }))
    }
}

fn runtime(gpus: u32) -> Arc<ActorRuntime> {
    ActorRuntime::new(NodeResources::new(8.0, 1 << 30, gpus))
}

fn config(min: usize, max: usize, gpus: f64) -> PoolConfig {
    PoolConfig {
        min_actors: min,
        max_actors: max,
        batch_size: 4,
        resources: Resources::new(1.0, gpus, 0).unwrap(),
        ..PoolConfig::default()
    }
}

fn input(rows: i64) -> Vec<ArrayRef> {
    vec![Arc::new(Int64Array::from_iter_values(0..rows))]
}

fn assert_doubled(out: &ArrayRef, rows: i64) {
    let got: Vec<i64> = out.as_primitive::<Int64Type>().values().to_vec();
    let want: Vec<i64> = (0..rows).map(|v| v * 2).collect();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_is_built_once_per_actor_however_many_batches_run() {
    let rt = runtime(0);
    let factory = TestFactory::new(Behaviour::Double(Duration::from_millis(5)));
    let pool = rt
        .create_pool("double", factory.clone(), config(2, 2, 0.0))
        .unwrap();
    // 40 rows in batches of 4: ten batches over two actors.
    let out = pool.infer(input(40), 40).await.unwrap();
    assert_doubled(&out, 40);
    assert_eq!(factory.builds(), 2);
    let out = pool.infer(input(40), 40).await.unwrap();
    assert_doubled(&out, 40);
    assert_eq!(factory.builds(), 2, "a second call builds nothing");
    assert_eq!(pool.stats().batches, 20);
}

/// The most visits that overlap at any instant, and whether overlapping visits ever
/// shared a device.
fn overlaps(visits: &[Visit]) -> (usize, bool) {
    let mut most = 0;
    let mut shared = false;
    for v in visits {
        let during: Vec<&Visit> = visits
            .iter()
            .filter(|w| w.start <= v.start && v.start < w.end)
            .collect();
        most = most.max(during.len());
        for w in &during {
            if w.actor != v.actor && w.gpus.iter().any(|g| v.gpus.contains(g)) {
                shared = true;
            }
        }
    }
    (most, shared)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_one_gpu_actors_on_two_gpus_run_two_at_a_time_on_distinct_devices() {
    let rt = runtime(2);
    let factory = TestFactory::new(Behaviour::Double(Duration::from_millis(60)));
    let pool = rt
        .create_pool("gpu", factory.clone(), config(0, 4, 1.0))
        .unwrap();
    // 16 batches at once: the pool wants four actors, the node has two GPUs.
    let out = pool.infer(input(64), 64).await.unwrap();
    assert_doubled(&out, 64);
    let visits = factory.visits.lock().unwrap().clone();
    assert_eq!(visits.len(), 16);
    let (most, shared) = overlaps(&visits);
    assert_eq!(most, 2, "two GPUs allow two actors at once");
    assert!(!shared, "actors running together never share a GPU");
    for v in &visits {
        assert_eq!(v.gpus.len(), 1);
        assert!(v.gpus[0] < 2, "device {} does not exist", v.gpus[0]);
    }
    assert_eq!(pool.stats().actors_peak, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_gpu_actors_share_one_device() {
    let rt = runtime(2);
    let factory = TestFactory::new(Behaviour::Double(Duration::from_millis(40)));
    let pool = rt
        .create_pool("half", factory.clone(), config(2, 2, 0.5))
        .unwrap();
    pool.infer(input(16), 16).await.unwrap();
    let visits = factory.visits.lock().unwrap().clone();
    let mut actors: Vec<u64> = visits.iter().map(|v| v.actor).collect();
    actors.sort();
    actors.dedup();
    assert_eq!(actors.len(), 2, "both actors served batches");
    let devices: Vec<&Vec<u32>> = visits.iter().map(|v| &v.gpus).collect();
    assert!(devices.iter().all(|d| *d == devices[0] && d.len() == 1));
    let (most, _) = overlaps(&visits);
    assert_eq!(most, 2, "the two half-GPU actors run at the same time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_asking_for_more_gpus_than_exist_fails_at_once() {
    let rt = runtime(2);
    let factory = TestFactory::new(Behaviour::Double(Duration::ZERO));
    let started = Instant::now();
    let e = rt
        .create_pool("greedy", factory.clone(), config(1, 1, 3.0))
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(matches!(e, ActorError::NeverFits { .. }));
    let msg = e.to_string();
    assert!(msg.contains("3 GPUs") && msg.contains("2 GPUs"), "{msg}");
    assert_eq!(factory.builds(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_fails_once_succeeds_on_retry() {
    let rt = runtime(0);
    let factory = TestFactory::new(Behaviour::FailOnce);
    let pool = rt
        .create_pool("flaky", factory.clone(), config(1, 1, 0.0))
        .unwrap();
    let out = pool.infer(input(4), 4).await.unwrap();
    assert_doubled(&out, 4);
    let s = pool.stats();
    assert_eq!((s.failed_attempts, s.batches), (1, 1));
    assert_eq!(factory.builds(), 1, "an error is not a reason to rebuild");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_always_fails_gives_nulls_under_on_error_null() {
    let rt = runtime(0);
    let factory = TestFactory::new(Behaviour::AlwaysFail);
    let cfg = PoolConfig {
        on_error: OnError::Null,
        max_retries: 1,
        ..config(1, 1, 0.0)
    };
    let pool = rt.create_pool("broken", factory.clone(), cfg).unwrap();
    let out = pool.infer(input(6), 6).await.unwrap();
    assert_eq!(out.len(), 6);
    assert_eq!(out.null_count(), 6);
    // Two batches (4 + 2 rows), two attempts each.
    assert_eq!(pool.stats().failed_attempts, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_always_fails_raises_a_clear_error_under_on_error_raise() {
    let rt = runtime(0);
    let factory = TestFactory::new(Behaviour::AlwaysFail);
    let pool = rt
        .create_pool("broken", factory.clone(), config(1, 1, 0.0))
        .unwrap();
    let e = pool.infer(input(4), 4).await.unwrap_err().to_string();
    assert!(e.contains("model broken"), "{e}");
    assert!(e.contains("after 3 attempts"), "{e}");
    assert!(e.contains("the model is broken"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_model_is_replaced_by_a_fresh_actor_and_the_work_finishes() {
    let rt = runtime(0);
    let factory = TestFactory::new(Behaviour::PanicOnce);
    let pool = rt
        .create_pool("panicky", factory.clone(), config(1, 1, 0.0))
        .unwrap();
    let out = pool.infer(input(12), 12).await.unwrap();
    assert_doubled(&out, 12);
    let s = pool.stats();
    assert_eq!(s.replaced_actors, 1);
    assert_eq!(factory.builds(), 2, "the replacement built its own model");
    let visits = factory.visits.lock().unwrap().clone();
    assert!(
        visits.iter().all(|v| v.actor != 1),
        "the panicked actor served nothing more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_grows_while_batches_wait_and_shrinks_when_idle() {
    let rt = runtime(0);
    let factory = TestFactory::new(Behaviour::Double(Duration::from_millis(50)));
    let cfg = PoolConfig {
        idle_timeout: Duration::from_millis(150),
        ..config(1, 3, 0.0)
    };
    let pool = rt.create_pool("elastic", factory.clone(), cfg).unwrap();
    pool.infer(input(48), 48).await.unwrap();
    assert_eq!(
        pool.stats().actors_peak,
        3,
        "twelve waiting batches grow the pool to max"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while pool.stats().actors > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        pool.stats().actors,
        1,
        "idle actors stop, down to min_actors"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_pool_configuration_names_the_field() {
    let rt = runtime(0);
    let factory = TestFactory::new(Behaviour::Double(Duration::ZERO));
    let e = rt
        .create_pool("x", factory, config(3, 2, 0.0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("min_actors") && e.contains("max_actors"), "{e}");
}
