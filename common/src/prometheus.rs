//! The catalogue of every metric regatta exports, and [`Exposition`], which
//! registers only catalogued families with `prometheus-client` and writes
//! them as OpenMetrics text, so `docs/metrics.md` (rendered from the
//! catalogue) lists exactly what scrapers see.

use std::fmt::Write;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
pub use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::{Metric, Registry};

/// Which process exports a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricSource {
    Driver,
    Worker,
}

/// Prometheus metric types regatta uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
}

impl MetricKind {
    fn word(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
        }
    }
}

/// One metric family.
#[derive(Debug, Clone, Copy)]
pub struct MetricDoc {
    pub name: &'static str,
    pub kind: MetricKind,
    pub source: MetricSource,
    /// Its labels, for the docs.
    pub labels: &'static str,
    pub help: &'static str,
}

use MetricKind::{Counter, Gauge};
use MetricSource::{Driver, Worker};

/// Every metric regatta exports. Names follow Prometheus conventions: a
/// `regatta_` prefix, base units (`_bytes`, `_seconds`), `_total` on counters.
pub const METRICS: &[MetricDoc] = &[
    MetricDoc {
        name: "regatta_driver_is_leader",
        kind: Gauge,
        source: Driver,
        labels: "",
        help: "1 when this driver replica leads (a lone driver always does).",
    },
    MetricDoc {
        name: "regatta_raft_term",
        kind: Gauge,
        source: Driver,
        labels: "",
        help: "The Raft term this replica is in (0 for a lone driver).",
    },
    MetricDoc {
        name: "regatta_raft_last_log_index",
        kind: Gauge,
        source: Driver,
        labels: "",
        help: "The last Raft log index this replica holds.",
    },
    MetricDoc {
        name: "regatta_raft_applied_index",
        kind: Gauge,
        source: Driver,
        labels: "",
        help: "The last Raft log index applied to this replica's state.",
    },
    MetricDoc {
        name: "regatta_jobs",
        kind: Gauge,
        source: Driver,
        labels: "status",
        help: "Jobs the driver knows, by status (running, succeeded, failed, cancelled).",
    },
    MetricDoc {
        name: "regatta_job_tasks",
        kind: Gauge,
        source: Driver,
        labels: "job, state",
        help: "A job's tasks by state (done, running, pending).",
    },
    MetricDoc {
        name: "regatta_job_rows_out_total",
        kind: Counter,
        source: Driver,
        labels: "job",
        help: "Rows a finished job produced.",
    },
    MetricDoc {
        name: "regatta_job_retried_tasks_total",
        kind: Counter,
        source: Driver,
        labels: "job",
        help: "Task attempts of a job that failed or were lost and ran again.",
    },
    MetricDoc {
        name: "regatta_job_shuffle_bytes_total",
        kind: Counter,
        source: Driver,
        labels: "job",
        help: "Bytes a job's tasks wrote to shuffle files.",
    },
    MetricDoc {
        name: "regatta_operator_rows_in_total",
        kind: Counter,
        source: Driver,
        labels: "job, stage, operator, name",
        help: "Rows an operator took in, over its stage's finished tasks.",
    },
    MetricDoc {
        name: "regatta_operator_rows_out_total",
        kind: Counter,
        source: Driver,
        labels: "job, stage, operator, name",
        help: "Rows an operator gave out, over its stage's finished tasks.",
    },
    MetricDoc {
        name: "regatta_operator_compute_seconds_total",
        kind: Counter,
        source: Driver,
        labels: "job, stage, operator, name",
        help: "Time an operator spent computing.",
    },
    MetricDoc {
        name: "regatta_operator_backpressure_seconds_total",
        kind: Counter,
        source: Driver,
        labels: "job, stage, operator, name",
        help: "Time an operator's output waited for its consumer.",
    },
    MetricDoc {
        name: "regatta_workers",
        kind: Gauge,
        source: Driver,
        labels: "state",
        help: "Workers by state (alive, lost).",
    },
    MetricDoc {
        name: "regatta_worker_cpus",
        kind: Gauge,
        source: Driver,
        labels: "worker, use",
        help: "A worker's CPUs, total and leased to tasks.",
    },
    MetricDoc {
        name: "regatta_worker_gpus",
        kind: Gauge,
        source: Driver,
        labels: "worker, use",
        help: "A worker's GPUs, total and leased to tasks.",
    },
    MetricDoc {
        name: "regatta_worker_memory_bytes",
        kind: Gauge,
        source: Driver,
        labels: "worker, use",
        help: "A worker's memory: total, leased to tasks, and used by its memory pool.",
    },
    MetricDoc {
        name: "regatta_worker_running_tasks",
        kind: Gauge,
        source: Driver,
        labels: "worker",
        help: "Tasks running on a worker.",
    },
    MetricDoc {
        name: "regatta_worker_tasks_done_total",
        kind: Counter,
        source: Driver,
        labels: "worker",
        help: "Tasks a worker finished.",
    },
    MetricDoc {
        name: "regatta_tasks_total",
        kind: Counter,
        source: Worker,
        labels: "outcome",
        help: "Tasks this worker ran, by outcome (succeeded, failed).",
    },
    MetricDoc {
        name: "regatta_task_seconds_total",
        kind: Counter,
        source: Worker,
        labels: "",
        help: "Time this worker's finished tasks ran.",
    },
    MetricDoc {
        name: "regatta_running_tasks",
        kind: Gauge,
        source: Worker,
        labels: "",
        help: "Tasks running on this worker now.",
    },
    MetricDoc {
        name: "regatta_rows_written_total",
        kind: Counter,
        source: Worker,
        labels: "",
        help: "Rows this worker's tasks wrote (shuffle and result partitions).",
    },
    MetricDoc {
        name: "regatta_shuffle_written_bytes_total",
        kind: Counter,
        source: Worker,
        labels: "",
        help: "Bytes this worker's tasks wrote to shuffle and result files.",
    },
    MetricDoc {
        name: "regatta_shuffle_served_bytes_total",
        kind: Counter,
        source: Worker,
        labels: "",
        help: "Bytes this worker served to others over Arrow Flight.",
    },
    MetricDoc {
        name: "regatta_spilled_bytes_total",
        kind: Counter,
        source: Worker,
        labels: "",
        help: "Bytes this worker's operators spilled to disk.",
    },
    MetricDoc {
        name: "regatta_memory_used_bytes",
        kind: Gauge,
        source: Worker,
        labels: "",
        help: "Bytes this worker's memory pool holds for running operators.",
    },
    MetricDoc {
        name: "regatta_memory_limit_bytes",
        kind: Gauge,
        source: Worker,
        labels: "",
        help: "This worker's memory limit (worker.memory_limit).",
    },
    MetricDoc {
        name: "regatta_model_actors",
        kind: Gauge,
        source: Worker,
        labels: "model",
        help: "Model actors alive in a pool.",
    },
    MetricDoc {
        name: "regatta_model_queue_depth",
        kind: Gauge,
        source: Worker,
        labels: "model",
        help: "Batches waiting for an actor of a pool.",
    },
    MetricDoc {
        name: "regatta_model_batches_total",
        kind: Counter,
        source: Worker,
        labels: "model",
        help: "Batches a pool's actors answered.",
    },
    MetricDoc {
        name: "regatta_model_builds_total",
        kind: Counter,
        source: Worker,
        labels: "model",
        help: "Times a pool loaded its model.",
    },
    MetricDoc {
        name: "regatta_model_busy_seconds_total",
        kind: Counter,
        source: Worker,
        labels: "model",
        help: "Time a pool's actors spent on batches.",
    },
];

/// The content type of [`Exposition::finish`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One scrape's metrics: catalogued families (typed by `prometheus-client`:
/// their label sets are structs, their bounded label values enums) registered
/// and filled from the process's state, then encoded as OpenMetrics text.
#[derive(Default)]
pub struct Exposition {
    registry: Registry,
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the catalogued family `name` and returns it to fill. A name
    /// not in [`METRICS`] is a bug: the family is returned unregistered (and
    /// debug builds fail) so the docs never miss a metric.
    pub fn family<M: Metric + Clone>(&mut self, name: &'static str, family: M) -> M {
        let Some(doc) = METRICS.iter().find(|m| m.name == name) else {
            debug_assert!(false, "metric {name} is not in the catalogue");
            return family;
        };
        // prometheus-client adds a counter's `_total` to its samples itself.
        let base = match doc.kind {
            Counter => name.strip_suffix("_total").unwrap_or(name),
            Gauge => name,
        };
        // It also ends the help with a full stop.
        let help = doc.help.strip_suffix('.').unwrap_or(doc.help);
        self.registry.register(base, help, family.clone());
        family
    }

    /// A gauge family with labels `L`.
    pub fn gauges<L>(&mut self, name: &'static str) -> Family<L, GaugeF64>
    where
        L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
    {
        self.family(name, Family::default())
    }

    /// A counter family with labels `L`.
    pub fn counters<L>(&mut self, name: &'static str) -> Family<L, CounterF64>
    where
        L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
    {
        self.family(name, Family::default())
    }

    /// A gauge without labels.
    pub fn gauge(&mut self, name: &'static str, value: f64) {
        self.family(name, GaugeF64::default()).set(value);
    }

    /// A counter without labels, at `value`.
    pub fn counter(&mut self, name: &'static str, value: f64) {
        self.family(name, CounterF64::default()).inc_by(value);
    }

    /// The OpenMetrics text (ending in `# EOF`).
    pub fn finish(self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// A free-form label value (an operator's name, a job's id as text), escaped
/// as the text format requires: prometheus-client writes label values as given,
/// and one quote or line feed would make the whole scrape unreadable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LabelText(pub String);

impl EncodeLabelValue for LabelText {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder,
    ) -> std::fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// A gauge of any value (prometheus-client's default is an integer).
pub type GaugeF64 = prometheus_client::metrics::gauge::Gauge<f64, AtomicU64>;
/// A counter of any value (seconds as well as counts).
pub type CounterF64 = prometheus_client::metrics::counter::Counter<f64, AtomicU64>;

/// `docs/metrics.md`: every metric, by the process that exports it.
pub fn metrics_markdown() -> String {
    let mut s = String::from(
        "# Metrics\n\nGenerated from `common/src/prometheus.rs` (a test keeps it current: \
         `REGATTA_BLESS=1 cargo test -p regatta-common` rewrites it). The driver serves them \
         at `http://<driver.dashboard_bind>/metrics`, each worker at \
         `http://<worker.metrics_bind>/metrics`, in OpenMetrics text format. Beyond loopback \
         a scrape must carry the cluster token (`authorization: Bearer <token>`).\n",
    );
    for (source, title) in [(Driver, "Driver"), (Worker, "Worker")] {
        let _ = write!(
            s,
            "\n## {title}\n\n| name | type | labels | meaning |\n|---|---|---|---|\n"
        );
        for m in METRICS.iter().filter(|m| m.source == source) {
            let _ = writeln!(
                s,
                "| `{}` | {} | {} | {} |",
                m.name,
                m.kind.word(),
                m.labels,
                m.help
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Status {
        status: LabelText,
    }

    fn status(s: &str) -> Status {
        Status {
            status: LabelText(s.to_string()),
        }
    }

    #[test]
    fn families_get_help_and_type_once_and_labels_are_escaped() {
        let mut p = Exposition::new();
        let jobs = p.gauges::<Status>("regatta_jobs");
        jobs.get_or_create(&status("running")).set(2.0);
        jobs.get_or_create(&status("a\"b\\\nc")).set(0.5);
        p.gauge("regatta_raft_term", 7.0);
        p.counter("regatta_rows_written_total", 12.0);
        let t = p.finish();
        assert_eq!(t.matches("# TYPE regatta_jobs gauge").count(), 1, "{t}");
        assert!(t.contains("regatta_jobs{status=\"running\"} 2.0\n"), "{t}");
        assert!(t.contains(r#"regatta_jobs{status="a\"b\\\nc"} 0.5"#), "{t}");
        assert!(t.contains("regatta_raft_term 7.0\n"), "{t}");
        // A counter's family is named without `_total`, its samples with it.
        assert!(t.contains("# TYPE regatta_rows_written counter\n"), "{t}");
        assert!(t.contains("regatta_rows_written_total 12.0\n"), "{t}");
        assert!(!t.contains(".."), "a help text ends in two full stops: {t}");
        assert!(t.ends_with("# EOF\n"), "{t}");
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        for m in METRICS {
            assert!(m.name.starts_with("regatta_"), "{}", m.name);
            assert!(
                m.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                m.name
            );
            assert_eq!(m.kind == Counter, m.name.ends_with("_total"), "{}", m.name);
        }
    }

    #[test]
    fn docs_metrics_md_is_current() {
        let path = crate::manifest_dir!().join("../docs/metrics.md");
        let want = metrics_markdown();
        if std::env::var_os("REGATTA_BLESS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{} is out of date: run `REGATTA_BLESS=1 cargo test -p regatta-common`",
            path.display()
        );
    }
}
