#!/usr/bin/env bash
# The regression guard (issue 32): a paired run against Daft of W1 and W5 (and
# Q1/Q3 when DATA holds TPC-H tables), its ratios compared with the ones
# recorded in benches/guard_baseline.json, so a slip is seen in the session
# that causes it (W1 went from 0.43 to 0.50 of Daft's time unnoticed).
# Run it before stopping, alone on the machine, on a release build:
#
#   cargo build --release -p regatta-bench
#   bash benches/guard.sh             # exit 1 when a ratio slipped past SLACK
#   bash benches/guard.sh --record    # after a deliberate change: new baseline
#
# The shared generator's default sizes (IMAGES 2,000, DOCS 20,000), generated
# into DATA when missing: about 40 s of runs per workload. Fractions were tried
# first: over 500 images one run's W1 ratio read 0.20 and the next 0.30, too
# noisy to guard anything. One warm-up and PAIRS (default 3) pairs each
# (ratio.py, the median), SHORT_PAIRS (default 9) for the workloads that run
# under a second (W5, Q1, Q3: three pairs of those flagged W5 two sessions
# running with no code cause); a ratio more than SLACK (default 0.15, i.e. 15 %)
# above its baseline fails. ONLY="embed_stub ..." reruns some workloads
# (rerun a failing one before believing it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
SHARED="${SHARED:-$PWD/../shared/bench}"
PY="${PY:-/tmp/daftenv/bin/python}"
DATA="${DATA:-/tmp/regatta-bench-data}"
IMAGES="${IMAGES:-2000}"
DOCS="${DOCS:-20000}"
PAIRS="${PAIRS:-3}"
SHORT_PAIRS="${SHORT_PAIRS:-9}"
SLACK="${SLACK:-0.15}"
BIN="${BIN:-${CARGO_TARGET_DIR:-target}/release/regatta-bench}"
BASELINE=benches/guard_baseline.json
record=0
[[ "${1:-}" == "--record" ]] && record=1
[[ -x "$BIN" ]] || { echo "guard: $BIN missing; run cargo build --release -p regatta-bench" >&2; exit 1; }
[[ -x "$PY" ]] || { echo "guard: no Python at $PY (the Daft venv of ../shared/bench/README.md)" >&2; exit 1; }
[[ -f "$SHARED/ratio.py" ]] || { echo "guard: $SHARED/ratio.py missing (set SHARED to the shared bench directory)" >&2; exit 1; }
if [[ ! -f "$DATA/images.parquet" ]]; then
  echo "guard: generating $IMAGES images into $DATA (once)" >&2
  "$PY" "$SHARED/gen_data.py" --only images --n-images "$IMAGES" --out "$DATA" >&2
fi
if [[ ! -f "$DATA/docs.parquet" ]]; then
  echo "guard: generating $DOCS documents into $DATA (once)" >&2
  "$PY" "$SHARED/gen_data.py" --only docs --n-docs "$DOCS" --out "$DATA" >&2
fi
workloads=(image embed_stub)
if [[ -f "$DATA/tpch/lineitem.parquet" ]]; then
  workloads+=(tpch_q1 tpch_q3)
else
  echo "guard: no TPC-H tables in $DATA; Q1 and Q3 left out" >&2
fi
results="$(mktemp)"
trap 'rm -f "$results"' EXIT
[[ -n "${ONLY:-}" ]] && read -r -a workloads <<<"$ONLY"
for w in "${workloads[@]}"; do
  pairs="$PAIRS"
  [[ "$w" == image ]] || pairs="$SHORT_PAIRS"
  echo "guard: $w (1 warm-up, $pairs pairs)" >&2
  DATA="$DATA" PY="$PY" "$PY" "$SHARED/ratio.py" "$w" "$BIN" --runs "$pairs" --data "$DATA" | tail -1 >>"$results"
done
python3 - "$results" "$BASELINE" "$SLACK" "$record" "$IMAGES" "$DOCS" <<'EOF'
import json, sys
results, baseline_path, slack, record, images, docs = sys.argv[1:]
slack = float(slack)
now = {}
for line in open(results):
    r = json.loads(line)
    now[r["workload"]] = {"time": r["time_ratio_regatta_over_daft"], "rss": r["rss_ratio_regatta_over_daft"]}
try:
    base = json.load(open(baseline_path))
except FileNotFoundError:
    base = {"ratios": {}}
if base.get("images", int(images)) != int(images) or base.get("docs", int(docs)) != int(docs):
    sys.exit(f"guard: the baseline was recorded over {base.get('images')} images and "
             f"{base.get('docs')} documents, not {images} and {docs}")
print(f"{'workload':12} {'time/Daft':>10} {'baseline':>10} {'rss/Daft':>10} {'baseline':>10}")
slipped = []
for w, r in now.items():
    b = base["ratios"].get(w)
    bt = f"{b['time']:.3f}" if b else "-"
    br = f"{b['rss']:.3f}" if b else "-"
    mark = ""
    if b and r["time"] > b["time"] * (1 + slack):
        slipped.append(f"{w} time {r['time']:.3f} against {b['time']:.3f}")
        mark = "  SLIPPED"
    if b and r["rss"] > b["rss"] * (1 + slack):
        slipped.append(f"{w} memory {r['rss']:.3f} against {b['rss']:.3f}")
        mark = "  SLIPPED"
    print(f"{w:12} {r['time']:>10.3f} {bt:>10} {r['rss']:>10.3f} {br:>10}{mark}")
if record == "1":
    base = {"images": int(images), "docs": int(docs), "ratios": {**base["ratios"], **now}}
    with open(baseline_path, "w") as f:
        json.dump(base, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"guard: baseline written to {baseline_path}")
elif slipped:
    print("guard: slipped past the baseline by more than", f"{slack:.0%}:", "; ".join(slipped))
    sys.exit(1)
EOF
