//! Engine-wide execution options.

/// How the engine sizes morsels and bounds its expensive operators.
///
/// Each expensive operator (downloads, image work, batch user functions) gets its own
/// concurrency and its own bound on what it holds in flight; these are the defaults
/// every such operator starts from.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Target size of one morsel in bytes, measured on an operator's output.
    /// Rows per morsel adapt to the observed bytes per row.
    pub morsel_bytes: usize,
    /// Hard cap on rows per morsel.
    pub max_morsel_rows: usize,
    /// Rows in the very first morsel of an operator, before any size is known.
    pub first_morsel_rows: usize,
    /// Morsels an I/O operator (one with `url_download`) works on at once.
    pub io_concurrency: usize,
    /// Morsels a CPU operator works on at once (defaults to the number of cores).
    pub cpu_concurrency: usize,
    /// Morsels an operator may hold per partition: being computed, finished but not
    /// yet taken by its consumer. A slow consumer stops the operator at this bound.
    pub max_in_flight_morsels: usize,
    /// Parallel requests per `url_download` operator.
    pub max_connections: usize,
    /// Partitions DataFusion plans with.
    pub target_partitions: usize,
    /// Rows per batch for DataFusion's own operators.
    pub batch_size: usize,
    /// Memory the spilling operators (sorts, aggregates, joins) may use together;
    /// beyond it they spill to `spill_dirs`. None: unbounded.
    pub memory_limit: Option<usize>,
    /// Where spilling operators write; empty: the OS temp directory.
    pub spill_dirs: Vec<std::path::PathBuf>,
    /// Lets the partitions of one file scan take each other's files. Off on cluster
    /// workers: there each task runs one partition alone and must read only its own
    /// files, or every task would read them all.
    pub scan_work_sharing: bool,
    /// What jobs may read (URL schemes, addresses, bytes per download, local
    /// directories). A local session reads as its user; a cluster's workers
    /// take the cluster's `[access]` from the driver.
    pub access: crate::access::AccessPolicy,
    /// DataFusion settings applied over DataFusion's defaults, in order, as
    /// (key, value): [`LOCAL_PLAN_SETTINGS`] by default, then any `DATAFUSION_*`
    /// variables [`EngineOptions::from_env`] reads (as datafusion-cli does), so
    /// a plan can be tuned without a rebuild.
    pub datafusion: Vec<(String, String)>,
}

/// DataFusion settings a local session plans with (benches/RESULTS.md, TPC-H
/// Q3 on a release build, side by side with `benches/plan_settings.sh`):
/// - row filters in the Parquet reader (late materialisation): the join's
///   dynamic filter then drops 99 % of Q3's lineitem rows while they are
///   decoded instead of after;
/// - a hash join whose build side is estimated under 64 MiB or 4 M rows
///   builds one table for every partition (CollectLeft) instead of hash
///   repartitioning both sides: Q3's 3.2 M probe rows are not moved.
///
/// Together Q3 took 0.73 of the time with DataFusion's defaults and Q1 the
/// same. A cluster's driver plans without them: its stages are cut at the
/// hash repartitions these would remove.
pub const LOCAL_PLAN_SETTINGS: [(&str, &str); 3] = [
    ("datafusion.execution.parquet.pushdown_filters", "true"),
    (
        "datafusion.optimizer.hash_join_single_partition_threshold",
        "67108864",
    ),
    (
        "datafusion.optimizer.hash_join_single_partition_threshold_rows",
        "4194304",
    ),
];

impl Default for EngineOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Self {
            morsel_bytes: 16 * 1024 * 1024,
            max_morsel_rows: 8192,
            first_morsel_rows: 16,
            io_concurrency: 4,
            cpu_concurrency: cores,
            max_in_flight_morsels: cores + 2,
            max_connections: 32,
            target_partitions: cores,
            batch_size: 8192,
            memory_limit: None,
            spill_dirs: Vec::new(),
            scan_work_sharing: true,
            access: crate::access::AccessPolicy::local(),
            datafusion: LOCAL_PLAN_SETTINGS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

impl EngineOptions {
    /// The defaults, with any `REGATTA_*` environment overrides applied:
    /// `REGATTA_MORSEL_BYTES`, `REGATTA_MAX_MORSEL_ROWS`, `REGATTA_IO_CONCURRENCY`,
    /// `REGATTA_CPU_CONCURRENCY`, `REGATTA_MAX_IN_FLIGHT_MORSELS`,
    /// `REGATTA_MAX_CONNECTIONS`, `REGATTA_TARGET_PARTITIONS`, `REGATTA_BATCH_SIZE`;
    /// and any DataFusion setting as its upper-case variable
    /// (`DATAFUSION_EXECUTION_PARQUET_PUSHDOWN_FILTERS=true`).
    pub fn from_env() -> crate::Result<Self> {
        let mut o = Self::default();
        let vars: [(&str, &mut usize); 8] = [
            ("REGATTA_MORSEL_BYTES", &mut o.morsel_bytes),
            ("REGATTA_MAX_MORSEL_ROWS", &mut o.max_morsel_rows),
            ("REGATTA_IO_CONCURRENCY", &mut o.io_concurrency),
            ("REGATTA_CPU_CONCURRENCY", &mut o.cpu_concurrency),
            (
                "REGATTA_MAX_IN_FLIGHT_MORSELS",
                &mut o.max_in_flight_morsels,
            ),
            ("REGATTA_MAX_CONNECTIONS", &mut o.max_connections),
            ("REGATTA_TARGET_PARTITIONS", &mut o.target_partitions),
            ("REGATTA_BATCH_SIZE", &mut o.batch_size),
        ];
        for (name, slot) in vars {
            if let Ok(v) = std::env::var(name) {
                *slot = v.trim().parse().map_err(|_| {
                    crate::EngineError::InvalidArgument(format!(
                        "environment variable {name}={v:?} must be a positive integer"
                    ))
                })?;
            }
        }
        o.datafusion.extend(datafusion_env());
        o.validate()?;
        Ok(o)
    }

    /// Checks the options for values that cannot work.
    pub fn validate(&self) -> crate::Result<()> {
        let positive = [
            ("morsel_bytes", self.morsel_bytes),
            ("max_morsel_rows", self.max_morsel_rows),
            ("first_morsel_rows", self.first_morsel_rows),
            ("io_concurrency", self.io_concurrency),
            ("cpu_concurrency", self.cpu_concurrency),
            ("max_in_flight_morsels", self.max_in_flight_morsels),
            ("max_connections", self.max_connections),
            ("target_partitions", self.target_partitions),
            ("batch_size", self.batch_size),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(crate::EngineError::InvalidArgument(format!(
                    "engine option {name} must be at least 1, got 0"
                )));
            }
        }
        let mut scratch = datafusion::config::ConfigOptions::new();
        for (key, value) in &self.datafusion {
            scratch.set(key, value).map_err(|e| {
                crate::EngineError::InvalidArgument(format!(
                    "DataFusion setting {key} = {value:?}: {e}"
                ))
            })?;
        }
        Ok(())
    }
}

/// The DataFusion settings named by `DATAFUSION_*` variables: each known key's
/// variable is the key upper-cased with dots as underscores, as datafusion-cli
/// reads them. Unknown variables are not settings and are left alone.
fn datafusion_env() -> Vec<(String, String)> {
    datafusion::config::ConfigOptions::new()
        .entries()
        .into_iter()
        .filter_map(|entry| {
            let var = entry.key.to_uppercase().replace('.', "_");
            std::env::var(&var).ok().map(|v| (entry.key, v))
        })
        .collect()
}
