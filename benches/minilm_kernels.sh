#!/usr/bin/env bash
# MiniLM alone, side by side (issue 28): sentence-transformers (torch), candle's
# BERT and regatta's CPU kernels (f32 and int8) on the same texts, model files and threads, at
# 256-token and 64-token inputs. Prints each engine's JSON line per length; quote
# the ratios, not seconds.
#   STENV=/tmp/stenv ROUNDS=3 bash benches/minilm_kernels.sh
# STENV: a venv with sentence-transformers (python3 -m venv /tmp/stenv &&
# /tmp/stenv/bin/pip install sentence-transformers). BUILD=release times a
# release build of the example (default: the debug build, whose numeric crates
# are optimised anyway, see Cargo.toml).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
STENV="${STENV:-/tmp/stenv}"
ROUNDS="${ROUNDS:-3}"
THREADS="${THREADS:-$(nproc)}"
BUILD="${BUILD:-debug}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
flag=(); [[ "$BUILD" == release ]] && flag=(--release)
cargo build -q "${flag[@]}" -p regatta-actors --example embed_timing
bin="${CARGO_TARGET_DIR:-target}/$BUILD/examples/embed_timing"
# Texts: words drawn from a fixed English text, seeded; "long" are cut by the
# model at 256 tokens (W6's 2,048-character chunks), "short" hold about 64.
python3 - "$work" <<'PY'
import json, random, sys
words = ("the birch canoe slid on the smooth planks glue the sheet to the dark blue background "
         "it is easy to tell the depth of a well these days a chicken leg is a rare dish rice is "
         "often served in round bowls the juice of lemons makes fine punch the box was thrown "
         "beside the parked truck streaming engines keep memory bounded while every core stays "
         "busy multimodal pipelines read images documents audio and video").split()
rng = random.Random(28)
def text(n):
    return " ".join(rng.choice(words) for _ in range(n))
json.dump([text(rng.randint(260, 320)) for _ in range(256)], open(f"{sys.argv[1]}/long.json", "w"))
json.dump([text(rng.randint(50, 60)) for _ in range(1024)], open(f"{sys.argv[1]}/short.json", "w"))
PY
for length in long short; do
  echo "== $length"
  "$STENV/bin/python" benches/peer/st_embed_file.py "$work/$length.json" "$REGATTA_MINILM_DIR" \
    --threads "$THREADS" --rounds "$ROUNDS" --out "$work/st.json"
  RAYON_NUM_THREADS="$THREADS" "$bin" "$work/$length.json" "$ROUNDS" --compare "$work/st.json"
done
