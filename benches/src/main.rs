//! `regatta-bench --workload NAME --data DIR --runner native`: runs one workload of
//! `shared/bench/WORKLOADS.md` and prints one JSON line last, as `run_peer.sh` expects.

use clap::Parser;

mod embed_stub;
mod media;
mod vision;

// Image pipelines free many large buffers from many threads; glibc's per-thread
// arenas keep them resident. mimalloc returns them, keeping peak memory flat.
// `--features system-alloc` builds on the system allocator instead, for heap
// profilers (heaptrack) that see only malloc's calls.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
mod rss;
mod schedule;
mod workloads;

/// One benchmark run.
#[derive(Debug, Parser)]
#[command(name = "regatta-bench")]
struct Args {
    /// image | tpch_q1 | tpch_q3 | lance_take | embed_stub | documents | audio |
    /// classify | video (or w1, w3a, w3b, w4, w5, w6, w7, w8, w9),
    /// embed_minilm (the real embedding model) or schedule (the driver's throughput
    /// with no-op tasks).
    #[arg(long)]
    workload: String,
    /// The generated data (gen_data.py --out DIR).
    #[arg(long, default_value = "/tmp/regatta-bench-data")]
    data: String,
    /// `native` (the in-process engine) or `cluster` (a running regatta cluster,
    /// see `--driver`; W1, W3a and W3b).
    #[arg(long, default_value = "native")]
    runner: String,
    /// The driver for `--runner cluster` (`HOST:PORT` or `http://HOST:PORT`);
    /// default: `REGATTA_DRIVER`.
    #[arg(long)]
    driver: Option<String>,
    /// Where output directories are made (default: the system temp dir).
    #[arg(long)]
    out_root: Option<String>,
    /// Keep W1/W5 output directories instead of removing them.
    #[arg(long)]
    keep_output: bool,
    /// W1 only: write resumably (keyed on `id`) into this directory, which is
    /// kept; a second run into the same directory does only what is left (the
    /// cost of `--resume-key`, benches/RESULTS.md).
    #[arg(long)]
    resume_into: Option<String>,
    /// Documents embed_minilm embeds (the first ones by id).
    #[arg(long, default_value_t = 500)]
    docs: usize,
    /// Tasks of the `schedule` workload's no-op job.
    #[arg(long, default_value_t = 20_000)]
    tasks: u32,
    /// No-op workers of the `schedule` workload.
    #[arg(long, default_value_t = 4)]
    workers: u32,
    /// Driver replicas of the `schedule` workload (1: a lone driver; 3: Raft,
    /// each replica's log on disk under a temporary directory).
    #[arg(long, default_value_t = 1)]
    replicas: u64,
    /// The precision W6's embedding model and W7's Whisper run at on the CPU
    /// (`f32` or `int8`; the local runner only): against the peer's
    /// sentence-transformers and faster-whisper at the same `--compute-type`.
    #[arg(long, default_value = "f32")]
    precision: regatta_common::Precision,
    /// Accepted for command-line compatibility with the peer; unused.
    #[arg(long)]
    ray_address: Option<String>,
}

/// JSON with Python's `json.dumps` separators (`", "` and `": "`), as the peer prints
/// it and as `run_peer.sh` greps it.
fn python_style(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(python_style).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), python_style(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
        other => other.to_string(),
    }
}

fn main() {
    let args = Args::parse();
    // Diagnostics on stderr with RUST_LOG=...; quiet otherwise.
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("off"))
        .try_init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(32)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("regatta-bench: cannot start runtime: {e}");
            std::process::exit(1);
        }
    };
    match rt.block_on(workloads::run(&args)) {
        Ok(mut rec) => {
            rec["peak_rss_mb"] = serde_json::json!(rss::peak_rss_mb());
            rec["peak_rss_tree_mb"] = serde_json::json!(rss::peak_rss_mb());
            println!("{}", python_style(&rec));
        }
        Err(e) => {
            eprintln!("regatta-bench: {}: {e}", args.workload);
            std::process::exit(1);
        }
    }
}
