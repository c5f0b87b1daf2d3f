#!/usr/bin/env bash
# What a browser watching the dashboard costs the driver: W3a (TPC-H Q1, SF1) on a
# driver and two one-core workers (release binaries, 127.0.0.1), in pairs: one run
# with nobody watching, one with headless Chromium open on the running job's page
# (benches/dashboard_watch.py: it follows the page's pushed updates every second,
# as a person would). Order alternates within pairs. Prints the median ratio
# watched / unwatched (also in $OUT/summary.md).
#
#   PAIRS=5 bash benches/dashboard_pair.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
source "$ROOT/scripts/env.sh"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${BIN:-$TARGET/release/regatta-bench}"
CLI="${CLI:-$TARGET/release/regatta}"
DATA="${DATA:-/tmp/regatta-bench-data}"
PAIRS="${PAIRS:-5}"
WORKLOAD="${WORKLOAD:-tpch_q1}"
OUT="${OUT:-$(mktemp -d /tmp/regatta-dashboard-bench.XXXXXX)}"
mkdir -p "$OUT"
for f in "$BIN" "$CLI"; do
  [[ -x "$f" ]] || { echo "missing $f: cargo build --release -p regatta-bench -p regatta-cli" >&2; exit 1; }
done
command -v chromedriver >/dev/null || { echo "chromedriver missing: bash scripts/setup.sh" >&2; exit 1; }
export REGATTA_TOKEN="bench-$RANDOM$RANDOM"

source "$HERE/cluster_lib.sh"
watcher=""
stop_all() {
  [[ -n "$watcher" ]] && kill "$watcher" 2>/dev/null || true
  stop_cluster
}
trap stop_all EXIT
start_cluster "$OUT" 4GiB
DASH="$(grep -m1 "regatta dashboard at" "$OUT/driver.log" | awk '{print $NF}')"
[[ -n "$DASH" ]] || { echo "the driver printed no dashboard address; see $OUT/driver.log" >&2; exit 1; }
echo "driver $DRIVER, dashboard $DASH, 2 workers; results in $OUT" >&2

run() {  # run LABEL: one W3a run on the cluster, its JSON line appended to $OUT/runs.jsonl
  local label=$1 line fifo=""
  if [[ "$label" == watched ]]; then
    fifo="$OUT/watch.fifo"; rm -f "$fifo"; mkfifo "$fifo"
    python3 "$HERE/dashboard_watch.py" "${DASH}jobs/latest?token=$REGATTA_TOKEN" \
      < "$fifo" > "$OUT/watch.log" 2>&1 &
    watcher=$!
    exec 9> "$fifo"
    for _ in $(seq 1 300); do grep -q watching "$OUT/watch.log" && break; sleep 0.1; done
    grep -q watching "$OUT/watch.log" || { echo "the browser did not open the dashboard:" >&2; cat "$OUT/watch.log" >&2; exit 1; }
  fi
  line="$("$BIN" --workload "$WORKLOAD" --data "$DATA" --runner cluster --driver "$DRIVER" | tail -n 1)"
  if [[ -n "$fifo" ]]; then
    exec 9>&-
    wait "$watcher"; watcher=""
    echo "    browser $(grep 'last shown' "$OUT/watch.log")" >&2
    echo "    $(grep 'browser cpu' "$OUT/watch.log")" >&2
  fi
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["label"]=sys.argv[2]; print(json.dumps(r))' \
    "$line" "$label" >> "$OUT/runs.jsonl"
  echo "  $label $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["seconds"])' "$line") s" >&2
}

run warm; run watched  # warm-up, and one watched run to check the browser works
for i in $(seq 1 "$PAIRS"); do
  if (( i % 2 )); then run unwatched; run watched; else run watched; run unwatched; fi
done

python3 - "$OUT" "$WORKLOAD" <<'PY' | tee "$OUT/summary.md"
import json, os, statistics, sys
out, w = sys.argv[1], sys.argv[2]
runs = [json.loads(l) for l in open(os.path.join(out, "runs.jsonl"))][2:]
un = [r["seconds"] for r in runs if r["label"] == "unwatched"]
wa = [r["seconds"] for r in runs if r["label"] == "watched"]
ratios = [a / b for a, b in zip(wa, un)]
print(f"| workload | watched / unwatched (median of {len(ratios)} pair ratios) | pair ratios | aim |")
print("|---|---:|---|---|")
print(f"| {w} | **{statistics.median(ratios):.3f}** | {', '.join(f'{r:.3f}' for r in ratios)} | at most 1.05 |")
PY
