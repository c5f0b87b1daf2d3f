#!/usr/bin/env bash
# Fetches libpdfium.so (PDFium build 8149) from the PyPI wheel pypdfium2 5.15.2
# (Apache-2.0 / BSD-3-Clause) into models/pdfium (or $REGATTA_PDFIUM_DIR).
# pdf_pages uses it for the PDFs the pure-Rust extractor reads wrong (see
# docs/documents.md); without it those PDFs fall back to the pure-Rust path.
# Linux x86_64 only (the wheel is per platform). Safe to re-run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/fetch_lib.sh
DEST="${REGATTA_PDFIUM_DIR:-$PWD/models/pdfium}"
PKG="pypdfium2==5.15.2"
WHEEL_SHA256="dc31aea5b0fb9fefc9b537a65f4113980b2c40798445736a7e6565bc85161e37"
LIB_SHA256="c76dc0f7839644bfa7c3e3107a6068df714e339c861bb7d4519907b821d427f9"
if [[ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]]; then
  echo "fetch_pdfium: the pinned wheel is for Linux x86_64, not $(uname -s)-$(uname -m); set REGATTA_PDFIUM_DIR to a directory holding libpdfium" >&2
  exit 1
fi
if [[ -f "$DEST/libpdfium.so" && "$(sha_of "$DEST/libpdfium.so")" == "$LIB_SHA256" ]]; then
  echo "fetch_pdfium: $DEST is present" >&2
  exit 0
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
wheel_extract fetch_pdfium "$PKG" "$WHEEL_SHA256" pypdfium2_raw/ "$WORK"
got="$(sha_of "$WORK/libpdfium.so")"
if [[ "$got" != "$LIB_SHA256" ]]; then
  echo "fetch_pdfium: libpdfium.so has sha256 $got, expected $LIB_SHA256" >&2
  exit 1
fi
mkdir -p "$DEST"
mv "$WORK/libpdfium.so" "$DEST/libpdfium.so.part"
mv "$DEST/libpdfium.so.part" "$DEST/libpdfium.so"
echo "fetch_pdfium: unpacked into $DEST" >&2
