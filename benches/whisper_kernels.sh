#!/usr/bin/env bash
# Whisper tiny.en alone, side by side (issue 28): faster-whisper (CTranslate2, the
# peer W7's Daft pipeline runs) at f32, then regatta's encoder kernels, candle's
# encoder and candle's uncached decoder (examples/whisper_timing), then both at
# int8 (CTranslate2's int8, regatta's int8 dense layers), on the same
# flite-spoken Harvard sentences and threads. Quote the ratios, not seconds.
#   STENV=/tmp/stenv CLIPS=20 bash benches/whisper_kernels.sh
# STENV: a venv with faster-whisper. BUILD=release times a release build of the
# example (default: debug, whose numeric crates are optimised anyway).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
STENV="${STENV:-/tmp/stenv}"
CLIPS="${CLIPS:-20}"
THREADS="${THREADS:-$(nproc)}"
BUILD="${BUILD:-debug}"
CT2="${CT2:-models/whisper-tiny.en-ct2}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
flag=(); [[ "$BUILD" == release ]] && flag=(--release)
cargo build -q "${flag[@]}" -p regatta-actors --example whisper_timing
bin="${CARGO_TARGET_DIR:-target}/$BUILD/examples/whisper_timing"
mapfile -t sentences < <(sed -n 's/^    "\(.*\)",$/\1/p' tests/src/speech.rs | head -n "$CLIPS")
clips=()
for i in "${!sentences[@]}"; do
  flite -t "${sentences[$i]}" -o "$work/c$i.wav"
  clips+=("$work/c$i.wav")
done
"$STENV/bin/python" benches/peer/fw_transcribe.py "$CT2" "${clips[@]}" --threads "$THREADS"
RAYON_NUM_THREADS="$THREADS" "$bin" "${clips[@]}"
# int8 against int8: CTranslate2's int8 and regatta's int8 dense layers.
"$STENV/bin/python" benches/peer/fw_transcribe.py "$CT2" "${clips[@]}" --threads "$THREADS" --compute int8
RAYON_NUM_THREADS="$THREADS" "$bin" --kernels-only --int8 "${clips[@]}"
