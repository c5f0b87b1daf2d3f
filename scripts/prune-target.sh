#!/usr/bin/env bash
# Keeps a target directory shared between clones (scripts/env.sh picks
# /var/tmp/regatta-target) from filling its disk: when less than
# REGATTA_PRUNE_FREE_GB (default 20) GiB are free there, it deletes what cargo
# remakes on demand and nothing else: incremental caches and test executables
# not touched for REGATTA_PRUNE_AGE_MIN minutes (default 360). A full disk fails
# more than builds: Ray refuses to create objects above 95 % full.
set -euo pipefail
target="${CARGO_TARGET_DIR:-}"
[[ -n "$target" && -d "$target" ]] || exit 0
want_gb="${REGATTA_PRUNE_FREE_GB:-20}"
age_min="${REGATTA_PRUNE_AGE_MIN:-360}"
free_gb() { df -P -B1G "$target" | awk 'NR == 2 { print $4 }'; }
before="$(free_gb)"
if (( before >= want_gb )); then
  exit 0
fi
for profile in "$target"/*/; do
  if [[ -d "$profile/incremental" ]]; then
    find "$profile/incremental" -mindepth 1 -maxdepth 1 -mmin +"$age_min" -exec rm -rf {} +
  fi
  if [[ -d "$profile/deps" ]]; then
    # Executables only (test binaries); libraries stay, since their
    # fingerprints are what spares a rebuild.
    find "$profile/deps" -maxdepth 1 -type f -perm -u+x ! -name '*.so' ! -name '*.rlib' \
      ! -name '*.rmeta' ! -name '*.d' -mmin +"$age_min" -delete
  fi
done
echo "prune-target: $target: ${before} GiB free -> $(free_gb) GiB (kept anything touched in the last $age_min minutes)" >&2
