# Sourced by the cluster benchmarks: starts a driver and two one-core workers on
# 127.0.0.1 (release binaries; WORKERS=N for another count), stopped when the
# script exits.
#   release_binaries                     sets BIN and CLI (the release regatta-bench and
#                                        regatta, unless set) and a fresh REGATTA_TOKEN;
#                                        exits naming the build command when one is missing.
#   start_cluster OUT_DIR MEMORY_LIMIT   sets DRIVER (host:port); needs CLI and REGATTA_TOKEN.
release_binaries() {
  local target="${CARGO_TARGET_DIR:-$ROOT/target}" f
  BIN="${BIN:-$target/release/regatta-bench}"
  CLI="${CLI:-$target/release/regatta}"
  for f in "$BIN" "$CLI"; do
    [[ -x "$f" ]] || { echo "missing $f: cargo build --release -p regatta-bench -p regatta-cli" >&2; exit 1; }
  done
  export REGATTA_TOKEN="bench-$RANDOM$RANDOM"
}

cluster_pids=()
stop_cluster() {
  for p in "${cluster_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}

start_cluster() {
  local out=$1 limit=$2 i
  "$CLI" driver --bind 127.0.0.1:0 > "$out/driver.log" 2> "$out/driver.err" &
  cluster_pids+=($!)
  for _ in $(seq 1 100); do grep -q "listening on" "$out/driver.log" && break; sleep 0.1; done
  DRIVER="$(grep -m1 "listening on" "$out/driver.log" | awk '{print $NF}')"
  [[ -n "$DRIVER" ]] || { echo "the driver did not start; see $out/driver.err" >&2; exit 1; }
  for i in $(seq 1 "${WORKERS:-2}"); do
    printf '[worker]\ncpus = 1\nmemory_limit = "%s"\n' "$limit" > "$out/worker$i.toml"
    "$CLI" worker -c "$out/worker$i.toml" --driver "$DRIVER" --spill-dir "$out/spill$i" \
      > "$out/worker$i.log" 2> "$out/worker$i.err" &
    cluster_pids+=($!)
  done
  for _ in $(seq 1 100); do
    [[ "$(cat "$out"/worker*.log 2>/dev/null | grep -c "serving shuffle")" == "${WORKERS:-2}" ]] && return 0
    sleep 0.1
  done
  echo "the workers did not start; see $out/worker*.err" >&2
  exit 1
}
