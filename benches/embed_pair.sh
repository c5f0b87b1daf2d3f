#!/usr/bin/env bash
# The real-model benchmark, pair by pair: sentence-transformers then regatta on the
# same texts, model files and CPU threads, PAIRS times; prints every JSON line and
# the medians' ratios (quote those, not seconds: the machine is shared).
#   STENV=/tmp/stenv PAIRS=2 DOCS=500 bash benches/embed_pair.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
STENV="${STENV:-/tmp/stenv}"
PAIRS="${PAIRS:-2}"
DOCS="${DOCS:-500}"
DATA="${DATA:-/tmp/regatta-bench-data}"
THREADS="${THREADS:-$(nproc)}"
BIN="${BIN:-${CARGO_TARGET_DIR:-target}/release/regatta-bench}"
if [[ ! -x "$STENV/bin/python" ]]; then
  echo "embed_pair: no venv at $STENV; make one: python3 -m venv $STENV && $STENV/bin/pip install sentence-transformers pyarrow" >&2
  exit 1
fi
if [[ ! -x "$BIN" ]]; then
  echo "embed_pair: $BIN missing; run cargo build --release -p regatta-bench" >&2
  exit 1
fi
out="$(mktemp)"
for _ in $(seq "$PAIRS"); do
  "$STENV/bin/python" benches/peer/st_embed.py --data "$DATA" --model "$REGATTA_MINILM_DIR" \
    --docs "$DOCS" --threads "$THREADS" | tail -1 | tee -a "$out"
  RAYON_NUM_THREADS="$THREADS" "$BIN" --workload embed_minilm --data "$DATA" --docs "$DOCS" |
    tail -1 | tee -a "$out"
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(engine, key):
    return statistics.median(r[key] for r in rows if r["engine"] == engine)
st, rg = "sentence-transformers", "regatta"
print(f"chunks/s: regatta {med(rg, 'chunks_per_s')} vs sentence-transformers {med(st, 'chunks_per_s')}"
      f" -> throughput ratio {med(rg, 'chunks_per_s') / med(st, 'chunks_per_s'):.2f}")
print(f"peak RSS MB: regatta {med(rg, 'peak_rss_mb')} vs {med(st, 'peak_rss_mb')}"
      f" -> ratio {med(rg, 'peak_rss_mb') / med(st, 'peak_rss_mb'):.2f}")
print(f"pool busy share (regatta): {med(rg, 'pool_busy_share')}")
PY
rm -f "$out"
