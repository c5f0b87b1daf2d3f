#!/usr/bin/env bash
# W1 peak RSS over 2,000 and 20,000 images: memory must stay flat as input grows.
#   scripts/bench_memory.sh [BENCH_BIN] [DATA_2K] [DATA_20K]
# Make the 20k set with: python gen_data.py --out /tmp/regatta-bench-20k --n-images 20000 --only images
set -euo pipefail
BIN="${1:-${CARGO_TARGET_DIR:-target}/release/regatta-bench}"
D2="${2:-/tmp/regatta-bench-data}"
D20="${3:-/tmp/regatta-bench-20k}"
for d in "$D2" "$D20"; do
  [[ -f "$d/images.parquet" ]] || { echo "no images.parquet under $d" >&2; exit 1; }
done
run() { "$BIN" --workload image --data "$1" | tail -n 1; }
a=$(run "$D2"); b=$(run "$D20")
python3 - "$a" "$b" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(json.dumps({"rows_2k": a["rows_out"], "peak_rss_mb_2k": a["peak_rss_mb"], "seconds_2k": a["seconds"],
                  "rows_20k": b["rows_out"], "peak_rss_mb_20k": b["peak_rss_mb"], "seconds_20k": b["seconds"],
                  "ratio_20k_over_2k": round(b["peak_rss_mb"] / a["peak_rss_mb"], 3)}))
PY
