#!/usr/bin/env bash
# W9's memory against the length of its videos: the same six videos at 48 frames
# and at ten times that (benches/data/gen_vision.py --frames 480), run by
# regatta-bench one after the other; prints both runs' JSON and the ratio of their
# peak RSS (frames stream through the decoder, so it should stay near 1).
#
#   python3 benches/data/gen_vision.py --out /tmp/rbv --only video
#   python3 benches/data/gen_vision.py --out /tmp/rbv480 --only video --frames 480
#   SMALL=/tmp/rbv LARGE=/tmp/rbv480 bash benches/video_memory.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
BIN="${BIN:-${CARGO_TARGET_DIR:-target}/release/regatta-bench}"
SMALL="${SMALL:-/tmp/rbv}"
LARGE="${LARGE:-/tmp/rbv480}"
[[ -x "$BIN" ]] || { echo "video_memory: $BIN missing; run cargo build --release -p regatta-bench" >&2; exit 1; }
for d in "$SMALL" "$LARGE"; do
  [[ -d "$d/video/videos" ]] || { echo "video_memory: no videos under $d/video/videos (see the header)" >&2; exit 1; }
done
small="$("$BIN" --workload video --data "$SMALL" | tail -1)"
large="$("$BIN" --workload video --data "$LARGE" | tail -1)"
echo "$small"
echo "$large"
python3 - "$small" "$large" <<'PY'
import json, sys
s, l = (json.loads(a) for a in sys.argv[1:])
print(f"frames {s['frames']} -> {l['frames']} ({l['frames'] / s['frames']:.1f}x), "
      f"peak RSS {s['peak_rss_mb']:.0f} -> {l['peak_rss_mb']:.0f} MB "
      f"(ratio {l['peak_rss_mb'] / s['peak_rss_mb']:.2f}), "
      f"frames with a face {s['frames_with_a_face']} / {l['frames_with_a_face']}, "
      f"{s['frames_per_s']} / {l['frames_per_s']} frames/s")
PY
