#!/usr/bin/env bash
# DataFusion settings side by side on one release build (issue 32): runs one
# workload of regatta-bench under each named variant of DATAFUSION_* variables,
# round-robin (variant after variant, ROUNDS times, after one warm-up each), so
# the machine's drift falls on every variant alike; prints each variant's median
# seconds and its ratio to the first. Then quote the chosen one against Daft with
# ratio.py.
#
#   cargo build --release -p regatta-bench
#   WORKLOAD=tpch_q3 ROUNDS=7 bash benches/plan_settings.sh
#
# Variants are lines of VARIANTS: a name, then VAR=VALUE words (none: as built).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
DATA="${DATA:-/tmp/regatta-bench-data}"
WORKLOAD="${WORKLOAD:-tpch_q3}"
ROUNDS="${ROUNDS:-7}"
BIN="${BIN:-${CARGO_TARGET_DIR:-target}/release/regatta-bench}"
[[ -x "$BIN" ]] || { echo "plan_settings: $BIN missing; run cargo build --release -p regatta-bench" >&2; exit 1; }
VARIANTS="${VARIANTS:-as-built
collect-left DATAFUSION_OPTIMIZER_REPARTITION_JOINS=false
row-filters DATAFUSION_EXECUTION_PARQUET_PUSHDOWN_FILTERS=true
row-filters-reordered DATAFUSION_EXECUTION_PARQUET_PUSHDOWN_FILTERS=true DATAFUSION_EXECUTION_PARQUET_REORDER_FILTERS=true
collect-left+row-filters DATAFUSION_OPTIMIZER_REPARTITION_JOINS=false DATAFUSION_EXECUTION_PARQUET_PUSHDOWN_FILTERS=true}"
mapfile -t lines <<<"$VARIANTS"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
run() { # variant line, round (0: warm-up)
  local words=($1)
  local json
  json="$(env "${words[@]:1}" "$BIN" --workload "$WORKLOAD" --data "$DATA" --runner native | tail -1)"
  [[ "$2" == 0 ]] || echo "${words[0]} $json" >>"$out"
}
for l in "${lines[@]}"; do run "$l" 0; done
for ((r = 1; r <= ROUNDS; r++)); do
  for l in "${lines[@]}"; do run "$l" "$r"; done
done
python3 - "$out" "$WORKLOAD" "$ROUNDS" <<'EOF'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, js = line.split(" ", 1)
    r = json.loads(js)
    runs.setdefault(name, []).append((r["seconds"], r.get("peak_rss_mb", 0), r.get("rows_out")))
first = None
print(f"{sys.argv[2]}, {sys.argv[3]} rounds: median seconds per variant (ratio to the first)")
for name, rs in runs.items():
    med = statistics.median(s for s, _, _ in rs)
    rss = statistics.median(m for _, m, _ in rs)
    first = first or med
    rows = {n for _, _, n in rs}
    print(f"{name:28} {med:8.3f} s  {med / first:6.3f}  rss {rss:7.1f} MB  rows {sorted(rows)}")
EOF
