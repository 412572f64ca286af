#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the store's contract tests, and print its URL.
#
#   bash scripts/postgres-up.sh [DIR]     start (or find running) the server kept in DIR
#   bash scripts/postgres-up.sh down DIR  stop it (DIR is left for the caller to remove)
#
# DIR defaults to a new temp folder. The server listens on a free port of 127.0.0.1 only, with
# its socket in DIR and trust authentication for the `postgres` user: it is for tests, never for
# data. Idempotent: a server already running in DIR is reused and its URL printed again.
# The last line printed is the SQLAlchemy URL, e.g. postgresql+psycopg://postgres@127.0.0.1:PORT/postgres
#
# Finds initdb/pg_ctl on PATH, else in the newest /usr/lib/postgresql/*/bin (Debian's layout);
# PG_BIN overrides. Runs the server as the `postgres` user when started as root (initdb refuses
# root). Exit 2: PostgreSQL is not installed.
set -euo pipefail

find_bin() {
    if [[ -n "${PG_BIN:-}" ]]; then echo "$PG_BIN"; return; fi
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v pg_ctl)"; return
    fi
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    [[ -n "$d" ]] && echo "$d"
}

BIN=$(find_bin || true)
if [[ -z "$BIN" || ! -x "$BIN/pg_ctl" ]]; then
    echo "postgres-up: PostgreSQL (initdb, pg_ctl) not found; on Debian: apt-get install postgresql" >&2
    exit 2
fi

as_pg() {  # run a command as the server's owner
    if [[ $EUID -eq 0 ]]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
}

if [[ "${1:-}" == "down" ]]; then
    DIR="${2:?usage: postgres-up.sh down DIR}"
    if [[ -f "$DIR/data/postmaster.pid" ]]; then
        as_pg "'$BIN/pg_ctl' -D '$DIR/data' -m immediate -w stop" >/dev/null 2>&1 || true
    fi
    exit 0
fi

DIR="${1:-$(mktemp -d "${TMPDIR:-/tmp}/mlws-pg.XXXXXX")}"
mkdir -p "$DIR"
[[ $EUID -eq 0 ]] && chown postgres "$DIR"

if [[ -f "$DIR/url" ]] && as_pg "'$BIN/pg_ctl' -D '$DIR/data' status" >/dev/null 2>&1; then
    cat "$DIR/url"
    exit 0
fi

if [[ ! -f "$DIR/data/PG_VERSION" ]]; then
    as_pg "'$BIN/initdb' -D '$DIR/data' -A trust -U postgres" >"$DIR/initdb.log" 2>&1 || {
        cat "$DIR/initdb.log" >&2; exit 1; }
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
started=""
for _try in 1 2 3; do  # another program may take the port between choosing and binding it
    PORT=$(free_port)
    # fsync off: a throwaway server for tests
    OPTS="-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    if as_pg "'$BIN/pg_ctl' -D '$DIR/data' -o '$OPTS' -l '$DIR/log' -w -t 60 start" >/dev/null; then
        started=1
        break
    fi
done
if [[ -z "$started" ]]; then
    tail -n 20 "$DIR/log" >&2
    exit 1
fi
URL="postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"
echo "$URL" >"$DIR/url"
echo "$URL"
