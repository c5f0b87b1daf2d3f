//! Multimodal work on a real driver and three worker processes: W1's image
//! pipeline, and the real embedding model, loaded once per worker.

// Test scaffolding: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{cluster, images, local_csv, ok, regatta, W1};

#[test]
fn w1_on_the_cluster_gives_the_local_engines_labels() {
    let d = tempfile::tempdir().unwrap();
    let tables = vec![images(d.path(), 30)];
    let local = local_csv(&tables, W1);
    // Two of every three images are big enough; broken and missing ones drop out.
    assert_eq!(local.lines().count(), 1 + 20, "{local}");
    let c = cluster(&d.path().join("spill"));
    assert_eq!(c.csv(&tables, W1), local);
    // The three files were dealt out over the cluster's six cores: a spread stage
    // (3 tasks), six tasks of image work, one that merges them in order.
    let j = c.job(1);
    assert!(j.line.contains("tasks 10/10 stages 3/3"), "{}", j.line);
}

#[test]
fn the_embedding_model_is_loaded_once_per_worker_and_agrees_with_local() {
    let d = tempfile::tempdir().unwrap();
    let texts = [
        "a small sailing boat at sunset",
        "a golden retriever puppy on the grass",
        "a bowl of ramen noodles",
        "the stock market fell sharply today",
        "a red vintage car next to a quiet lake",
        "how to bake sourdough bread",
    ];
    let texts: Vec<String> = (0..60)
        .map(|i| format!("{} number {i}", texts[i % texts.len()]))
        .collect();
    let docs = common::docs_table(d.path(), &texts, 3);
    let sql = common::EMBED_SQL;
    let local = ok(regatta().args(["sql", "-f", "json", "-t", &docs, sql]));
    let c = cluster(&d.path().join("spill"));
    for run in 0..2 {
        let remote = ok(c.cli().args(["submit", "-f", "json", "-t", &docs, sql]));
        common::assert_same_embeddings(&local, &remote, 60, &format!("run {run}, "));
        // Every worker that embedded anything loaded the model once, for both jobs
        // (as its next heartbeat says).
        std::thread::sleep(std::time::Duration::from_millis(700));
        let workers = c.workers();
        let loaded: Vec<u64> = workers.iter().map(|w| w.models_loaded).collect();
        assert!(loaded.iter().all(|&n| n <= 1), "{workers:?}");
        assert!(
            loaded.iter().filter(|&&n| n == 1).count() >= 2,
            "the work was not spread: {workers:?}"
        );
    }
}
