//! The reference of every cluster-file key, rendered as `docs/config.md`.
//!
//! The defaults come from the config types themselves; a test checks that every
//! key they have is documented here, that every key here is accepted, and that
//! `docs/config.md` is this text.

use crate::ClusterConfig;

/// One key of the cluster file.
#[derive(Debug, Clone, Copy)]
pub struct KeyDoc {
    /// `section.key`.
    pub key: &'static str,
    /// What a value looks like.
    pub kind: &'static str,
    /// A value the parser accepts, for the key's own test.
    pub example: &'static str,
    /// The environment variable that replaces it, if any.
    pub env: Option<&'static str>,
    pub doc: &'static str,
}

/// Every key, in the order the reference lists them.
pub const KEYS: &[KeyDoc] = &[
    KeyDoc {
        key: "cluster.token",
        kind: "string",
        example: "\"s3cret\"",
        env: Some("REGATTA_TOKEN"),
        doc: "The secret every client, worker and driver presents (gRPC metadata \
              `authorization: Bearer ...`). Required when the driver binds beyond loopback.",
    },
    KeyDoc {
        key: "cluster.tls_cert",
        kind: "path",
        example: "\"/etc/regatta/node.pem\"",
        env: None,
        doc: "PEM certificate every driver and worker serves gRPC and Arrow Flight with \
              (its names must cover the addresses clients dial). Set all three TLS keys \
              or none; without them connections are plain HTTP/2.",
    },
    KeyDoc {
        key: "cluster.tls_key",
        kind: "path",
        example: "\"/etc/regatta/node.key\"",
        env: None,
        doc: "The PEM private key of `cluster.tls_cert`.",
    },
    KeyDoc {
        key: "cluster.tls_ca",
        kind: "path",
        example: "\"/etc/regatta/ca.pem\"",
        env: Some("REGATTA_TLS_CA (SDK clients)"),
        doc: "The PEM CA certificate clients, workers and the driver trust when they \
              connect.",
    },
    KeyDoc {
        key: "cluster.id",
        kind: "string (letters, digits, `-_.`)",
        example: "\"prod-eu\"",
        env: None,
        doc: "The cluster's name. A driver replica whose peers have another id is \
              refused at start and does not join; job outputs are tagged with it.",
    },
    KeyDoc {
        key: "driver.addresses",
        kind: "list of host:port",
        example: "[\"10.0.0.1:7700\"]",
        env: Some("REGATTA_DRIVER (one address)"),
        doc: "Where clients and workers reach the driver (every replica once drivers \
              are replicated).",
    },
    KeyDoc {
        key: "driver.bind",
        kind: "host:port",
        example: "\"127.0.0.1:7701\"",
        env: None,
        doc: "The address the driver listens on (`regatta driver --bind` overrides it).",
    },
    KeyDoc {
        key: "driver.heartbeat_interval_ms",
        kind: "integer ≥ 1",
        example: "250",
        env: None,
        doc: "How often workers report in.",
    },
    KeyDoc {
        key: "driver.worker_timeout_ms",
        kind: "integer > heartbeat_interval_ms",
        example: "5000",
        env: None,
        doc: "Silence after which a worker is declared lost: its running tasks run \
              again elsewhere and the shuffle outputs it held that are still needed are \
              recomputed. A worker whose connection drops is declared lost at once.",
    },
    KeyDoc {
        key: "driver.max_task_failures",
        kind: "integer ≥ 1",
        example: "2",
        env: None,
        doc: "Attempts a task may fail before its job fails; the error names the task, \
              its input files, the worker and the cause. A worker lost while running a \
              task counts as an attempt (the input may be what killed it); plan, data \
              and user-function errors fail the job at once, without retries.",
    },
    KeyDoc {
        key: "driver.task_timeout_secs",
        kind: "integer ≥ 0 (seconds)",
        example: "600",
        env: None,
        doc: "How long one task attempt may run before its worker ends it (a decoder \
              stuck on a hostile file); the attempt fails as timed out and counts \
              toward `driver.max_task_failures`. 0: no limit.",
    },
    KeyDoc {
        key: "driver.dashboard_bind",
        kind: "host:port, or empty",
        example: "\"127.0.0.1:8265\"",
        env: None,
        doc: "Where the driver serves its web dashboard (`/`) and its Prometheus \
              endpoint (`/metrics`); empty turns both off. On loopback by default; \
              beyond loopback it needs `cluster.token`, and every request must then \
              carry it (`authorization: Bearer …`, or once as `?token=…`, which sets \
              a cookie). It serves over TLS when the cluster does. The default port \
              falls back to a free one when 8265 is taken (the driver prints the URL); \
              a port set here must be free. See docs/dashboard.md.",
    },
    KeyDoc {
        key: "driver.history_jobs",
        kind: "integer ≥ 1",
        example: "100",
        env: None,
        doc: "Finished jobs kept (in the replicated state, so across restarts and \
              leader changes) for `regatta jobs` and the dashboard; older finished \
              jobs whose results are gone are forgotten first.",
    },
    KeyDoc {
        key: "driver.result_retention_secs",
        kind: "integer ≥ 1 (seconds)",
        example: "600",
        env: None,
        doc: "How long a finished job's result rows stay on the workers that made \
              them, for clients to read over Arrow Flight (`regatta jobs results`, \
              `DataFrame::collect`/`stream`). The rows never pass through the driver. \
              The job's shuffle files are kept as long, so a result partition lost \
              with its worker is made again from lineage. `regatta jobs delete` \
              drops them sooner.",
    },
    KeyDoc {
        key: "driver.task_memory",
        kind: "size (`64MiB`, `1GiB`, ...)",
        example: "\"128MiB\"",
        env: None,
        doc: "Memory one task reserves on its worker when placed. A worker with less \
              memory than this runs one task at a time.",
    },
    KeyDoc {
        key: "driver.data_dir",
        kind: "path",
        example: "\"/var/lib/regatta\"",
        env: None,
        doc: "Where replicated drivers keep their Raft log and snapshots, each under \
              `node-N` (`regatta driver --data-dir` overrides it). Required when \
              `driver.addresses` lists more than one replica; a lone driver keeps its \
              state in memory unless this is set.",
    },
    KeyDoc {
        key: "driver.raft_heartbeat_ms",
        kind: "integer ≥ 1",
        example: "50",
        env: None,
        doc: "How often the leading driver replica heartbeats its peers. A leader that \
              dies is replaced after 5 to 10 heartbeats without it.",
    },
    KeyDoc {
        key: "worker.bind",
        kind: "host:port",
        example: "\"127.0.0.1:7800\"",
        env: None,
        doc: "Where the worker's shuffle (Arrow Flight) server listens; port 0 picks a \
              free one (`regatta worker --bind` overrides it).",
    },
    KeyDoc {
        key: "worker.cpus",
        kind: "integer",
        example: "8",
        env: None,
        doc: "Cores the worker offers and uses; 0 means all of the machine's.",
    },
    KeyDoc {
        key: "worker.memory_limit",
        kind: "size",
        example: "\"16GiB\"",
        env: None,
        doc: "The worker's memory budget: task placement counts against it, and \
              operators that can spill (sorts, aggregates, joins) spill rather than \
              exceed it.",
    },
    KeyDoc {
        key: "worker.spill_dirs",
        kind: "list of paths",
        example: "[\"/mnt/ssd/regatta\"]",
        env: None,
        doc: "Where each worker makes a directory of its own, `worker-<random>` with \
              mode 0700, for its shuffle files (`<first>/worker-*/shuffle/<job>/<stage>/\
              part-N/`) and operator spills (`<each>/worker-*/operators`). Shuffle files \
              go when their job ends or is cancelled, the directory when the worker \
              stops; a killed worker's is removed by the next one to start there (only \
              directories of this user that no live worker holds). `regatta worker \
              --spill-dir` overrides the list.",
    },
    KeyDoc {
        key: "worker.gpus",
        kind: "integer",
        example: "2",
        env: None,
        doc: "GPUs offered to model actors; unset means what NVML finds. GPUs declared on \
              a machine without any are fake: use them to test placement.",
    },
    KeyDoc {
        key: "worker.driver_patience_secs",
        kind: "integer ≥ 1 (seconds)",
        example: "60",
        env: None,
        doc: "How long a worker that lost its leading driver keeps looking for a \
              leader (every replica restarting, a network cut) before it ends. It keeps \
              its running tasks and shuffle files meanwhile, and hands them to the new \
              leader. At start-up a worker waits 10 s for a driver.",
    },
    KeyDoc {
        key: "worker.metrics_bind",
        kind: "host:port, or empty",
        example: "\"127.0.0.1:9100\"",
        env: None,
        doc: "Where the worker serves its Prometheus endpoint (`/metrics`); port 0 \
              picks a free one (the driver's dashboard links to it), empty turns it \
              off. Beyond loopback it needs `cluster.token`, which every scrape must \
              then carry (`authorization: Bearer …`).",
    },
    KeyDoc {
        key: "storage.endpoint",
        kind: "http(s) URL",
        example: "\"http://127.0.0.1:9000\"",
        env: Some("AWS_ENDPOINT_URL"),
        doc: "An S3-compatible server for `s3://` URLs (MinIO, RustFS, s3s-fs, Ceph…), \
              addressed path-style; plain `http://` is allowed for it. Unset: Amazon S3, or \
              `AWS_ENDPOINT_URL`, or the profile's `endpoint_url`. Every process reads it \
              from its own cluster file: the driver to list inputs and commit outputs, \
              the workers to read and write.",
    },
    KeyDoc {
        key: "storage.region",
        kind: "string",
        example: "\"eu-west-1\"",
        env: Some("AWS_REGION"),
        doc: "The S3 region. Unset: `AWS_REGION`, the profile's region, else `us-east-1`.",
    },
    KeyDoc {
        key: "storage.anonymous",
        kind: "true or false",
        example: "true",
        env: None,
        doc: "Unsigned requests, for public buckets (no credentials looked up).",
    },
    KeyDoc {
        key: "storage.profile",
        kind: "string",
        example: "\"analytics\"",
        env: Some("AWS_PROFILE"),
        doc: "The profile whose keys (`~/.aws/credentials`, or `AWS_SHARED_CREDENTIALS_FILE`) \
              and region and endpoint (`~/.aws/config`, or `AWS_CONFIG_FILE`) are used when \
              `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` are not set. Credentials never go \
              in this file, in plans sent to workers, in job listings or in errors.",
    },
    KeyDoc {
        key: "storage.max_retries",
        kind: "integer ≥ 0",
        example: "5",
        env: None,
        doc: "Retries of a failed object-store request (connection errors, 5xx, throttling), \
              with exponential backoff, within 30 s; then the error names the URL and what \
              to check.",
    },
    KeyDoc {
        key: "storage.request_timeout_secs",
        kind: "integer ≥ 1 (seconds)",
        example: "120",
        env: None,
        doc: "Time one object-store request may take.",
    },
    KeyDoc {
        key: "storage.buckets",
        kind: "table: bucket → {endpoint, region, anonymous, profile}",
        example: "{ public-data = { anonymous = true, region = \"us-west-2\" } }",
        env: None,
        doc: "Per-bucket overrides of the keys above, e.g. a public bucket on AWS beside a \
              private one on a local server.",
    },
    KeyDoc {
        key: "models.NAME",
        kind: "table: {dir, kind, batch_size, precision}",
        example: "{ dir = \"/models/bge-small-en-v1.5\", kind = \"embedding\", batch_size = 32, precision = \"int8\" }",
        env: None,
        doc: "A model queries call by NAME (`embed_text(text, 'NAME')`): its directory on \
              every node (the Hugging Face layout, or CTranslate2's `model.bin` for \
              Whisper), its kind (`embedding`, `whisper`, `efficientnet`, `mtcnn`; read \
              from its files when unset), rows per call, and for embedding and Whisper \
              models the precision of the dense layers on the CPU (`f32`, the default, \
              or `int8`: dynamic quantisation, fastest on CPUs with AVX-512 VNNI). \
              Names resolve here first, \
              then to the built-in models' `REGATTA_*_DIR`, then to the user cache \
              (`$REGATTA_HOME/models`, which `regatta models pull` fills); a path works \
              in place of a name. See docs/models.md.",
    },
    KeyDoc {
        key: "access.schemes",
        kind: "list of `http`, `https`, `s3`, `gs`, `az`, `file`",
        example: "[\"https\", \"s3\"]",
        env: None,
        doc: "The URL schemes jobs may read from: what `url_download` fetches, what \
              `read_*` and `video_frames` list. `file` covers plain paths too. The \
              driver sends the whole `[access]` section to every worker when it \
              registers; workers need no copy. See docs/security.md.",
    },
    KeyDoc {
        key: "access.private_networks",
        kind: "bool",
        example: "true",
        env: None,
        doc: "Whether downloads may reach loopback, private (RFC 1918, `fc00::/7`), \
              link-local (the cloud metadata address `169.254.169.254`), carrier-grade \
              NAT and unspecified addresses. Checked on the addresses a name resolves \
              to and again on every redirect; a refused URL is a row error (class \
              `access`). Local sessions allow them.",
    },
    KeyDoc {
        key: "access.allow_networks",
        kind: "list of CIDR networks",
        example: "[\"10.1.0.0/16\", \"127.0.0.0/8\"]",
        env: Some("REGATTA_ACCESS_ALLOW_NETWORKS (comma-separated, added to the list)"),
        doc: "Networks downloads may reach even when `private_networks` is false: an \
              internal image server, a test server on loopback.",
    },
    KeyDoc {
        key: "access.max_download_bytes",
        kind: "size",
        example: "\"256MiB\"",
        env: None,
        doc: "The most bytes one download (`url_download` row) may return; a larger \
              body is stopped at the cap, even one that hides its length, and the row \
              fails with class `access`.",
    },
    KeyDoc {
        key: "access.local_roots",
        kind: "list of absolute paths",
        example: "[\"/data\", \"/mnt/shared\"]",
        env: Some("REGATTA_ACCESS_LOCAL_ROOTS (colon-separated, added to the list)"),
        doc: "The directories local paths (plain, `file://`, globs, directories) must \
              resolve under, symbolic links followed; the default, empty, lets jobs \
              on the cluster read no local file. `/proc`, `/sys` and `/dev` are \
              refused even under a listed root. Checked at planning for every file a \
              plan scans and on the worker for every file a row names.",
    },
    KeyDoc {
        key: "security.require_tls",
        kind: "bool",
        example: "true",
        env: None,
        doc: "Refuse to start a driver or worker that binds or dials beyond loopback \
              without `cluster.tls_*`. Without it such a process starts with a warning: \
              the token and the rows would cross the network in clear text.",
    },
    KeyDoc {
        key: "security.verify_worker_certs",
        kind: "bool",
        example: "true",
        env: None,
        doc: "Mutual TLS for workers: the driver asks every connection for a \
              certificate signed by `cluster.tls_ca` (clients without one still \
              connect) and refuses to register a worker whose certificate does not \
              name the host of the address it registers (an IP or DNS subject \
              alternative name), so a stolen token alone cannot join a worker, nor one \
              node's key serve as another node. Each node names its own \
              `cluster.tls_cert`. Needs `cluster.tls_*`.",
    },
    KeyDoc {
        key: "ray.address",
        kind: "URL",
        example: "\"http://127.0.0.1:8265\"",
        env: Some("REGATTA_RAY_ADDRESS"),
        doc: "An existing Ray cluster's dashboard. When set, `regatta driver` launches its \
              workers there (one per Ray node) through Ray's Jobs REST API instead of \
              waiting for self-hosted ones (`regatta driver --ray URL` sets it).",
    },
    KeyDoc {
        key: "ray.token",
        kind: "string",
        example: "\"0123abcd\"",
        env: Some("REGATTA_RAY_TOKEN, else RAY_AUTH_TOKEN"),
        doc: "Ray's auth token (clusters started with `RAY_AUTH_MODE=token`), sent as \
              `Authorization: Bearer`. A wrong one fails at start with Ray's 401/403.",
    },
    KeyDoc {
        key: "ray.launch",
        kind: "`bootstrap` or `job-per-node`",
        example: "\"job-per-node\"",
        env: None,
        doc: "`bootstrap`: one Ray job whose Python bootstrap places a worker actor on \
              every node and on nodes that join; one job to stop. `job-per-node`: one \
              Ray job per node running the worker binary, no Python of ours; the driver \
              polls Ray's nodes for joins.",
    },
    KeyDoc {
        key: "ray.worker_cpus",
        kind: "number > 0",
        example: "4",
        env: None,
        doc: "CPUs each worker reserves through Ray; unset reserves all of its node's \
              CPUs (other Ray work cannot then oversubscribe them).",
    },
    KeyDoc {
        key: "ray.worker_gpus",
        kind: "number ≥ 0",
        example: "1",
        env: None,
        doc: "GPUs each worker reserves through Ray, which sets its \
              `CUDA_VISIBLE_DEVICES`; unset reserves all of its node's. A request no \
              node can hold fails at start, naming the nodes.",
    },
    KeyDoc {
        key: "ray.worker_memory",
        kind: "size",
        example: "\"8GiB\"",
        env: None,
        doc: "Memory each worker reserves through Ray (Ray's `memory` resource); empty \
              reserves none.",
    },
    KeyDoc {
        key: "ray.python",
        kind: "command",
        example: "\"/opt/ray/bin/python\"",
        env: None,
        doc: "The Python on the Ray nodes that has `ray` installed; it runs the \
              bootstrap (launch = bootstrap).",
    },
    KeyDoc {
        key: "ray.startup_timeout_s",
        kind: "integer ≥ 1",
        example: "120",
        env: None,
        doc: "How long the driver waits for a worker on every Ray node before it stops \
              its Ray jobs and fails, naming the nodes still missing and Ray's job \
              status.",
    },
    KeyDoc {
        key: "ray.control_host",
        kind: "host",
        example: "\"10.0.0.5\"",
        env: None,
        doc: "The host Ray nodes reach the driver at; empty takes the driver's bind \
              host. Bind the driver beyond loopback (with a token) for remote nodes.",
    },
];

/// The default of `key` as TOML text, or `None` when it has none (unset).
fn default_of(defaults: &toml::Table, key: &str) -> Option<String> {
    let (section, name) = key.split_once('.')?;
    let v = defaults.get(section)?.as_table()?.get(name)?;
    let text = v.to_string();
    // The spill directory default is under the machine's temp dir.
    let tmp = std::env::temp_dir().display().to_string();
    Some(text.replace(&tmp, "$TMPDIR"))
}

/// Every key the config types have, as `section.key`, from their defaults.
pub fn keys_with_defaults() -> Vec<String> {
    let Ok(defaults) = toml::Table::try_from(ClusterConfig::default()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (section, v) in &defaults {
        if let Some(t) = v.as_table() {
            out.extend(t.keys().map(|k| format!("{section}.{k}")));
        }
    }
    out
}

/// `docs/config.md`.
pub fn reference_markdown() -> String {
    let defaults = toml::Table::try_from(ClusterConfig::default()).unwrap_or_default();
    let mut s = String::from(
        "# Cluster configuration\n\n\
         <!-- Generated from cluster-config/src/reference.rs and the config types' \
         defaults; `REGATTA_BLESS=1 cargo test -p regatta-cluster-config` rewrites it, \
         and the same test fails when it is out of date. -->\n\n\
         One TOML file describes a cluster; `regatta driver -c FILE` and `regatta worker \
         -c FILE` read it, and every key is optional. An unknown key or a bad value is \
         refused with the file, the key, the value and what is allowed.\n\n\
         ```toml\n[cluster]\ntoken = \"s3cret\"\n\n[driver]\naddresses = [\"10.0.0.1:7700\"]\n\
         bind = \"0.0.0.0:7700\"\n\n[worker]\nmemory_limit = \"16GiB\"\nspill_dirs = \
         [\"/mnt/ssd/regatta\"]\n```\n\n\
         | key | value | default | environment | meaning |\n|---|---|---|---|---|\n",
    );
    for k in KEYS {
        let default = default_of(&defaults, k.key)
            .map(|d| format!("`{d}`"))
            .unwrap_or_else(|| "unset".into());
        let env = k.env.map(|e| format!("`{e}`")).unwrap_or_default();
        s.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            k.key, k.kind, default, env, k.doc
        ));
    }
    s
}
