#!/usr/bin/env bash
# Fetches scikit-image's sample photographs (chelsea the cat, coffee, the
# astronaut, the rocket, the motorcycle, ...; public domain or CC0, see the
# package's skimage/data/README.txt) from one pinned scikit-image wheel on PyPI
# into models/sample-photos (or $REGATTA_PHOTOS_DIR). The image classification
# and face detection tests and the W8/W9 data generators read them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/fetch_lib.sh
DEST="${REGATTA_PHOTOS_DIR:-$PWD/models/sample-photos}"
PKG="scikit-image==0.24.0"
# The cp311 manylinux wheel, whatever this machine's Python: only its data is used.
WHEEL_SHA256="fa27b3a0dbad807b966b8db2d78da734cb812ca4787f7fbb143764800ce2fa9c"
PHOTOS="astronaut.png camera.png chelsea.png coffee.png motorcycle_left.png rocket.jpg"
declare -A SHA=(
  [astronaut.png]=88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5
  [camera.png]=b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a
  [chelsea.png]=596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb
  [coffee.png]=cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7
  [motorcycle_left.png]=db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179
  [rocket.jpg]=c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c
)

intact() {
  for p in $PHOTOS; do
    [[ -f "$DEST/$p" && "$(sha_of "$DEST/$p")" == "${SHA[$p]}" ]] || return 1
  done
}
if intact; then
  echo "fetch_photos: $DEST is present" >&2
  exit 0
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
wheel_extract fetch_photos "$PKG" "$WHEEL_SHA256" skimage/data/ "$WORK/data" \
  --only-binary :all: --python-version 3.11 --platform manylinux_2_17_x86_64
mkdir -p "$DEST"
for p in $PHOTOS; do
  got="$(sha_of "$WORK/data/$p")"
  if [[ "$got" != "${SHA[$p]}" ]]; then
    echo "fetch_photos: $p has sha256 $got, expected ${SHA[$p]}" >&2
    exit 1
  fi
  mv "$WORK/data/$p" "$DEST/$p"
done
cp "$WORK/data/README.txt" "$DEST/README.txt"
echo "fetch_photos: unpacked into $DEST" >&2
