#!/usr/bin/env bash
# A real two-node Ray cluster on this one machine, for the cluster tests and benchmarks.
#
#   scripts/ray-cluster.sh up       install ray if missing; start head + worker; print the address
#   scripts/ray-cluster.sh down     stop everything `up` started; remove the netns and temp dirs
#   scripts/ray-cluster.sh status   what is up, and how many nodes the dashboard sees
#   scripts/ray-cluster.sh proxy-hosts   the host:port pairs the worker's proxy lets through
#
# The head runs in this network namespace on a veth address; the worker runs in a network
# namespace of its own (ip netns + veth), with a private mount namespace in which its own temp
# folder is bind-mounted at the head's temp path (non-head nodes take the head's temp path), so
# the two nodes share every other path of the machine (the workspace) but not their Ray state.
# The worker's namespace has no route out: its pip (Ray's runtime_env) reaches the package index
# through a small proxy on the head's address that allows only the index's hosts. Those hosts are
# read from this machine's pip configuration (`pip config list`: PIP_INDEX_URL and
# PIP_EXTRA_INDEX_URL, pip.conf's index-url and extra-index-url; pip's own default index when no
# index-url is set), so a machine behind a corporate index works unchanged. Overrides:
# MLWS_PIP_INDEX_URL (index URLs, separated by spaces or commas, instead of pip's) or
# MLWS_RAY_PROXY_HOSTS (the allow-list itself: host[:port] pairs separated by commas; the port
# defaults to 443).
#
# Each `ray start --block` runs under setsid with its PID in the state folder; `down` signals
# only those sessions and their descendants — never `ray stop`, which kills every Ray process on
# the machine by name. `up` and `down` are idempotent and safe when things are half up.
#
# The cluster runs in Ray's token-auth mode: the token is generated into $STATE/auth_token (mode
# 0600); clients send it as "Authorization: Bearer" (a Ray compute reads it from the environment
# variable its settings.token_env names). MLWS_RAY_AUTH=disabled turns that off.
#
# Environment: MLWS_RAY_STATE (state folder, default /tmp/mlws-ray), MLWS_RAY_NETNS (mlws-ray),
# MLWS_RAY_HEAD_IP (10.203.0.1), MLWS_RAY_WORKER_IP (10.203.0.2), MLWS_RAY_VERSION (2.60.0),
# MLWS_RAY_AUTH (token|disabled), MLWS_PIP_INDEX_URL, MLWS_RAY_PROXY_HOSTS (see above),
# MLWS_RAY_READY_TIMEOUT (120 s).
set -euo pipefail

STATE=$(realpath -m "${MLWS_RAY_STATE:-/tmp/mlws-ray}")
NS=${MLWS_RAY_NETNS:-mlws-ray}
HEAD_IP=${MLWS_RAY_HEAD_IP:-10.203.0.1}
WORKER_IP=${MLWS_RAY_WORKER_IP:-10.203.0.2}
RAY_VERSION=${MLWS_RAY_VERSION:-2.60.0}
AUTH=${MLWS_RAY_AUTH:-token}
VETH_HOST=${NS:0:9}-h0
VETH_NS=${NS:0:9}-w0
GCS_PORT=6379
DASH_PORT=8265
HEAD_TMP=$STATE/t          # short: Ray puts unix sockets under it (108-byte limit)
WORKER_TMP=$STATE/w
TOKEN_FILE=$STATE/auth_token
PROXY_PORT=3128
READY_TIMEOUT=${MLWS_RAY_READY_TIMEOUT:-120}

export RAY_USAGE_STATS_ENABLED=0
export RAY_DISABLE_DOCKER_CPU_WARNING=1
export RAY_STREAM_RUNTIME_ENV_LOG_TO_JOB_DRIVER_LOG=1  # pip's output shows in the job's log

log() { echo "[ray-cluster] $*" >&2; }

proxy_hosts() {  # the proxy's allow-list: MLWS_RAY_PROXY_HOSTS, else from pip's configuration
  local hosts=${MLWS_RAY_PROXY_HOSTS:-}
  if [[ -z "$hosts" ]]; then
    hosts=$(python -m jupyter_mlws.environments.machine pip-index-hosts) || {
      log "could not read the package index from pip's configuration;" \
          "set MLWS_PIP_INDEX_URL or MLWS_RAY_PROXY_HOSTS"
      return 1
    }
  fi
  if [[ -z "$hosts" ]]; then
    log "pip is configured with no network index: the worker's pip can only use local indexes"
  fi
  echo "$hosts"
}

alive() {  # alive PIDFILE -> 0 when the PID in it is a live session leader (ours, not reused)
  local pid
  [[ -f "$1" ]] || return 1
  pid=$(cat "$1")
  [[ "$(ps -o sid= -p "$pid" 2>/dev/null | tr -d ' ')" == "$pid" ]]
}

use_auth() {  # export what the nodes and our probes need; `use_auth new` makes a fresh token
  if [[ "$AUTH" != token ]]; then
    export RAY_AUTH_MODE=disabled
    return
  fi
  if [[ "${1:-}" == new ]] && ! alive "$STATE/head.pid"; then
    (umask 077 && python -c 'import secrets; print(secrets.token_hex(32))' >"$TOKEN_FILE")
  fi
  if [[ -s "$TOKEN_FILE" ]]; then
    export RAY_AUTH_MODE=token
    RAY_AUTH_TOKEN=$(cat "$TOKEN_FILE")
    export RAY_AUTH_TOKEN
  else
    export RAY_AUTH_MODE=disabled  # a head started without a token keeps running without one
  fi
}

ensure_ray() {
  if python -c 'import sys, ray, ray.dashboard, aiohttp; sys.exit(ray.__version__ != sys.argv[1])' \
      "$RAY_VERSION" 2>/dev/null; then
    return
  fi
  log "installing ray[default]==$RAY_VERSION"
  python -m pip install -q "ray[default]==$RAY_VERSION" 2>&1 | grep -v "Running pip as the 'root'" || true
  python -c 'import ray, ray.dashboard' || { log "ray did not install"; exit 1; }
}

ensure_net() {
  command -v ip >/dev/null || { log "the ip command (iproute2) is missing"; exit 1; }
  ip netns list | grep -qw "^$NS" || ip netns add "$NS"
  if ! ip link show "$VETH_HOST" >/dev/null 2>&1 \
      || ! ip netns exec "$NS" ip link show "$VETH_NS" >/dev/null 2>&1; then
    # half made (or left by a crash): start the pair again
    ip link del "$VETH_HOST" 2>/dev/null || true
    ip link del "$VETH_NS" 2>/dev/null || true
    ip netns exec "$NS" ip link del "$VETH_NS" 2>/dev/null || true
    ip link add "$VETH_HOST" type veth peer name "$VETH_NS"
    ip link set "$VETH_NS" netns "$NS"
  fi
  ip addr replace "$HEAD_IP/24" dev "$VETH_HOST"
  ip link set "$VETH_HOST" up
  ip netns exec "$NS" ip addr replace "$WORKER_IP/24" dev "$VETH_NS"
  ip netns exec "$NS" ip link set "$VETH_NS" up
  ip netns exec "$NS" ip link set lo up
}

live_nodes() {  # the IPs of the nodes the dashboard reports ALIVE (exit 2: no answer)
  python - "$HEAD_IP" "$DASH_PORT" <<'PY'
import json, os, sys, urllib.request
req = urllib.request.Request(f"http://{sys.argv[1]}:{sys.argv[2]}/nodes?view=summary")
if os.environ.get("RAY_AUTH_MODE") == "token" and os.environ.get("RAY_AUTH_TOKEN"):
    req.add_header("Authorization", "Bearer " + os.environ["RAY_AUTH_TOKEN"])
try:
    with urllib.request.urlopen(req, timeout=3) as r:
        data = json.load(r)
except Exception:
    sys.exit(2)
for n in data.get("data", {}).get("summary", []):
    if n.get("raylet", {}).get("state") == "ALIVE":
        print(n.get("ip"))
PY
}

wait_gcs() {  # the head's GCS port accepts connections (the worker can join)
  local deadline=$((SECONDS + READY_TIMEOUT))
  while (( SECONDS < deadline )); do
    if (exec 3<>"/dev/tcp/$HEAD_IP/$GCS_PORT") 2>/dev/null; then return 0; fi
    node_exited head || return 1
    sleep 0.5
  done
  log "timed out after ${READY_TIMEOUT}s waiting for the head's GCS port"
  return 1
}

wait_nodes() {  # until both nodes have started and the dashboard reports both alive
  local deadline=$((SECONDS + READY_TIMEOUT)) ips
  while (( SECONDS < deadline )); do
    # "Ray runtime started" is printed by *this* `ray start` (a node that died a moment ago
    # may still be listed as alive until the head misses its heartbeats)
    if grep -q "Ray runtime started" "$STATE/head.log" 2>/dev/null \
        && grep -q "Ray runtime started" "$STATE/worker.log" 2>/dev/null; then
      ips=$(live_nodes 2>/dev/null || true)
      if grep -qx "$HEAD_IP" <<<"$ips" && grep -qx "$WORKER_IP" <<<"$ips"; then return 0; fi
    fi
    node_exited head || return 1
    node_exited worker || return 1
    sleep 1
  done
  log "timed out after ${READY_TIMEOUT}s waiting for both nodes; see $STATE/*.log"
  return 1
}

node_exited() {  # fails (with the log's tail) when the node has exited
  if alive "$STATE/$1.pid"; then return 0; fi
  log "the $1 exited; the end of $STATE/$1.log:"
  tail -20 "$STATE/$1.log" >&2 || true
  return 1
}

start_head() {
  if alive "$STATE/head.pid"; then return; fi
  rm -rf "$HEAD_TMP"; mkdir -p "$HEAD_TMP"
  log "starting the head on $HEAD_IP"
  setsid ray start --head --block --disable-usage-stats \
      --node-ip-address "$HEAD_IP" --port "$GCS_PORT" \
      --dashboard-host "$HEAD_IP" --dashboard-port "$DASH_PORT" --include-dashboard true \
      --num-cpus 1 --num-gpus 0 --resources '{"head": 1}' \
      --object-store-memory 200000000 --temp-dir "$HEAD_TMP" \
      </dev/null >"$STATE/head.log" 2>&1 &
  echo $! >"$STATE/head.pid"
}

start_proxy() {  # the worker's only way to the package index (only PROXY_HOSTS, host:port)
  if alive "$STATE/proxy.pid"; then return; fi
  local hosts
  hosts=$(proxy_hosts) || return 1
  log "the worker's proxy allows: ${hosts:-nothing}"
  cat >"$STATE/pip-proxy.py" <<'PY'
import socket, sys, threading
from urllib.parse import urlsplit
host, port = sys.argv[1], int(sys.argv[2])
allowed = {h if h.rpartition(":")[2].isdigit() else f"{h}:443" for h in sys.argv[3].split(",") if h}

def pipe(a, b):
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

def refuse(client):
    client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

def plain_http(client, method, target, version, rest):
    # one GET/HEAD of an allowed http:// index, sent upstream in origin form, then close
    url = urlsplit(target.decode("latin-1"))
    name, p = url.hostname or "", url.port or 80
    if url.scheme != "http" or method not in (b"GET", b"HEAD") or f"{name}:{p}" not in allowed:
        return refuse(client)
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    keep = [h for h in rest.split(b"\r\n") if h and not h.lower().startswith(
        (b"connection:", b"proxy-connection:", b"keep-alive:", b"proxy-authorization:"))]
    head = b"\r\n".join([b" ".join([method, path.encode("latin-1"), version]), *keep,
                          b"Connection: close"]) + b"\r\n\r\n"
    upstream = socket.create_connection((name, p), timeout=30)
    upstream.settimeout(None)
    upstream.sendall(head)
    pipe(upstream, client)

def handle(client):
    try:
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            chunk = client.recv(4096)
            if not chunk:
                return
            head += chunk
        line, _, rest = head.split(b"\r\n\r\n", 1)[0].partition(b"\r\n")
        method, target, version = (line.split(b" ", 2) + [b"", b""])[:3]
        if method != b"CONNECT":
            return plain_http(client, method, target, version, rest)
        name, _, p = target.decode("latin-1").rpartition(":")
        if f"{name}:{p}" not in allowed:
            return refuse(client)
        upstream = socket.create_connection((name.strip("[]"), int(p)), timeout=30)
        upstream.settimeout(None)
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)
    except Exception as exc:
        print("proxy:", exc, file=sys.stderr, flush=True)
    finally:
        client.close()

server = socket.create_server((host, port))
while True:
    conn, _ = server.accept()
    threading.Thread(target=handle, args=(conn,), daemon=True).start()
PY
  setsid python "$STATE/pip-proxy.py" "$HEAD_IP" "$PROXY_PORT" "$hosts" \
      </dev/null >"$STATE/proxy.log" 2>&1 &
  echo $! >"$STATE/proxy.pid"
}

start_worker() {
  if alive "$STATE/worker.pid"; then return; fi
  rm -rf "$WORKER_TMP"; mkdir -p "$WORKER_TMP" "$HEAD_TMP"
  log "starting the worker on $WORKER_IP (network namespace $NS)"
  # `ip netns exec` and `unshare` exec in place, so $! is the `ray start` process. unshare -m
  # with private propagation keeps the bind mount of the worker's temp folder to the worker.
  PIP_PROXY="http://$HEAD_IP:$PROXY_PORT" setsid ip netns exec "$NS" \
    unshare --mount --propagation private sh -c '
      mount --bind "$1" "$2" && exec ray start --block --disable-usage-stats \
        --address "$3" --node-ip-address "$4" \
        --num-cpus 1 --num-gpus 0 --resources "{\"worker\": 1}" \
        --object-store-memory 200000000' \
      sh "$WORKER_TMP" "$HEAD_TMP" "$HEAD_IP:$GCS_PORT" "$WORKER_IP" \
      </dev/null >"$STATE/worker.log" 2>&1 &
  echo $! >"$STATE/worker.pid"
}

tree_pids() {  # the processes of session $1 and all their descendants
  ps -eo pid=,ppid=,sid= | awk -v s="$1" '
    { pid[NR] = $1; ppid[NR] = $2; sid[NR] = $3 }
    END {
      for (i = 1; i <= NR; i++) if (sid[i] == s) keep[pid[i]] = 1
      do { added = 0
        for (i = 1; i <= NR; i++)
          if ((ppid[i] in keep) && !(pid[i] in keep)) { keep[pid[i]] = 1; added = 1 }
      } while (added)
      for (p in keep) print p
    }'
}

stop_pid() {  # stop_pid NAME: SIGTERM the node and everything it started, then SIGKILL
  local f="$STATE/$1.pid" pid i pids still=""
  [[ -f "$f" ]] || return 0
  pid=$(cat "$f")
  if alive "$f"; then
    # its session and everything below it (job entrypoints run in sessions of their own)
    pids=$(tree_pids "$pid")
    log "stopping the $1 (pid $pid, $(echo "$pids" | wc -w) processes)"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    pids="$pids $(tree_pids "$pid")"
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    for i in $(seq 1 20); do
      still=$(for p in $pids; do if kill -0 "$p" 2>/dev/null; then echo "$p"; fi; done)
      [[ -z "$still" ]] && break
      sleep 0.25
    done
    # shellcheck disable=SC2086
    if [[ -n "$still" ]]; then kill -KILL $still 2>/dev/null || true; fi
  fi
  rm -f "$f"
}

cmd_up() {
  mkdir -p "$STATE"
  cd "$STATE"  # the nodes' working folder: no job may depend on where `up` was run
  ensure_ray
  ensure_net
  if ! alive "$STATE/head.pid"; then stop_pid worker; fi  # it belonged to a head now gone
  use_auth new
  start_head
  wait_gcs || { cmd_down; exit 1; }
  start_proxy || { cmd_down; exit 1; }
  start_worker
  wait_nodes || { cmd_down; exit 1; }
  log "two nodes alive: head $HEAD_IP (resource head), worker $WORKER_IP (resource worker)"
  [[ "$AUTH" == token ]] && log "token auth: the token is in $TOKEN_FILE"
  echo "http://$HEAD_IP:$DASH_PORT"
}

cmd_down() {
  stop_pid worker
  stop_pid head
  stop_pid proxy
  if mountpoint -q "$HEAD_TMP" 2>/dev/null; then umount "$HEAD_TMP" || true; fi
  ip link del "$VETH_HOST" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$HEAD_TMP" "$WORKER_TMP" "$STATE/pip-proxy.py" "$TOKEN_FILE"
  log "down"
}

cmd_status() {
  local h=down w=down p=down ips
  use_auth
  alive "$STATE/head.pid" && h="up (pid $(cat "$STATE/head.pid"))"
  alive "$STATE/worker.pid" && w="up (pid $(cat "$STATE/worker.pid"))"
  alive "$STATE/proxy.pid" && p="up (pid $(cat "$STATE/proxy.pid"))"
  echo "head:   $h"
  echo "worker: $w"
  echo "proxy:  $p"
  echo "netns:  $(ip netns list 2>/dev/null | grep -qw "^$NS" && echo "$NS" || echo none)"
  echo "auth:   $([[ -s "$TOKEN_FILE" ]] && echo "token ($TOKEN_FILE)" || echo none)"
  if ips=$(live_nodes 2>/dev/null); then
    echo "dashboard: http://$HEAD_IP:$DASH_PORT (alive: $(echo $ips))"
    alive "$STATE/head.pid" && alive "$STATE/worker.pid" \
      && grep -qx "$HEAD_IP" <<<"$ips" && grep -qx "$WORKER_IP" <<<"$ips"
  else
    echo "dashboard: unreachable"
    return 1
  fi
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  proxy-hosts) proxy_hosts ;;
  *) echo "usage: $0 up|down|status|proxy-hosts" >&2; exit 2 ;;
esac
