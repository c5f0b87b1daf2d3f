#!/usr/bin/env bash
# W1 with its inputs in an S3-compatible store (issue 16), side by side in one run:
# regatta on local files, regatta reading the store, and Daft 0.7.26 reading the
# same store, PAIRS rounds after one warm-up of each; prints every JSON line, then
# the medians of the per-round ratios (quote those, not seconds: the machine is
# shared) and whether every run found the same rows.
#
#   /tmp/daftenv/bin/python ../shared/bench/gen_data.py --only images --out /tmp/rbd   # once
#   PAIRS=3 DATA=/tmp/rbd bash benches/s3_pair.sh
#
# The store is s3s-fs (what the tests use; scripts/setup.sh builds it) on
# 127.0.0.1, serving a directory: W1's images and an images.parquet whose urls
# are s3:// keys are put in its bucket (hard links: nothing is copied), so both
# engines list, read and download every byte through the S3 protocol.
# PY: a Python with daft==0.7.26 and pyarrow (default /tmp/daftenv/bin/python).
# PEER: shared/bench's daft_workloads.py (default ../shared/bench/daft_workloads.py).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
PY="${PY:-/tmp/daftenv/bin/python}"
PEER="${PEER:-../shared/bench/daft_workloads.py}"
PAIRS="${PAIRS:-3}"
DATA="${DATA:-/tmp/regatta-bench-data}"
BIN="${BIN:-${CARGO_TARGET_DIR:-target}/release/regatta-bench}"
S3S="${REGATTA_S3_SERVER:-s3s-fs}"
[[ -x "$BIN" ]] || { echo "s3_pair: $BIN missing; run cargo build --release -p regatta-bench" >&2; exit 1; }
[[ -x "$PY" ]] || { echo "s3_pair: no Python at $PY (daft==0.7.26 and pyarrow)" >&2; exit 1; }
[[ -f "$PEER" ]] || { echo "s3_pair: no peer script at $PEER" >&2; exit 1; }
[[ -f "$DATA/images.parquet" ]] || { echo "s3_pair: no W1 data in $DATA (gen_data.py --only images)" >&2; exit 1; }

work="$(mktemp -d)"
server=""
cleanup() {
  [[ -n "$server" ]] && kill "$server" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The bucket: the images hard-linked in, the table rewritten to point at them.
mkdir -p "$work/store/bench/w1"
cp -al "$DATA/images" "$work/store/bench/w1/images"
"$PY" - "$DATA" "$work/store/bench/w1" <<'PY'
import os, sys
import pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq
data, dest = sys.argv[1], sys.argv[2]
t = pq.read_table(os.path.join(data, "images.parquet"))
base = os.path.realpath(os.path.join(data, "images")) + "/"
urls = [u.replace("file://", "") for u in t.column("url").to_pylist()]
urls = [os.path.realpath(u) if u.startswith("/") else u for u in urls]
assert all(u.startswith(base) for u in urls), "images.parquet points outside DATA/images"
s3 = pa.array(["s3://bench/w1/images/" + u[len(base):] for u in urls])
t = t.set_column(t.schema.get_field_index("url"), "url", s3)
pq.write_table(t, os.path.join(dest, "images.parquet"))
PY

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export AWS_ACCESS_KEY_ID=regatta-bench-key AWS_SECRET_ACCESS_KEY=regatta-bench-secret-7c1d
export AWS_REGION=us-east-1 AWS_ENDPOINT_URL="http://127.0.0.1:$port"
"$S3S" --host 127.0.0.1 --port "$port" --access-key "$AWS_ACCESS_KEY_ID" \
  --secret-key "$AWS_SECRET_ACCESS_KEY" "$work/store" > "$work/s3s.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

out="$work/runs.jsonl"
local_run() { "$BIN" --workload image --data "$DATA" | tail -1 | sed 's/^{/{"where": "local files", /'; }
s3_run() { "$BIN" --workload image --data s3://bench/w1 | tail -1 | sed 's/^{/{"where": "s3", /'; }
daft_run() {
  "$PY" benches/peer/daft_s3.py --peer "$PEER" --workload image --data s3://bench/w1 \
    | tail -1 | sed 's/^{/{"where": "s3", "engine": "daft", /'
}
echo "== warm-up" >&2
local_run >/dev/null; s3_run >/dev/null; daft_run >/dev/null
for _ in $(seq "$PAIRS"); do
  local_run | tee -a "$out"
  s3_run | tee -a "$out"
  daft_run | tee -a "$out"
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
local = [r for r in rows if r["engine"] == "regatta" and r["where"] == "local files"]
s3 = [r for r in rows if r["engine"] == "regatta" and r["where"] == "s3"]
daft = [r for r in rows if r["engine"] == "daft"]
t_local = statistics.median(b["seconds"] / a["seconds"] for a, b in zip(local, s3))
t_daft = statistics.median(b["seconds"] / a["seconds"] for a, b in zip(daft, s3))
m_daft = statistics.median(b.get("peak_rss_mb", 0) / max(a.get("peak_rss_mb", 1), 1) for a, b in zip(daft, s3))
print(f"W1 regatta s3 / regatta local files: time {t_local:.2f} (aim <= 1.3), rounds {len(s3)}")
print(f"W1 regatta s3 / daft s3: time {t_daft:.2f} (aim <= 0.5), peak RSS {m_daft:.2f}")
checks = {(r["engine"], r["where"], json.dumps({k: r["check"][k] for k in ("rows", "id_sum")})) for r in rows}
print("checks (rows, id_sum) per engine and input:", sorted(checks))
PY
