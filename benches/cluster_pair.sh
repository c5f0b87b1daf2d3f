#!/usr/bin/env bash
# A driver and two workers (real processes on 127.0.0.1, one core each) against the
# local engine (two cores), pair by pair, on W1, W3a and W3b; verify.py checks the
# cluster's outputs; then Daft's Ray runner on the same machine in the same run
# (../shared/bench/ray_peer.sh), and the driver's scheduling throughput with no-op
# tasks. Prints a markdown summary (also in $OUT/summary.md).
#
#   bash benches/cluster_pair.sh                 # PAIRS=3, all of it
#   PAIRS=1 RAY=0 WORKLOADS=tpch_q1 bash benches/cluster_pair.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
source "$ROOT/scripts/env.sh"
source "$HERE/cluster_lib.sh"
release_binaries
DATA="${DATA:-/tmp/regatta-bench-data}"
PAIRS="${PAIRS:-3}"
WORKLOADS="${WORKLOADS:-image tpch_q1 tpch_q3}"
SHARED="${SHARED:-$ROOT/../shared/bench}"
PY="${PY:-/tmp/daftenv/bin/python}"
RAY="${RAY:-1}"
OUT="${OUT:-$(mktemp -d /tmp/regatta-cluster-bench.XXXXXX)}"
mkdir -p "$OUT"
trap stop_cluster EXIT
start_cluster "$OUT" 4GiB
echo "driver $DRIVER, 2 workers; results in $OUT" >&2

run() {  # run LABEL WORKLOAD [args...]: one run, its JSON line appended to $OUT/runs.jsonl
  local label=$1 w=$2; shift 2
  local line
  line="$("$BIN" --workload "$w" --data "$DATA" "$@" | tail -n 1)"
  echo "$line" > "$OUT/last_$label.json"
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["label"]=sys.argv[2]; print(json.dumps(r))' \
    "$line" "$label" >> "$OUT/runs.jsonl"
  echo "  $label $w $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["seconds"])' "$line") s" >&2
}

for w in $WORKLOADS; do
  echo "== $w" >&2
  run warm_local "$w"; run warm_cluster "$w" --runner cluster --driver "$DRIVER"
  for _ in $(seq 1 "$PAIRS"); do
    run local "$w"
    run cluster "$w" --runner cluster --driver "$DRIVER"
  done
  # Where the last cluster run's time went: planning, each stage's span (the gap
  # before it is scheduling) and its tasks' shuffle read, compute and write.
  last_job="$(REGATTA_DRIVER="$DRIVER" "$CLI" jobs list | sed -n 's/^job-\([0-9]*\).*/\1/p' | sort -n | tail -n 1)"
  if [[ -n "$last_job" ]]; then
    { echo "### $w: the last cluster run, job-$last_job"; echo '```';
      REGATTA_DRIVER="$DRIVER" "$CLI" jobs stages "$last_job"; echo '```'; } > "$OUT/stages_$w.md"
    cat "$OUT/stages_$w.md" >&2
  fi
  # The cluster's output, checked against the expected values.
  if [[ -x "$PY" ]]; then
    case "$w" in
      image)
        run verify_cluster image --runner cluster --driver "$DRIVER" --keep-output --out-root "$OUT"
        dir="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["out_dir"])' "$OUT/last_verify_cluster.json")"
        "$PY" "$SHARED/verify.py" w1 "$dir" | tee "$OUT/verify_$w.txt" >&2
        rm -rf "$dir" ;;
      tpch_q1) "$PY" "$SHARED/verify.py" q1 "$OUT/last_cluster.json" | tee "$OUT/verify_$w.txt" >&2 ;;
      tpch_q3) "$PY" "$SHARED/verify.py" q3 "$OUT/last_cluster.json" | tee "$OUT/verify_$w.txt" >&2 ;;
    esac
  fi
done

echo "== scheduling throughput (no-op tasks)" >&2
for _ in 1 2 3; do run schedule schedule --tasks 20000 --workers 4 || echo "  a schedule run failed" >&2; done

if [[ "$RAY" == 1 && -x "$PY" ]]; then
  echo "== Daft on its Ray runner (same run)" >&2
  ray_workloads=""
  for w in $WORKLOADS; do [[ "$w" == image || "$w" == tpch_q1 ]] && ray_workloads+="$w "; done
  if [[ -n "$ray_workloads" ]]; then
    RESULTS_DIR="$OUT/ray" RUNS="$PAIRS" WORKLOADS="$ray_workloads" bash "$SHARED/ray_peer.sh" >&2 || echo "Daft on Ray failed" >&2
  fi
fi

python3 - "$OUT" <<'PY' | tee "$OUT/summary.md"
import json, os, statistics, sys, glob
out = sys.argv[1]
runs = [json.loads(l) for l in open(os.path.join(out, "runs.jsonl"))]
def med(label, w):
    xs = [r["seconds"] for r in runs if r["label"] == label and r["workload"] == w]
    return statistics.median(xs) if xs else None
ray = {}
for f in glob.glob(os.path.join(out, "ray", "*ray*.jsonl")):
    for l in open(f):
        r = json.loads(l)
        if r.get("phase") == "run":
            ray.setdefault(r["workload"], []).append(r["seconds"])
print("| workload | cluster / local (median of pair ratios) | cluster / Daft on Ray (medians) | verify.py on the cluster's output |")
print("|---|---|---|---|")
for w in ["image", "tpch_q1", "tpch_q3"]:
    loc = [r["seconds"] for r in runs if r["label"] == "local" and r["workload"] == w]
    clu = [r["seconds"] for r in runs if r["label"] == "cluster" and r["workload"] == w]
    if not loc:
        continue
    ratio = statistics.median(c / l for c, l in zip(clu, loc))
    rr = "—"
    if w in ray and clu:
        rr = f"{statistics.median(clu) / statistics.median(ray[w]):.2f}"
    vf = os.path.join(out, f"verify_{w}.txt")
    v = "—"
    if os.path.exists(vf):
        text = open(vf).read()
        v = "PASS" if "FAIL" not in text and "PASS" in text else "FAIL"
    print(f"| {w} | {ratio:.2f} ({len(loc)} pairs) | {rr} | {v} |")
tps = [r["tasks_per_s"] for r in runs if r["label"] == "schedule"]
if tps:
    print(f"\nscheduling throughput, no-op tasks: median {statistics.median(tps):.0f} tasks/s over {len(tps)} runs of 20,000 tasks")
PY
