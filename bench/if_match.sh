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
IS_ROOT=0
[[ $(id -u) == 0 ]] && IS_ROOT=1

pg_bin_dir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x $d/initdb && -x $d/postgres && -x $d/psql && -x $d/pg_ctl ]]; then
            echo "$d"
            return
        fi
    done
}
missing=()
[[ -n $(pg_bin_dir) ]] || missing+=(postgresql)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
install_missing "${missing[@]}"
PGBIN=$(pg_bin_dir)
[[ -n $PGBIN ]] || die "no PostgreSQL binaries under /usr/lib/postgresql/*/bin"
if ((IS_ROOT)); then
    id postgres >/dev/null 2>&1 || die "no postgres user (apt-get install postgresql makes it)"
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi

log "building tiercache (release)"
(cd "$ROOT" && cargo build --release --quiet -p tiercache --bin tiercache)
BIN="$ROOT/target/release/tiercache"

TMP=$(mktemp -d /tmp/tiercache-ifmatch.XXXXXX)
PGROOT=$(mktemp -d /tmp/tiercache-pg.XXXXXX)
((IS_ROOT)) && chown postgres: "$PGROOT"
PGDATA_DIR="$PGROOT/data"
TC_PID=""
PG_UP=0
cleanup() {
    if [[ -n $TC_PID ]]; then kill "$TC_PID" 2>/dev/null || true; wait "$TC_PID" 2>/dev/null || true; fi
    if ((PG_UP)); then as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w stop >/dev/null 2>&1 || true; fi
    if [[ -n ${BENCH_KEEP:-} ]]; then log "kept $TMP and $PGROOT"; else rm -rf "$TMP" "$PGROOT"; fi
}
trap cleanup EXIT

PG_PORT=$(free_port)
log "initdb and postgres ($PGBIN) in $PGROOT, Unix socket only, port $PG_PORT"
as_pg "$PGBIN/initdb" -D "$PGDATA_DIR" -A trust -U postgres -E UTF8 --locale=C >"$TMP/initdb.log" 2>&1 ||
    die "initdb failed: $(tail -5 "$TMP/initdb.log")"
cat >>"$PGDATA_DIR/postgresql.conf" <<CONF

# bench/if_match.sh
listen_addresses = ''
port = $PG_PORT
unix_socket_directories = '$PGROOT'
logging_collector = off
CONF
as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGROOT/postgres.log" -w -t 60 start >/dev/null ||
    die "postgres did not start: $(tail -5 "$PGROOT/postgres.log")"
PG_UP=1
psql_q() { "$PGBIN/psql" -h "$PGROOT" -p "$PG_PORT" -U postgres -d postgres -X -q -At -v ON_ERROR_STOP=1 "$@"; }
[[ $(psql_q -c "SHOW fsync") == on && $(psql_q -c "SHOW synchronous_commit") == on ]] ||
    die "fsync or synchronous_commit is not on"
psql_q -f "$ROOT/schema.sql" >/dev/null
psql_q -c "INSERT INTO projects (project_name, db_role) VALUES ('$PROJECT', 'postgres')"
PG_URL="postgres://postgres@/postgres?host=${PGROOT//\//%2F}&port=$PG_PORT"

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
