#!/usr/bin/env bash
# A real local Ray 2.60 cluster for regatta's Ray adapter tests and benchmarks:
# a head and worker nodes on 127.0.0.1, with token auth. Run it inside a network
# namespace (scripts/test does: `unshare --net`), so Ray's listeners see only `lo`.
#
#   scripts/ray-cluster.sh install            # the venv with ray[default]==2.60.0
#   scripts/ray-cluster.sh up                 # head + REGATTA_RAY_WORKER_NODES nodes
#   scripts/ray-cluster.sh add-node I [GPUS]  # worker node I (1..9); GPUS like 3,5 are fake
#   scripts/ray-cluster.sh kill-node I        # SIGKILL every process of node I (a lost machine)
#   scripts/ray-cluster.sh down               # stops exactly the processes this script started
#   scripts/ray-cluster.sh run -- CMD...      # up, CMD with REGATTA_RAY_* set, down; CMD's status
#
# Never `ray stop`: it kills every Ray process on the machine. Each process this
# script starts carries REGATTA_RAY_CI_TAG=<tag>-<node> in its environment; `down`
# and `kill-node` end those and their descendants, and nothing else.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
VENV="${REGATTA_RAY_VENV:-$ROOT/.venv-ray}"
# Short: Ray's socket paths under it must stay below 107 bytes.
DIR="${REGATTA_RAY_DIR:-/tmp/regatta-ray-ci}"
TAG="${REGATTA_RAY_TAG:-regatta-ray-ci}"
NODES="${REGATTA_RAY_WORKER_NODES:-1}"
# The first worker node declares two fake GPUs with these physical ids (set it
# empty for none).
GPU_IDS="${REGATTA_RAY_GPU_IDS-3,5}"
DASHBOARD_PORT=8265
export RAY_USAGE_STATS_ENABLED=0
# Ray's memory monitor would kill workers when cargo builds fill the machine.
export RAY_memory_monitor_refresh_ms=0

log() { echo "ray-cluster: $*" >&2; }

install() {
  if [[ -x "$VENV/bin/ray" ]] && [[ "$("$VENV/bin/ray" --version 2>/dev/null)" == *"2.60.0"* ]]; then
    return 0
  fi
  log "installing ray[default]==2.60.0 into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "ray[default]==2.60.0"
}

token() {
  if [[ ! -s "$DIR/token" ]]; then
    mkdir -p "$DIR"
    python3 -c 'import secrets; print(secrets.token_hex(16))' >"$DIR/token"
  fi
  cat "$DIR/token"
}

# Every pid whose environment carries $1 (a tag prefix), plus their descendants,
# minus this script and its ancestors.
pids_of() {
  python3 - "$1" "$$" <<'PY'
import os, sys
tag, me = sys.argv[1].encode(), int(sys.argv[2])
parent, tagged = {}, set()
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    pid = int(p)
    try:
        with open(f"/proc/{p}/stat", "rb") as f:
            stat = f.read()
        parent[pid] = int(stat[stat.rindex(b")") + 2:].split()[1])
        state = stat[stat.rindex(b")") + 2:].split()[0]
        if state == b"Z":
            continue
        with open(f"/proc/{p}/environ", "rb") as f:
            if any(v.startswith(b"REGATTA_RAY_CI_TAG=" + tag) for v in f.read().split(b"\0")):
                tagged.add(pid)
    except (OSError, ValueError, IndexError):
        pass
ancestors, p = set(), me
while p > 1 and p in parent:
    ancestors.add(p)
    p = parent[p]
found, grew = set(tagged), True
while grew:
    grew = False
    for pid, pp in parent.items():
        if pp in found and pid not in found:
            found.add(pid)
            grew = True
print(" ".join(str(p) for p in sorted(found - ancestors)))
PY
}

# Ends the processes of tag prefix $1: SIGTERM, then SIGKILL after 4 s.
end_tagged() {
  local pids
  pids="$(pids_of "$1")"
  [[ -z "$pids" ]] && return 0
  kill -TERM $pids 2>/dev/null || true
  for _ in $(seq 1 40); do
    pids="$(pids_of "$1")"
    [[ -z "$pids" ]] && return 0
    sleep 0.1
  done
  kill -KILL $pids 2>/dev/null || true
  sleep 0.3
  pids="$(pids_of "$1")"
  if [[ -n "$pids" ]]; then
    log "still alive after SIGKILL: $pids"
    return 1
  fi
}

ray_start() {
  local node="$1"
  shift
  env REGATTA_RAY_CI_TAG="$TAG-$node" PATH="$VENV/bin:$PATH" \
    RAY_AUTH_MODE=token RAY_AUTH_TOKEN="$(token)" \
    "$@" >>"$DIR/$node.log" 2>&1
}

curl_ray() {
  curl -sS --max-time 5 -H "Authorization: Bearer $(token)" "$@"
}

# The ids of the alive nodes, one per line.
alive_ids() {
  curl_ray "http://127.0.0.1:$DASHBOARD_PORT/api/v0/nodes?limit=1000" 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print("\n".join(n["node_id"] for n in d["data"]["result"]["result"] if n["state"]=="ALIVE"))' 2>/dev/null || true
}

alive_nodes() {
  alive_ids | grep -c . || true
}

wait_nodes() {
  local want="$1"
  for _ in $(seq 1 120); do
    [[ "$(alive_nodes)" -ge "$want" ]] && return 0
    sleep 0.5
  done
  log "only $(alive_nodes) of $want nodes came up; logs in $DIR"
  return 1
}

add_node() {
  local i="$1" gpus="${2:-}"
  [[ "$i" =~ ^[1-9]$ ]] || { log "node number $i: use 1..9"; return 1; }
  local before
  before="$(alive_ids)"
  local gpu_args=() gpu_env=()
  if [[ -n "$gpus" ]]; then
    gpu_args=(--num-gpus="$(awk -F, '{print NF}' <<<"$gpus")")
    gpu_env=(CUDA_VISIBLE_DEVICES="$gpus")
  else
    gpu_args=(--num-gpus=0)
  fi
  # Each node gets its own temp dir: nodes on one host sharing one would share
  # runtime_resources/, and a node's runtime-env agent that first meets a
  # working_dir deletes and unpacks it again while another node's worker is
  # starting in it ("cd: ...: No such file or directory", a worker never up).
  ray_start "node$i" env "${gpu_env[@]}" ray start --address=127.0.0.1:6379 --node-ip-address=127.0.0.1 \
    --num-cpus=1 "${gpu_args[@]}" --object-store-memory=100000000 \
    --dashboard-agent-listen-port=$((52365 + i)) \
    --min-worker-port=$((20000 + 1000 * i)) --max-worker-port=$((20999 + 1000 * i)) \
    --disable-usage-stats --temp-dir="$DIR/r-node$i"
  # A node killed a moment ago may still count as alive: wait for a new id.
  for _ in $(seq 1 120); do
    if alive_ids | grep -qvxF -f <(echo "${before:-none}"); then
      log "node $i up${gpus:+ with fake GPUs $gpus}"
      return 0
    fi
    sleep 0.5
  done
  log "node $i did not join; logs in $DIR"
  return 1
}

# The job agent is up only once a probe job runs through.
probe_job() {
  local url="http://127.0.0.1:$DASHBOARD_PORT/api/jobs/"
  for _ in $(seq 1 60); do
    local id
    id="$(curl_ray -H 'Content-Type: application/json' -X POST "$url" \
      -d '{"entrypoint":"true","entrypoint_num_cpus":0}' 2>/dev/null |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["submission_id"])' 2>/dev/null)" || true
    if [[ -n "$id" ]]; then
      for _ in $(seq 1 120); do
        local st
        st="$(curl_ray "$url$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' 2>/dev/null)" || true
        if [[ "$st" == SUCCEEDED ]]; then
          curl_ray -X DELETE "$url$id" >/dev/null
          return 0
        fi
        [[ "$st" == FAILED || "$st" == STOPPED ]] && { log "probe job $id $st"; return 1; }
        sleep 0.25
      done
      log "probe job $id did not finish"
      return 1
    fi
    sleep 0.5
  done
  log "the job agent never took a job; logs in $DIR"
  return 1
}

up() {
  install
  if ! ip -o addr show 2>/dev/null | awk '$2 != "lo"' | grep -q inet; then :; else
    log "warning: this network namespace has interfaces besides lo; Ray will listen beyond loopback"
  fi
  end_tagged "$TAG-" || true
  rm -rf "$DIR"
  mkdir -p "$DIR"
  token >/dev/null
  local started=$SECONDS
  ray_start head ray start --head --node-ip-address=127.0.0.1 --port=6379 --num-cpus=2 --num-gpus=0 \
    --object-store-memory=200000000 --include-dashboard=true --dashboard-host=127.0.0.1 \
    --dashboard-port=$DASHBOARD_PORT --ray-client-server-port=10001 --dashboard-agent-listen-port=52365 \
    --min-worker-port=20000 --max-worker-port=20999 --disable-usage-stats --temp-dir="$DIR/r"
  wait_nodes 1
  for i in $(seq 1 "$NODES"); do
    if [[ "$i" == 1 ]]; then add_node "$i" "$GPU_IDS"; else add_node "$i"; fi
  done
  probe_job
  log "up in $((SECONDS - started)) s: dashboard http://127.0.0.1:$DASHBOARD_PORT, token in $DIR/token"
}

down() {
  end_tagged "$TAG-"
  log "down: no process of $TAG is left"
}

case "${1:-}" in
  install) install ;;
  up) up ;;
  down) down ;;
  add-node) shift; add_node "$@" ;;
  kill-node)
    [[ "${2:-}" =~ ^[1-9]$ ]] || { log "kill-node I: I is 1..9"; exit 2; }
    pids="$(pids_of "$TAG-node$2")"
    [[ -n "$pids" ]] && kill -KILL $pids
    log "killed node $2 (${pids:-nothing})"
    ;;
  run)
    shift
    [[ "${1:-}" == "--" ]] && shift
    up
    status=0
    REGATTA_RAY_ADDRESS="http://127.0.0.1:$DASHBOARD_PORT" REGATTA_RAY_TOKEN="$(token)" \
      REGATTA_RAY_CLUSTER="$ROOT/scripts/ray-cluster.sh" "$@" || status=$?
    down || status=1
    exit "$status"
    ;;
  *)
    sed -n '2,13p' "${BASH_SOURCE[0]}" >&2
    exit 2
    ;;
esac
