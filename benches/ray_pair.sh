#!/usr/bin/env bash
# regatta over Ray against regatta self-hosted and against Daft's Ray runner, in
# one run, on the same local Ray 2.60 cluster (scripts/ray-cluster.sh: a head with
# 2 CPUs and a node with 1 CPU), all inside a network namespace of its own:
#   - W1 (image) and W3a (tpch_q1), PAIRS rounds each: regatta-over-Ray (workers
#     launched by Ray), regatta self-hosted (a driver and two workers with 2 and 1
#     CPUs, the same shape), Daft's Ray runner (its own processes on the cluster);
#   - the time from launch to every Ray worker registered, over STARTS driver starts
#     (the worker package already cached and uploaded).
# Prints a markdown summary (also $OUT/summary.md).
#
#   sudo bash benches/ray_pair.sh          # needs root for the network namespace
#   PAIRS=1 WORKLOADS=tpch_q1 PROFILE=release bash benches/ray_pair.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
if [[ "${REGATTA_IN_NETNS:-}" != 1 ]]; then
  exec unshare --net -- env REGATTA_IN_NETNS=1 bash -c 'ip link set lo up && exec bash "$0" "$@"' "$0" "$@"
fi
source "$ROOT/scripts/env.sh"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
PROFILE="${PROFILE:-debug}"
BIN="${BIN:-$TARGET/$PROFILE/regatta-bench}"
CLI="${CLI:-$TARGET/$PROFILE/regatta}"
DATA="${DATA:-/tmp/regatta-bench-data}"
PAIRS="${PAIRS:-3}"
STARTS="${STARTS:-3}"
WORKLOADS="${WORKLOADS:-image tpch_q1}"
SHARED="${SHARED:-$ROOT/../shared/bench}"
# The cluster runs from the Daft venv (Ray 2.60 + daft), so Daft's Ray workers can
# import daft; regatta needs nothing from it.
export REGATTA_RAY_VENV="${REGATTA_RAY_VENV:-/tmp/daftenv}"
PY="$REGATTA_RAY_VENV/bin/python"
OUT="${OUT:-$(mktemp -d /tmp/regatta-ray-bench.XXXXXX)}"
mkdir -p "$OUT"
for f in "$BIN" "$CLI" "$PY"; do
  [[ -x "$f" ]] || { echo "missing $f" >&2; exit 1; }
done
export REGATTA_TOKEN="bench-$RANDOM$RANDOM"
export REGATTA_RAY_DIR=/tmp/regatta-ray-bench REGATTA_RAY_TAG=regatta-ray-bench
CLUSTER="$ROOT/scripts/ray-cluster.sh"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  REGATTA_RAY_GPU_IDS= bash "$CLUSTER" down || true
}
trap cleanup EXIT
# No fake GPUs here: W1 runs its stand-in model on CPUs everywhere.
REGATTA_RAY_GPU_IDS= bash "$CLUSTER" up
export REGATTA_RAY_TOKEN="$(cat "$REGATTA_RAY_DIR/token")"
RAY_URL=http://127.0.0.1:8265

run() {  # run LABEL WORKLOAD [args...]
  local label=$1 w=$2; shift 2
  local line
  line="$("$BIN" --workload "$w" --data "$DATA" "$@" | tail -n 1)"
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["label"]=sys.argv[2]; print(json.dumps(r))' \
    "$line" "$label" >> "$OUT/runs.jsonl"
  echo "  $label $w $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["seconds"])' "$line") s" >&2
}

start_ray_driver() {  # sets DRIVER and DRIVER_PID; the driver log is $OUT/ray_driver_$1.log
  RUST_LOG=regatta_ray=info "$CLI" driver --bind 127.0.0.1:0 --ray "$RAY_URL" \
    > "$OUT/ray_driver_$1.out" 2> "$OUT/ray_driver_$1.log" &
  DRIVER_PID=$!
  for _ in $(seq 1 1200); do grep -q "listening on" "$OUT/ray_driver_$1.out" && break; sleep 0.1; done
  DRIVER="$(grep -m1 "listening on" "$OUT/ray_driver_$1.out" | awk '{print $NF}')"
  [[ -n "$DRIVER" ]] || { echo "the Ray driver did not start; see $OUT/ray_driver_$1.log" >&2; exit 1; }
}
stop_driver() { kill -TERM "$DRIVER_PID"; wait "$DRIVER_PID" || true; }

echo "== launch: driver start to every Ray worker registered" >&2
start_ray_driver warm; stop_driver   # packages and uploads the binary once
for i in $(seq 1 "$STARTS"); do
  start_ray_driver "start$i"
  grep -o "registered [0-9.]*[a-z]* after the launch began" "$OUT/ray_driver_start$i.log" | tee -a "$OUT/launch.txt" >&2
  stop_driver
done

echo "== regatta over Ray" >&2
start_ray_driver runs
for w in $WORKLOADS; do
  run warm_ray "$w" --runner cluster --driver "$DRIVER"
  for _ in $(seq 1 "$PAIRS"); do run regatta_ray "$w" --runner cluster --driver "$DRIVER"; done
done
stop_driver

echo "== regatta self-hosted (2 + 1 CPUs, like the Ray nodes)" >&2
"$CLI" driver --bind 127.0.0.1:0 > "$OUT/driver.out" 2> "$OUT/driver.log" &
pids+=($!)
for _ in $(seq 1 100); do grep -q "listening on" "$OUT/driver.out" && break; sleep 0.1; done
SELF="$(grep -m1 "listening on" "$OUT/driver.out" | awk '{print $NF}')"
for c in 2 1; do
  printf '[worker]\ncpus = %s\n' "$c" > "$OUT/worker$c.toml"
  "$CLI" worker -c "$OUT/worker$c.toml" --driver "$SELF" --spill-dir "$OUT/spill$c" > "$OUT/worker$c.out" 2>&1 &
  pids+=($!)
done
for _ in $(seq 1 100); do [[ "$(cat "$OUT"/worker*.out | grep -c "serving shuffle")" == 2 ]] && break; sleep 0.1; done
for w in $WORKLOADS; do
  run warm_self "$w" --runner cluster --driver "$SELF"
  for _ in $(seq 1 "$PAIRS"); do run regatta_self "$w" --runner cluster --driver "$SELF"; done
done

echo "== Daft's Ray runner on the same cluster" >&2
for w in $WORKLOADS; do
  for i in $(seq 0 "$PAIRS"); do
    # A Daft failure is reported, not fatal: the other columns still count.
    if ! line="$(RAY_AUTH_MODE=token RAY_AUTH_TOKEN="$REGATTA_RAY_TOKEN" DAFT_ANALYTICS_ENABLED=0 \
      "$PY" "$SHARED/daft_workloads.py" --workload "$w" --data "$DATA" --runner ray \
      --ray-address 127.0.0.1:6379 2>>"$OUT/daft.err" | tail -n 1)"; then
      echo "  daft_ray $w failed; see $OUT/daft.err" >&2
      continue
    fi
    [[ "$i" == 0 ]] && continue   # warm-up
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["label"]="daft_ray"; r["workload"]=sys.argv[2]; print(json.dumps(r))' \
      "$line" "$w" >> "$OUT/runs.jsonl"
    echo "  daft_ray $w $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["seconds"])' "$line") s" >&2
  done
done

python3 - "$OUT" <<'PY' | tee "$OUT/summary.md"
import json, os, re, statistics, sys
out = sys.argv[1]
runs = [json.loads(l) for l in open(os.path.join(out, "runs.jsonl"))]
def secs(label, w):
    return [r["seconds"] for r in runs if r["label"] == label and r["workload"] == w]
def rows(r):  # a run's result, order and key order aside
    res = r.get("result")
    if isinstance(res, list):
        return sorted(json.dumps(x, sort_keys=True) for x in res)
    return json.dumps(res, sort_keys=True)
print("| workload | regatta over Ray / self-hosted | regatta over Ray / Daft on Ray | runs | same result |")
print("|---|---|---|---|---|")
for w in ["image", "tpch_q1"]:
    ray, own, daft = secs("regatta_ray", w), secs("regatta_self", w), secs("daft_ray", w)
    if not ray:
        continue
    a = f"{statistics.median(ray) / statistics.median(own):.2f}" if own else "—"
    b = f"{statistics.median(ray) / statistics.median(daft):.2f}" if daft else "—"
    results = [rows(r) for r in runs if r["workload"] == w]
    same = "yes" if all(x == results[0] for x in results) else "NO"
    print(f"| {w} | {a} | {b} | {len(ray)}/{len(own)}/{len(daft)} | {same} |")
launch = open(os.path.join(out, "launch.txt")).read()
xs = []
for m in re.finditer(r"registered ([0-9.]+)(ms|s) after", launch):
    xs.append(float(m.group(1)) / (1000 if m.group(2) == "ms" else 1))
if xs:
    print(f"\nlaunch to all {2} Ray workers registered: median {statistics.median(xs):.2f} s, "
          f"worst {max(xs):.2f} s over {len(xs)} driver starts (package cached and uploaded)")
PY
