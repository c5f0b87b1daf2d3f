#!/usr/bin/env bash
# Does the driver's (and the client's) memory grow with the data? A driver and two
# one-core workers (real processes on 127.0.0.1); a client streams
#   SELECT id, url_download(url) AS bytes FROM images
# to a file, over a small and a ten times larger image set. Prints each process's
# peak RSS (VmHWM) per run, and the large/small ratio, as markdown.
#
#   SMALL=/tmp/rg-img2k LARGE=/tmp/rg-img20k bash benches/cluster_memory.sh
# Data: python ../shared/bench/gen_data.py --out DIR --only images --n-images N
# PROFILE=debug uses the debug binaries (peak memory, not speed, is measured).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
source "$ROOT/scripts/env.sh"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
CLI="${CLI:-$TARGET/${PROFILE:-release}/regatta}"
SMALL="${SMALL:-/tmp/rg-img2k}"
LARGE="${LARGE:-/tmp/rg-img20k}"
OUT="${OUT:-$(mktemp -d /tmp/regatta-memory-bench.XXXXXX)}"
[[ -x "$CLI" ]] || { echo "missing $CLI: cargo build --release -p regatta-cli" >&2; exit 1; }
for d in "$SMALL" "$LARGE"; do
  [[ -f "$d/images.parquet" ]] || { echo "missing $d/images.parquet (gen_data.py --only images)" >&2; exit 1; }
done
export REGATTA_TOKEN="bench-$RANDOM$RANDOM"
source "$HERE/cluster_lib.sh"

peak_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
cluster_pid() { echo "${cluster_pids[$1]}"; }

echo "| images | result bytes | driver peak MiB | client peak MiB | worker 1 peak MiB | worker 2 peak MiB | seconds |"
echo "|---|---|---|---|---|---|---|"
declare -A driver_peak client_peak
for set in "$SMALL" "$LARGE"; do
  run_dir="$OUT/$(basename "$set")"
  mkdir -p "$run_dir"
  cluster_pids=()
  start_cluster "$run_dir" 4GiB
  n=$(python3 - "$set/images.parquet" <<'PY' 2>/dev/null || echo "?"
import sys, os
print(len(os.listdir(os.path.join(os.path.dirname(sys.argv[1]), "images"))))
PY
)
  start=$(date +%s.%N)
  # The client streams JSON lines to a file; its own peak comes from GNU time.
  REGATTA_DRIVER="$DRIVER" /usr/bin/time -f "%M" -o "$run_dir/client.kib" \
    "$CLI" submit -f json -t "images=$set/images.parquet" \
    "SELECT id, url_download(url, 'null') AS bytes FROM images" > "$run_dir/rows.json"
  end=$(date +%s.%N)
  d=$(peak_kib "$(cluster_pid 0)"); w1=$(peak_kib "$(cluster_pid 1)"); w2=$(peak_kib "$(cluster_pid 2)")
  c=$(cat "$run_dir/client.kib")
  bytes=$(stat -c %s "$run_dir/rows.json")
  rows=$(wc -l < "$run_dir/rows.json")
  stop_cluster
  rm -f "$run_dir/rows.json"
  driver_peak[$set]=$d; client_peak[$set]=$c
  printf '| %s (%s rows) | %s MB of JSON | %d | %d | %d | %d | %.1f |\n' "$n" "$rows" "$((bytes / 1000000))" \
    "$((d / 1024))" "$((c / 1024))" "$((w1 / 1024))" "$((w2 / 1024))" "$(echo "$end - $start" | bc)"
done
python3 - "${driver_peak[$SMALL]}" "${driver_peak[$LARGE]}" "${client_peak[$SMALL]}" "${client_peak[$LARGE]}" <<'PY'
import sys
ds, dl, cs, cl = map(int, sys.argv[1:])
print(f"\nlarge/small peak RSS: driver {dl/ds:.2f}, client {cl/cs:.2f} (aim: at most 1.25 each)")
PY
