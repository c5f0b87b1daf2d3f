#!/usr/bin/env bash
# Issue 15's distributed writes, at W1's size: a driver and three one-core workers
# (release binaries, 127.0.0.1) write W1 with a 64x64 PNG thumbnail column to Lance
# and to Parquet; pylance and pyarrow read both back and compare them with the
# local engine's rows; prints versions, fragments, part files and which workers
# wrote them.
#
#   DATA=/tmp/rg-img2k bash benches/cluster_writes.sh
# PY: a Python with pylance and pyarrow (scripts/test makes .venv with them).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
source "$ROOT/scripts/env.sh"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
CLI="${CLI:-$TARGET/release/regatta}"
DATA="${DATA:-/tmp/rg-img2k}"
PY="${PY:-$ROOT/.venv/bin/python}"
OUT="${OUT:-$(mktemp -d /tmp/regatta-writes-bench.XXXXXX)}"
mkdir -p "$OUT"
[[ -x "$CLI" ]] || { echo "missing $CLI: cargo build --release -p regatta-cli" >&2; exit 1; }
"$PY" -c "import lance, pyarrow" || { echo "$PY lacks pylance or pyarrow" >&2; exit 1; }
export REGATTA_TOKEN="bench-$RANDOM$RANDOM"
source "$HERE/cluster_lib.sh"
trap stop_cluster EXIT
WORKERS=3 start_cluster "$OUT" 4GiB
SQL="SELECT id, image_encode(image_resize(image_decode(url_download(url, 'null'), 'RGB', 'null'), 64, 64), 'png') AS thumb FROM images"
T="images=$DATA/images.parquet"
"$CLI" sql -f csv -t "$T" "SELECT id FROM ($SQL) WHERE thumb IS NOT NULL ORDER BY id" > /dev/null  # warm
"$CLI" sql -o "$OUT/local.parquet" -t "$T" "$SQL"
REGATTA_DRIVER="$DRIVER" "$CLI" submit -o "$OUT/thumbs.lance" -t "$T" "$SQL"
REGATTA_DRIVER="$DRIVER" "$CLI" submit -o "$OUT/thumbs_pq" -t "$T" "$SQL"
REGATTA_DRIVER="$DRIVER" "$CLI" cluster > "$OUT/workers.txt" || true
"$PY" - "$OUT" <<'PY'
import glob, os, sys
import lance, pyarrow.compute as pc, pyarrow.parquet as pq
out = sys.argv[1]
def rows(t):
    t = t.filter(pc.is_valid(t["thumb"])).sort_by("id")
    return list(zip(t["id"].to_pylist(), t["thumb"].to_pylist()))
local = rows(pq.read_table(os.path.join(out, "local.parquet")))
ds = lance.dataset(os.path.join(out, "thumbs.lance"))
frags = ds.get_fragments()
parts = sorted(glob.glob(os.path.join(out, "thumbs_pq", "*.parquet")))
lance_rows = rows(ds.to_table())
pq_rows = rows(pq.read_table(parts))
print(f"| output | rows with a thumbnail | equal to local | versions | fragments / part files |")
print(f"|---|---:|---|---:|---:|")
print(f"| local engine | {len(local)} | — | — | — |")
print(f"| Lance (pylance {lance.__version__}) | {len(lance_rows)} | {lance_rows == local} | {len(ds.versions())} | {len(frags)} |")
print(f"| Parquet (pyarrow) | {len(pq_rows)} | {pq_rows == local} | — | {len(parts)} |")
print("Lance commit tag:", ds.versions()[-1].get("metadata", {}))
PY
cat "$OUT/workers.txt"
