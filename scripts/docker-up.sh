#!/usr/bin/env bash
# Make sure a Docker engine answers `docker info` on this machine (Debian 12), and that
# debootstrap is there to make the offline base images (see jupyter_mlws/environments/bootstrap.py).
#
# Idempotent: returns at once when the engine already answers. Otherwise it installs what is
# missing from Debian (docker.io, debootstrap), starts dockerd in the background (it outlives this
# script; log in ${TMPDIR:-/tmp}/mlws-dockerd.log) and waits until it answers.
#
# Storage driver: dockerd's default (overlay2 on the ext4 root of the build machines, verified).
# Only if dockerd dies with a storage/graphdriver error is it restarted with --storage-driver=vfs
# (works everywhere, but copies every layer in full: slower and bigger). Force a driver with
# MLWS_DOCKER_STORAGE_DRIVER=vfs|overlay2|... .
#
# Environment: DOCKER_UP_TIMEOUT (seconds to wait for the engine, default 60).
set -euo pipefail

LOG="${TMPDIR:-/tmp}/mlws-dockerd.log"
TIMEOUT="${DOCKER_UP_TIMEOUT:-60}"
PIDFILE=/var/run/docker.pid

export PATH="$PATH:/usr/sbin:/sbin"   # dockerd and debootstrap live in sbin
SUDO=()
if [[ $EUID -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=(sudo -n); else
        echo "docker-up: must run as root (or with passwordless sudo)" >&2; exit 1
    fi
fi

now_us() { echo "${EPOCHREALTIME/[.,]/}"; }
since() { local d=$((($(now_us) - $1) / 100000)); echo "$((d / 10)).$((d % 10))s"; }
join() { local IFS=';'; local s="$*"; echo "${s//;/; }"; }
engine_ok() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

if engine_ok && command -v debootstrap >/dev/null 2>&1; then
    echo "docker-up: engine already running ($(docker info --format '{{.Driver}}' 2>/dev/null))"
    exit 0
fi

# Serialize concurrent runs (parallel CI steps): the second one waits and then finds the engine up.
exec 9>"${TMPDIR:-/tmp}/mlws-docker-up.lock"
flock -w 300 9
if engine_ok && command -v debootstrap >/dev/null 2>&1; then
    echo "docker-up: engine already running ($(docker info --format '{{.Driver}}' 2>/dev/null))"
    exit 0
fi

did=()

# --- install what is missing ----------------------------------------------------------------------
missing=()
engine_ok || command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if ((${#missing[@]})); then
    t0=$(now_us) apt_log="${TMPDIR:-/tmp}/mlws-docker-apt.log"
    if ! { "${SUDO[@]}" apt-get update -q \
        && "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"; } \
        >"$apt_log" 2>&1; then
        echo "docker-up: installing ${missing[*]} failed; last lines of $apt_log:" >&2
        tail -n 30 "$apt_log" >&2; exit 1
    fi
    did+=("installed ${missing[*]} in $(since "$t0")")
fi

if engine_ok; then   # e.g. the package's systemd unit started it
    echo "docker-up: $(join "${did[@]}"); engine running ($(docker info --format '{{.Driver}}'))"
    exit 0
fi

# --- start dockerd --------------------------------------------------------------------------------
dockerd_pid() {   # pid of a live dockerd from the pid file, else nothing
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null || true)
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && grep -q dockerd "/proc/$pid/comm" 2>/dev/null; then
        echo "$pid"
    fi
}

start_dockerd() {   # args: extra dockerd flags; sets DOCKERD_PID
    : >"$LOG"
    # setsid + nohup: own session, immune to the hang-up when this shell/CI step ends.
    "${SUDO[@]}" setsid nohup dockerd "$@" >>"$LOG" 2>&1 </dev/null 9>&- &   # 9>&-: not the lock
    DOCKERD_PID=$!
}

wait_engine() {   # arg: pid to watch. 0 = answers, 1 = dockerd died, 2 = timed out
    local deadline=$((SECONDS + TIMEOUT))
    while ((SECONDS < deadline)); do
        engine_ok && return 0
        if ! kill -0 "$1" 2>/dev/null && [[ -z "$(dockerd_pid)" ]]; then
            engine_ok && return 0
            return 1
        fi
        sleep 0.5
    done
    return 2
}

fail() {
    echo "docker-up: $1; last lines of $LOG:" >&2
    tail -n 300 "$LOG" | grep -v 'module=grpc' | tail -n 25 >&2 || true
    exit 1
}

t0=$(now_us)
if [[ -n "$(dockerd_pid)" ]]; then
    DOCKERD_PID=$(dockerd_pid)
    did+=("waited for the dockerd already starting (pid $DOCKERD_PID)")
else
    flags=()
    [[ -n "${MLWS_DOCKER_STORAGE_DRIVER:-}" ]] && flags+=(--storage-driver="$MLWS_DOCKER_STORAGE_DRIVER")
    start_dockerd "${flags[@]}"
    did+=("started dockerd${flags[*]:+ ${flags[*]}}")
fi
rc=0; wait_engine "$DOCKERD_PID" || rc=$?
if ((rc == 1)) && [[ -z "${MLWS_DOCKER_STORAGE_DRIVER:-}" ]] \
    && grep -qiE 'graphdriver|storage.driver|overlay' "$LOG"; then
    cp "$LOG" "$LOG.default-driver"
    start_dockerd --storage-driver=vfs
    did+=("(default storage driver failed, see $LOG.default-driver) restarted with --storage-driver=vfs")
    rc=0; wait_engine "$DOCKERD_PID" || rc=$?
fi
((rc == 0)) || fail "dockerd $([[ $rc == 1 ]] && echo exited || echo "did not answer within ${TIMEOUT}s")"

echo "docker-up: $(join "${did[@]}"); engine up in $(since "$t0"), driver $(docker info --format '{{.Driver}}'), log $LOG"
