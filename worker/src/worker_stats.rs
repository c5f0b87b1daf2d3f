//! [`WorkerStats`]: what a worker did and holds, for its heartbeat (the
//! driver's dashboard) and its Prometheus endpoint.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use regatta_actors::ActorRuntime;
use regatta_common::prometheus::{EncodeLabelSet, Exposition, LabelText};
use regatta_engine::Engine;
use regatta_proto::{PoolStats, TaskReport, WorkerUsage};

/// Counters and the live parts they are read with; cheap to share.
pub struct WorkerStats {
    pub running: Arc<AtomicU32>,
    succeeded: AtomicU64,
    failed: AtomicU64,
    task_nanos: AtomicU64,
    rows_written: AtomicU64,
    shuffle_written: AtomicU64,
    spilled: AtomicU64,
    served: Arc<AtomicU64>,
    engine: Engine,
    actors: Arc<ActorRuntime>,
    memory_limit: u64,
}

impl WorkerStats {
    pub fn new(
        engine: Engine,
        actors: Arc<ActorRuntime>,
        served: Arc<AtomicU64>,
        memory_limit: u64,
    ) -> Self {
        Self {
            running: Arc::default(),
            succeeded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            task_nanos: AtomicU64::new(0),
            rows_written: AtomicU64::new(0),
            shuffle_written: AtomicU64::new(0),
            spilled: AtomicU64::new(0),
            served,
            engine,
            actors,
            memory_limit,
        }
    }

    /// Counts a task's report.
    pub fn record(&self, report: &TaskReport) {
        if !report.ok {
            self.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.succeeded.fetch_add(1, Ordering::Relaxed);
        self.task_nanos
            .fetch_add(report.task_nanos, Ordering::Relaxed);
        let (rows, bytes) = report
            .outputs
            .iter()
            .fold((0, 0), |(r, b), o| (r + o.rows, b + o.bytes));
        self.rows_written.fetch_add(rows, Ordering::Relaxed);
        self.shuffle_written.fetch_add(bytes, Ordering::Relaxed);
        self.spilled
            .fetch_add(report.spilled_bytes, Ordering::Relaxed);
    }

    fn memory_used(&self) -> u64 {
        self.engine.context().runtime_env().memory_pool.reserved() as u64
    }

    /// What the heartbeat carries.
    pub fn usage(&self) -> WorkerUsage {
        WorkerUsage {
            memory_used_bytes: self.memory_used(),
            memory_limit_bytes: self.memory_limit,
            spilled_bytes: self.spilled.load(Ordering::Relaxed),
            shuffle_written_bytes: self.shuffle_written.load(Ordering::Relaxed),
            shuffle_served_bytes: self.served.load(Ordering::Relaxed),
            pools: self
                .actors
                .pool_stats()
                .into_iter()
                .map(|(model, s)| PoolStats {
                    model,
                    actors: s.actors as u32,
                    queue_depth: s.queue_depth as u32,
                    batches: s.batches,
                    builds: s.builds,
                    batch_latency_ms: if s.batches == 0 {
                        0.0
                    } else {
                        s.busy_nanos as f64 / s.batches as f64 / 1e6
                    },
                })
                .collect(),
        }
    }

    /// `/metrics`, as OpenMetrics text.
    pub fn prometheus(&self) -> String {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        let mut p = Exposition::new();
        let tasks = p.counters::<OutcomeLabels>("regatta_tasks_total");
        for (outcome, n) in [("succeeded", &self.succeeded), ("failed", &self.failed)] {
            tasks
                .get_or_create(&OutcomeLabels { outcome })
                .inc_by(load(n));
        }
        p.counter("regatta_task_seconds_total", load(&self.task_nanos) / 1e9);
        p.gauge(
            "regatta_running_tasks",
            f64::from(self.running.load(Ordering::Relaxed)),
        );
        p.counter("regatta_rows_written_total", load(&self.rows_written));
        p.counter(
            "regatta_shuffle_written_bytes_total",
            load(&self.shuffle_written),
        );
        p.counter("regatta_shuffle_served_bytes_total", load(&self.served));
        p.counter("regatta_spilled_bytes_total", load(&self.spilled));
        p.gauge("regatta_memory_used_bytes", self.memory_used() as f64);
        p.gauge("regatta_memory_limit_bytes", self.memory_limit as f64);
        let pools = self.actors.pool_stats();
        type Pick = fn(&regatta_engine::functions::ModelPoolStats) -> f64;
        let gauges: [(&'static str, Pick); 2] = [
            ("regatta_model_actors", |s| s.actors as f64),
            ("regatta_model_queue_depth", |s| s.queue_depth as f64),
        ];
        for (name, pick) in gauges {
            let family = p.gauges::<ModelLabels>(name);
            for (model, s) in &pools {
                let labels = ModelLabels {
                    model: LabelText(model.clone()),
                };
                family.get_or_create(&labels).set(pick(s));
            }
        }
        let counters: [(&'static str, Pick); 3] = [
            ("regatta_model_batches_total", |s| s.batches as f64),
            ("regatta_model_builds_total", |s| s.builds as f64),
            ("regatta_model_busy_seconds_total", |s| {
                s.busy_nanos as f64 / 1e9
            }),
        ];
        for (name, pick) in counters {
            let family = p.counters::<ModelLabels>(name);
            for (model, s) in &pools {
                let labels = ModelLabels {
                    model: LabelText(model.clone()),
                };
                family.get_or_create(&labels).inc_by(pick(s));
            }
        }
        p.finish()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    /// succeeded or failed.
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: LabelText,
}
