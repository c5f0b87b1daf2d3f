#!/usr/bin/env bash
# A group-by over SF1 lineitem by l_orderkey on a driver and two workers with a
# 256 MiB memory limit each: it must finish by spilling and give the local engine's
# answer. Prints both answers and the job's line (with its spilled bytes).
#
#   bash benches/cluster_spill.sh            # LIMIT=256MiB DATA=/tmp/regatta-bench-data
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
source "$ROOT/scripts/env.sh"
CLI="${CLI:-${CARGO_TARGET_DIR:-$ROOT/target}/release/regatta}"
DATA="${DATA:-/tmp/regatta-bench-data}"
LIMIT="${LIMIT:-256MiB}"
OUT="$(mktemp -d /tmp/regatta-cluster-spill.XXXXXX)"
export REGATTA_TOKEN="spill-$RANDOM$RANDOM"
source "$HERE/cluster_lib.sh"
cleanup() { stop_cluster; rm -rf "$OUT"; }
trap cleanup EXIT

# Every order's lines with their text joined: more state than 256 MiB per worker.
SQL="SELECT count(*) AS orders, sum(lines) AS lines, sum(qty) AS qty, sum(length(notes)) AS note_bytes
FROM (SELECT l_orderkey, count(*) AS lines, sum(l_quantity) AS qty,
             string_agg(concat(l_comment, ' ', l_shipinstruct, ' ', l_shipmode, ' ', reverse(l_comment)), '|') AS notes
      FROM lineitem GROUP BY l_orderkey)"
T="lineitem=$DATA/tpch/lineitem.parquet"

start_cluster "$OUT" "$LIMIT"
echo "== local engine (no limit)"
"$CLI" sql -f csv -t "$T" "$SQL" | tee "$OUT/local.csv"
echo "== driver + 2 workers, $LIMIT each"
REGATTA_DRIVER="$DRIVER" "$CLI" submit -f csv -t "$T" "$SQL" | tee "$OUT/cluster.csv"
REGATTA_DRIVER="$DRIVER" "$CLI" jobs
if cmp -s "$OUT/local.csv" "$OUT/cluster.csv"; then echo "SAME ANSWER"; else echo "DIFFERENT ANSWERS"; exit 1; fi
