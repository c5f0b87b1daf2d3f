#!/usr/bin/env bash
# Installs what building and testing regatta needs on a Debian machine: protoc
# (required by Lance's build), FFmpeg's libraries and libclang (video), Chromium and
# its driver (the dashboard's browser tests), and mold (an optional, faster
# linker). Safe to re-run.
set -euo pipefail
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
apt_install() {
  $SUDO apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust from https://rustup.rs" >&2
  exit 1
fi
if ! command -v protoc >/dev/null 2>&1; then
  echo "setup: installing protobuf-compiler (Lance's build needs protoc)" >&2
  apt_install protobuf-compiler || {
    echo "setup: could not install protobuf-compiler; install protoc and set PROTOC" >&2
    exit 1
  }
fi
if ! command -v mold >/dev/null 2>&1; then
  echo "setup: installing mold (faster linking; optional)" >&2
  apt_install mold || echo "setup: mold not installed; linking with the default linker" >&2
fi
if ! command -v openssl >/dev/null 2>&1; then
  echo "setup: installing openssl (the TLS test makes its certificates with it)" >&2
  apt_install openssl || {
    echo "setup: could not install openssl; the TLS test needs it" >&2
    exit 1
  }
fi
# The Ray tests: curl (Ray's REST API from the scripts), ip (loopback in their
# network namespace) and python3-venv (Ray's virtual environment).
for tool in curl:curl ip:iproute2; do
  if ! command -v "${tool%%:*}" >/dev/null 2>&1; then
    echo "setup: installing ${tool#*:} (the Ray tests need ${tool%%:*})" >&2
    apt_install "${tool#*:}" || { echo "setup: could not install ${tool#*:}" >&2; exit 1; }
  fi
done
if ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then
  echo "setup: installing python3-venv (the Ray tests make a virtual environment)" >&2
  apt_install python3-venv || { echo "setup: could not install python3-venv" >&2; exit 1; }
fi
# The dashboard's browser tests drive Debian's headless Chromium through its
# WebDriver (chromedriver), both from Debian's packages.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "setup: installing chromium and chromium-driver (the dashboard's browser tests)" >&2
  apt_install chromium chromium-driver || {
    echo "setup: could not install chromium and chromium-driver; the dashboard tests need them" >&2
    exit 1
  }
fi
# The object-store tests' S3-compatible server: s3s-fs from crates.io, built
# once into a directory outside the clone (scripts/env.sh points the tests at it).
S3S_VERSION=0.14.1
S3S_ROOT="${REGATTA_TOOLS_DIR:-/var/tmp/regatta-tools}/s3s-fs-$S3S_VERSION"
if [[ ! -x "$S3S_ROOT/bin/s3s-fs" ]]; then
  echo "setup: building the s3s-fs $S3S_VERSION S3 server for the object-store tests (a few minutes, once)" >&2
  mkdir -p "$S3S_ROOT"
  cargo install s3s-fs --version "$S3S_VERSION" --features binary --locked --root "$S3S_ROOT" --quiet
fi
# Video frames are decoded by FFmpeg's libraries (ffmpeg-next binds them at build
# time through bindgen, which needs libclang and pkg-config).
if ! pkg-config --exists libavcodec libavformat libavutil libswscale 2>/dev/null ||
  [[ -z "$(ls /usr/lib/llvm-*/lib/libclang*.so* 2>/dev/null)" ]]; then
  echo "setup: installing FFmpeg's development libraries and libclang (video decoding)" >&2
  apt_install pkg-config libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libclang-dev || {
    echo "setup: could not install libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libclang-dev pkg-config" >&2
    exit 1
  }
fi
# The audio tests make their WAV, FLAC, MP3 and Ogg Vorbis clips with FFmpeg.
if ! command -v ffmpeg >/dev/null 2>&1; then
  echo "setup: installing ffmpeg (the audio tests encode their clips with it)" >&2
  apt_install ffmpeg || { echo "setup: could not install ffmpeg" >&2; exit 1; }
fi
# The document tests make PDFs with real producers: cairo (pango-view), Ghostscript
# (enscript | ps2pdf) and fpdf2 (PyPI, in scripts/test's virtual environment) with
# DejaVu Sans; the speech tests synthesise sentences with flite.
for tool in pango-view:pango1.0-tools enscript:enscript ps2pdf:ghostscript flite:flite; do
  if ! command -v "${tool%%:*}" >/dev/null 2>&1; then
    echo "setup: installing ${tool#*:} (the document and speech tests need ${tool%%:*})" >&2
    apt_install "${tool#*:}" || { echo "setup: could not install ${tool#*:}" >&2; exit 1; }
  fi
done
if [[ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]]; then
  echo "setup: installing fonts-dejavu-core (the document tests embed DejaVu Sans)" >&2
  apt_install fonts-dejavu-core || { echo "setup: could not install fonts-dejavu-core" >&2; exit 1; }
fi
