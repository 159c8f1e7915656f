#!/usr/bin/env bash
# The cost of If-Match with Postgres: PUT latency without it (durable on disk, then
# write-behind) and with it (a compare-and-set on the Postgres row first), against the
# release daemon and a throwaway local PostgreSQL cluster (results in
# docs/performance.md, "If-Match across instances").
#
#   bench/if_match.sh                      # 5 interleaved rounds of 1000 PUTs of 10 KB per kind
#   BENCH_PUTS=200 BENCH_ROUNDS=3 bench/if_match.sh
#   BENCH_DOC_BYTES=1048576 bench/if_match.sh   # another document size (default 10240)
#   BENCH_KEEP=1 bench/if_match.sh         # keep the temp dirs (config, log, data_dir)
#
# Like bench/postgres.sh: installs postgresql, curl and python3 when missing (as root),
# builds tiercache in release, runs initdb and postgres as the `postgres` user in a temp
# dir listening only on a Unix socket there (never TCP, never the machine's own server),
# fsync and synchronous_commit on, applies schema.sql and registers the project. One
# daemon, one client connection, one request at a time (bench/if_match.py).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PUTS=${BENCH_PUTS:-1000}
ROUNDS=${BENCH_ROUNDS:-5}
DOC_BYTES=${BENCH_DOC_BYTES:-10240}
PROJECT=bench

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
# shellcheck source=bench/pg.sh
source "$ROOT/bench/pg.sh"

pg_tools

log "building tiercache (release)"
(cd "$ROOT" && cargo build --release --quiet -p tiercache --bin tiercache)
BIN="$ROOT/target/release/tiercache"

TMP=$(mktemp -d /tmp/tiercache-ifmatch.XXXXXX)
TC_PID=""
cleanup() {
    if [[ -n $TC_PID ]]; then kill "$TC_PID" 2>/dev/null || true; wait "$TC_PID" 2>/dev/null || true; fi
    pg_cluster_stop
    if [[ -n ${BENCH_KEEP:-} ]]; then log "kept $TMP and ${PGROOT:-}"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

pg_cluster_start bench/if_match.sh

gen_json "$DOC_BYTES" 1 >"$TMP/doc.json"
# start_daemon: the daemon on a free port; returns 1 when the port was taken meanwhile
# (free_port only sees listeners: an outgoing connection's port can still be in use).
start_daemon() {
    TC_PORT=$(free_port)
    URL="http://127.0.0.1:$TC_PORT"
    {
        printf 'project = "%s"\ndata_dir = "%s/data"\n\n' "$PROJECT" "$TMP"
        printf '[log]\nlevel = "warn"\n\n'
        printf '[api]\nlisten = ["127.0.0.1:%s"]\nmax_body = "16MiB"\n\n' "$TC_PORT"
        printf '[postgres]\nenabled = true\nurl = "%s"\n\n' "$PG_URL"
        printf '[[caches]]\nname = "plain"\n\n[[caches]]\nname = "checked"\n'
    } >"$TMP/tiercache.toml"
    (cd "$TMP" && exec "$BIN" run --config "$TMP/tiercache.toml" >>"$TMP/tiercache.log" 2>&1) &
    TC_PID=$!
    for _ in $(seq 400); do
        if curl -fs -o /dev/null "$URL/readyz"; then return 0; fi
        if ! kill -0 "$TC_PID" 2>/dev/null; then
            wait "$TC_PID" || true
            TC_PID=""
            grep -q "Address already in use" "$TMP/tiercache.log" && return 1
            die "tiercache exited: $(tail -5 "$TMP/tiercache.log")"
        fi
        sleep 0.05
    done
    die "tiercache not ready"
}
started=0
for _ in 1 2 3 4 5; do
    if start_daemon; then started=1; break; fi
    log "port $TC_PORT was taken meanwhile; another one"
done
((started)) || die "no free port for the daemon"

log "PUTs of $(stat -c %s "$TMP/doc.json") bytes: $ROUNDS rounds of $PUTS per kind"
python3 "$ROOT/bench/if_match.py" --url "$URL" --doc "$TMP/doc.json" --puts "$PUTS" --rounds "$ROUNDS" |
    tee "$TMP/result.txt"
printf '\nPostgreSQL %s, %s cores, %s\n' "$(psql_q -c 'SHOW server_version')" "$(nproc)" "$(uname -r)"
