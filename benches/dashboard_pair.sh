#!/usr/bin/env bash
# What a browser watching the dashboard costs the driver: W3a (TPC-H Q1) on a
# driver and two one-core workers (release binaries, 127.0.0.1), in pairs: one run
# with headless Chromium's tab on about:blank, one with it on the running job's page
# (benches/dashboard_watch.py: the page follows the pushed updates every second,
# as a person's would). One browser, started before the runs, serves both. Order
# alternates within pairs. Prints the median ratio watched / unwatched and
# Chromium's CPU in each (also in $OUT/summary.md).
#
#   PAIRS=5 bash benches/dashboard_pair.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
source "$ROOT/scripts/env.sh"
source "$HERE/cluster_lib.sh"
release_binaries
DATA="${DATA:-/tmp/regatta-bench-data}"
PAIRS="${PAIRS:-5}"
WORKLOAD="${WORKLOAD:-tpch_q1}"
OUT="${OUT:-$(mktemp -d /tmp/regatta-dashboard-bench.XXXXXX)}"
mkdir -p "$OUT"
command -v chromedriver >/dev/null || { echo "chromedriver missing: bash scripts/setup.sh" >&2; exit 1; }
stop_all() {
  [[ -n "${WATCH_PID:-}" ]] && kill "$WATCH_PID" 2>/dev/null || true
  stop_cluster
}
trap stop_all EXIT
start_cluster "$OUT" 4GiB
DASH="$(grep -m1 "regatta dashboard at" "$OUT/driver.log" | awk '{print $NF}')"
[[ -n "$DASH" ]] || { echo "the driver printed no dashboard address; see $OUT/driver.log" >&2; exit 1; }
echo "driver $DRIVER, dashboard $DASH, 2 workers; results in $OUT" >&2

# One browser for the whole run (benches/dashboard_watch.py): a watched run has
# its tab on the running job's page, an unwatched one on about:blank.
coproc WATCH { python3 "$HERE/dashboard_watch.py" 2> "$OUT/watch.err"; }
ask() {  # ask COMMAND: sends it to the browser, prints its one-line answer
  echo "$1" >&"${WATCH[1]}"
  local answer
  read -r -t 60 -u "${WATCH[0]}" answer || { echo "the browser did not answer '$1':" >&2; cat "$OUT/watch.err" >&2; exit 1; }
  echo "$answer"
}
read -r -t 60 -u "${WATCH[0]}" ready || { echo "the browser did not start:" >&2; cat "$OUT/watch.err" >&2; exit 1; }
# (Not `ask cpu | awk`: a pipeline's processes do not get the coprocess's pipes.)
cpu() { local answer; answer="$(ask cpu)"; echo "${answer#cpu: }"; }

run() {  # run LABEL: one run on the cluster, its JSON line appended to $OUT/runs.jsonl
  local label=$1 line before after
  if [[ "$label" == watched ]]; then
    [[ "$(ask "watch ${DASH}jobs/latest?token=$REGATTA_TOKEN")" == watching ]] || exit 1
  else
    [[ "$(ask blank)" == blank ]] || exit 1
  fi
  before=$(cpu)
  line="$("$BIN" --workload "$WORKLOAD" --data "$DATA" --runner cluster --driver "$DRIVER" | tail -n 1)"
  after=$(cpu)
  [[ "$label" == watched ]] && echo "    browser $(ask shown)" >&2
  echo "    browser cpu: $(echo "$after - $before" | bc) s" >&2
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["label"]=sys.argv[2]; r["browser_cpu"]=float(sys.argv[3]); print(json.dumps(r))' \
    "$line" "$label" "$(echo "$after - $before" | bc)" >> "$OUT/runs.jsonl"
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
cpu = lambda label: statistics.median(r["browser_cpu"] / r["seconds"] for r in runs if r["label"] == label)
print(f"\nChromium's CPU per second of job (median): watched {cpu('watched'):.3f}, unwatched (about:blank) {cpu('unwatched'):.3f}")
PY
