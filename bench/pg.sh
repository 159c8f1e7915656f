# shellcheck shell=bash
# A throwaway PostgreSQL cluster for the benches that measure against one (sourced after
# bench/lib.sh): Debian's binaries, installed when missing (as root), initdb and postgres
# run as the `postgres` user (they refuse root) in a temp dir, listening only on a Unix
# socket there (never TCP, never the machine's own server), fsync and synchronous_commit
# on as in production, schema.sql applied and the project $PROJECT registered.

IS_ROOT=0
[[ $(id -u) == 0 ]] && IS_ROOT=1

# The newest /usr/lib/postgresql/*/bin with everything the benches run.
pg_bin_dir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x $d/pgbench && -x $d/initdb && -x $d/postgres && -x $d/psql && -x $d/pg_ctl ]]; then
            echo "$d"
            return
        fi
    done
}

# pg_tools: installs what is missing (postgresql, curl, python3); sets PGBIN and as_pg.
pg_tools() {
    local missing=()
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
}

# psql on the cluster as postgres, quiet, unaligned, stopping at the first error.
psql_q() { "$PGBIN/psql" -h "$PGROOT" -p "$PG_PORT" -U postgres -d postgres -X -q -At -v ON_ERROR_STOP=1 "$@"; }

# pg_cluster_start LABEL: the cluster, ready (logs in $TMP); sets PGROOT, PG_PORT, PG_UP
# and PG_URL (the daemon's postgres.url for it). pg_cluster_stop undoes it.
pg_cluster_start() {
    PGROOT=$(mktemp -d /tmp/tiercache-pg.XXXXXX)
    ((IS_ROOT)) && chown postgres: "$PGROOT"
    PGDATA_DIR="$PGROOT/data"
    PG_PORT=$(free_port)
    log "initdb and postgres ($PGBIN) in $PGROOT, Unix socket only, port $PG_PORT"
    as_pg "$PGBIN/initdb" -D "$PGDATA_DIR" -A trust -U postgres -E UTF8 --locale=C >"$TMP/initdb.log" 2>&1 ||
        die "initdb failed: $(tail -5 "$TMP/initdb.log")"
    cat >>"$PGDATA_DIR/postgresql.conf" <<CONF

# $1
listen_addresses = ''
port = $PG_PORT
unix_socket_directories = '$PGROOT'
logging_collector = off
CONF
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGROOT/postgres.log" -w -t 60 start >/dev/null ||
        die "postgres did not start: $(tail -5 "$PGROOT/postgres.log")"
    PG_UP=1
    [[ $(psql_q -c "SHOW fsync") == on && $(psql_q -c "SHOW synchronous_commit") == on ]] ||
        die "fsync or synchronous_commit is not on"
    psql_q -f "$ROOT/schema.sql" >/dev/null
    psql_q -c "INSERT INTO projects (project_name, db_role) VALUES ('$PROJECT', 'postgres')"
    PG_URL="postgres://postgres@/postgres?host=${PGROOT//\//%2F}&port=$PG_PORT"
}

# pg_cluster_stop: stops the cluster (if started) and removes it unless BENCH_KEEP is set.
pg_cluster_stop() {
    if ((${PG_UP:-0})); then as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w stop >/dev/null 2>&1 || true; fi
    PG_UP=0
    if [[ -n ${PGROOT:-} && -z ${BENCH_KEEP:-} ]]; then rm -rf "$PGROOT"; fi
}
