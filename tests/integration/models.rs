//! Models served by actor pools, through the SDK and SQL: built once per actor and
//! per session, real embeddings with `embed_text`, chained pools, metrics, vector
//! search.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use regatta::arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray};
use regatta::arrow::datatypes::{DataType, Field, Float32Type, Int64Type, Schema};
use regatta::models::{ActorContext, Model, ModelError, ModelFactory, PoolConfig, Resources};
use regatta::prelude::*;
use regatta_tests::minilm_dir;

use crate::concat;

/// Adds `add` to its input after `delay`; records builds and batch sizes.
struct AddFactory {
    add: i64,
    delay: Duration,
    builds: AtomicUsize,
    batch_rows: Arc<Mutex<Vec<usize>>>,
}

impl AddFactory {
    fn new(add: i64, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            add,
            delay,
            builds: AtomicUsize::new(0),
            batch_rows: Arc::default(),
        })
    }
}

struct AddModel {
    add: i64,
    delay: Duration,
    batch_rows: Arc<Mutex<Vec<usize>>>,
}

impl Model for AddModel {
    fn process(&mut self, inputs: &[ArrayRef]) -> Result<ArrayRef, ModelError> {
        std::thread::sleep(self.delay);
        let x = inputs[0].as_primitive::<Int64Type>();
        self.batch_rows.lock().unwrap().push(x.len());
        let add = self.add;
        Ok(Arc::new(x.unary::<_, Int64Type>(|v| v + add)))
    }
}

impl ModelFactory for AddFactory {
    fn output_type(&self) -> DataType {
        DataType::Int64
    }
    fn build(&self, _ctx: &ActorContext) -> Result<Box<dyn Model>, ModelError> {
        self.builds.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(AddModel {
            add: self.add,
            delay: self.delay,
            batch_rows: self.batch_rows.clone(),
        }))
    }
}

fn pool(min: usize, max: usize, batch: usize) -> PoolConfig {
    PoolConfig {
        min_actors: min,
        max_actors: max,
        batch_size: batch,
        resources: Resources::new(0.5, 0.0, 0).unwrap(),
        ..PoolConfig::default()
    }
}

/// Registers `slow` (+1 after `delay_ms`, batches of 8, up to 2 actors) and `fast`
/// (+10 at once, batches of 32, one actor).
fn slow_and_fast(session: &Session, delay_ms: u64) -> (Arc<AddFactory>, Arc<AddFactory>) {
    let slow = AddFactory::new(1, Duration::from_millis(delay_ms));
    let fast = AddFactory::new(10, Duration::ZERO);
    session
        .register_model("slow", slow.clone(), pool(1, 2, 8))
        .unwrap();
    session
        .register_model("fast", fast.clone(), pool(1, 1, 32))
        .unwrap();
    (slow, fast)
}

fn numbers(session: &Session, n: i64) {
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
    let batch =
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(0..n))]).unwrap();
    let df = session.from_batches(vec![batch]).unwrap();
    session.register_dataframe("numbers", df).unwrap();
}

fn ints(batches: &[RecordBatch], column: usize) -> Vec<i64> {
    let b = concat(batches);
    b.column(column)
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_two_builds_the_model_twice_and_a_second_query_builds_nothing() {
    let session = Session::local();
    numbers(&session, 200);
    let factory = AddFactory::new(1, Duration::from_millis(2));
    session
        .register_model("plus_one", factory.clone(), pool(2, 2, 8))
        .unwrap();
    let q = "SELECT x, plus_one(x) AS y FROM numbers ORDER BY x";
    let out = session.sql(q).await.unwrap().collect().await.unwrap();
    assert_eq!(ints(&out, 1), (1..=200).collect::<Vec<_>>());
    assert_eq!(factory.builds.load(Ordering::SeqCst), 2);
    let out = session.sql(q).await.unwrap().collect().await.unwrap();
    assert_eq!(ints(&out, 1), (1..=200).collect::<Vec<_>>());
    assert_eq!(
        factory.builds.load(Ordering::SeqCst),
        2,
        "the second query reuses the actors"
    );
    let rows = factory.batch_rows.lock().unwrap();
    assert!(
        rows.iter().all(|&r| r <= 8),
        "the declared batch size is kept"
    );
    assert_eq!(rows.iter().sum::<usize>(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_output_keeps_row_order_without_a_sort() {
    let session = Session::local();
    numbers(&session, 300);
    let factory = AddFactory::new(1000, Duration::from_millis(1));
    let f = session
        .register_model("plus_k", factory, pool(1, 3, 16))
        .unwrap();
    let df = session.sql("SELECT x FROM numbers").await.unwrap();
    let out = df
        .select(vec![col("x"), f.call(vec![col("x")]).alias("y")])
        .unwrap()
        .collect()
        .await
        .unwrap();
    let x = ints(&out, 0);
    let y = ints(&out, 1);
    assert!(x.iter().zip(&y).all(|(a, b)| a + 1000 == *b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chained_pools_each_run_with_their_own_batch_size_and_actors() {
    let session = Session::local();
    numbers(&session, 256);
    let (slow, fast) = slow_and_fast(&session, 4);
    let df = session
        .sql("SELECT x, fast(slow(x)) AS y FROM numbers ORDER BY x")
        .await
        .unwrap();
    let plan = df.clone().explain().await.unwrap();
    assert_eq!(plan.matches("MorselExec").count(), 2, "{plan}");
    let out = df.collect().await.unwrap();
    assert_eq!(ints(&out, 1), (11..267).collect::<Vec<_>>());
    assert!(slow.batch_rows.lock().unwrap().iter().all(|&r| r <= 8));
    let fast_rows = fast.batch_rows.lock().unwrap().clone();
    assert!(fast_rows.iter().all(|&r| r <= 32));
    assert!(fast_rows.len() < slow.batch_rows.lock().unwrap().len());
    let s = session.model_stats("slow").unwrap();
    assert_eq!(s.batches, 32);
    assert!(s.actors_peak <= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_analyze_reports_queue_depth_batch_latency_and_actors() {
    let session = Session::local();
    numbers(&session, 64);
    let factory = AddFactory::new(1, Duration::from_millis(5));
    session
        .register_model("plus_one", factory, pool(1, 2, 8))
        .unwrap();
    let df = session
        .sql("SELECT plus_one(x) FROM numbers")
        .await
        .unwrap();
    let text = df.explain_analyze().await.unwrap();
    for metric in [
        "model_batches=8",
        "model_batch_latency",
        "model_queue_depth_peak",
        "model_actors_peak",
    ] {
        assert!(text.contains(metric), "{metric} missing from:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_model_under_raise_fails_the_query_naming_the_model() {
    struct Broken;
    impl Model for Broken {
        fn process(&mut self, _inputs: &[ArrayRef]) -> Result<ArrayRef, ModelError> {
            Err("weights are corrupt".into())
        }
    }
    struct BrokenFactory;
    impl ModelFactory for BrokenFactory {
        fn output_type(&self) -> DataType {
            DataType::Int64
        }
        fn build(&self, _ctx: &ActorContext) -> Result<Box<dyn Model>, ModelError> {
            Ok(Box::new(Broken))
        }
    }
    let session = Session::local();
    numbers(&session, 10);
    session
        .register_model("broken", Arc::new(BrokenFactory), pool(1, 1, 4))
        .unwrap();
    let e = session
        .sql("SELECT broken(x) FROM numbers")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("model broken") && e.contains("weights are corrupt"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_model_is_a_plan_error_listing_the_known_ones() {
    let session = Session::local();
    let e = session
        .sql("SELECT embed_text('hello', 'no-such-model')")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no-such-model") && e.contains("all-MiniLM-L6-v2"),
        "{e}"
    );
}

fn captions(session: &Session) -> DataFrame {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("caption", DataType::Utf8, true),
    ]));
    let text = vec![
        Some("A red square on a white background."),
        Some("A dog runs across the park chasing a ball."),
        None,
        Some("Stock markets fell sharply on Monday."),
        Some("A kitten sleeps in a basket of yarn."),
    ];
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(0..5)),
            Arc::new(StringArray::from(text)),
        ],
    )
    .unwrap();
    session.from_batches(vec![batch]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_text_gives_unit_vectors_in_sql_and_dataframes_and_loads_the_model_once() {
    minilm_dir();
    let session = Session::local();
    session
        .register_dataframe("captions", captions(&session))
        .unwrap();
    let sql = session
        .sql("SELECT id, embed_text(caption, 'all-MiniLM-L6-v2') AS v FROM captions ORDER BY id")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let df = captions(&session)
        .with_column("v", col("caption").embed_text("minilm"))
        .unwrap()
        .sort(vec![col("id").sort(true, false)])
        .unwrap()
        .collect()
        .await
        .unwrap();
    let a = concat(&sql);
    let b = concat(&df);
    let va = a.column(1).as_fixed_size_list();
    let vb = b.column(2).as_fixed_size_list();
    assert_eq!(va.value_length(), 384);
    assert!(va.is_null(2), "null text gives a null embedding");
    for row in [0, 1, 3, 4] {
        let x = va.value(row);
        let x = x.as_primitive::<Float32Type>().values();
        let y = vb.value(row);
        let y = y.as_primitive::<Float32Type>().values();
        let norm: f32 = x.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
        assert!(x.iter().zip(y).all(|(p, q)| (p - q).abs() < 1e-5));
    }
    let stats = session.model_stats("all-MiniLM-L6-v2").unwrap();
    assert_eq!(stats.builds, 1, "two queries, one model load");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nearest_text_finds_the_caption_that_means_the_same() {
    minilm_dir();
    let session = Session::local();
    let (_tmp, dir) = regatta_tests::temp_dir();
    let path = dir.join("captions.lance");
    let path = path.to_str().unwrap();
    captions(&session)
        .filter(col("caption").is_not_null())
        .unwrap()
        .with_column("embedding", col("caption").embed_text("all-MiniLM-L6-v2"))
        .unwrap()
        .write_lance(path)
        .await
        .unwrap();
    let hits = session
        .nearest_text(
            path,
            "embedding",
            "a puppy playing with a ball outside",
            "all-MiniLM-L6-v2",
            2,
        )
        .await
        .unwrap();
    assert_eq!(hits.num_rows(), 2);
    let ids = hits
        .column_by_name("id")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(ids.value(0), 1, "the dog caption is nearest");
    let d = hits
        .column_by_name("_distance")
        .unwrap()
        .as_primitive::<Float32Type>();
    assert!(d.value(0) <= d.value(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_finishes_when_its_model_panics_once() {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    struct Fragile;
    impl Model for Fragile {
        fn process(&mut self, inputs: &[ArrayRef]) -> Result<ArrayRef, ModelError> {
            if CALLS.fetch_add(1, Ordering::SeqCst) == 3 {
                panic!("out of device memory");
            }
            let x = inputs[0].as_primitive::<Int64Type>();
            Ok(Arc::new(x.unary::<_, Int64Type>(|v| v + 1)))
        }
    }
    struct FragileFactory(AtomicUsize);
    impl ModelFactory for FragileFactory {
        fn output_type(&self) -> DataType {
            DataType::Int64
        }
        fn build(&self, _ctx: &ActorContext) -> Result<Box<dyn Model>, ModelError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Box::new(Fragile))
        }
    }
    let session = Session::local();
    numbers(&session, 80);
    let factory = Arc::new(FragileFactory(AtomicUsize::new(0)));
    session
        .register_model("fragile", factory.clone(), pool(1, 1, 8))
        .unwrap();
    let out = session
        .sql("SELECT x, fragile(x) AS y FROM numbers ORDER BY x")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(ints(&out, 1), (1..=80).collect::<Vec<_>>());
    assert_eq!(
        factory.0.load(Ordering::SeqCst),
        2,
        "a fresh actor replaced the panicked one"
    );
    assert_eq!(session.model_stats("fragile").unwrap().replaced_actors, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_models_side_by_side_get_an_operator_and_a_batch_size_each() {
    let session = Session::local();
    numbers(&session, 256);
    let (slow, fast) = slow_and_fast(&session, 3);
    let df = session
        .sql("SELECT x, slow(x) AS a, fast(x) AS b FROM numbers ORDER BY x")
        .await
        .unwrap();
    let plan = df.clone().explain().await.unwrap();
    assert_eq!(plan.matches("MorselExec").count(), 2, "{plan}");
    let out = df.collect().await.unwrap();
    assert_eq!(ints(&out, 1), (1..257).collect::<Vec<_>>());
    assert_eq!(ints(&out, 2), (10..266).collect::<Vec<_>>());
    assert!(slow.batch_rows.lock().unwrap().iter().all(|&r| r <= 8));
    let fast_rows = fast.batch_rows.lock().unwrap().clone();
    assert!(
        fast_rows.iter().any(|&r| r > 8),
        "the fast model is fed its own batch size, not the slow one's: {fast_rows:?}"
    );
}
