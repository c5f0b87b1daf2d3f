#!/usr/bin/env bash
# Fetches MTCNN's face detection networks (P-, R- and O-net; MIT) from the PyPI
# package facenet-pytorch and converts them once into models/mtcnn (or
# $REGATTA_MTCNN_DIR) as one model.safetensors. Nothing is downloaded at run time.
# Safe to re-run: an intact copy is kept.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/fetch_lib.sh
DEST="${REGATTA_MTCNN_DIR:-$PWD/models/mtcnn}"
PKG="facenet-pytorch==2.6.0"
WHEEL_SHA256="ecb82b27beb226d106f2219efe8f829b01b87a8595badd01545679bdb9f19cca"
# The converter's output for that input (it is deterministic).
WEIGHTS_SHA256="d673ec90a28d1d640daeb46d51dd932fbe3092b467c9dc6f5d44308b8ef306b5"

if [[ -f "$DEST/model.safetensors" && "$(sha_of "$DEST/model.safetensors")" == "$WEIGHTS_SHA256" ]]; then
  echo "fetch_mtcnn: $DEST is present" >&2
  exit 0
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
wheel_extract fetch_mtcnn "$PKG" "$WHEEL_SHA256" facenet_pytorch/data/ "$WORK/data"
"${PYTHON:-python3}" scripts/mtcnn_convert.py "$WORK/data" "$WORK/out"
got="$(sha_of "$WORK/out/model.safetensors")"
if [[ "$got" != "$WEIGHTS_SHA256" ]]; then
  echo "fetch_mtcnn: the converted model.safetensors has sha256 $got, expected $WEIGHTS_SHA256" >&2
  exit 1
fi
mkdir -p "$DEST"
mv "$WORK/out/model.safetensors" "$DEST/model.safetensors.part"
mv "$DEST/model.safetensors.part" "$DEST/model.safetensors"
echo "fetch_mtcnn: converted into $DEST" >&2
