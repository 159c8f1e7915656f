#!/usr/bin/env bash
# tiercache's Postgres tier and retry queue, side by side with their anchors, in one go
# (results in docs/performance.md, "Postgres tier and retry queue").
#
#   bench/postgres.sh                      # everything; prints two tables at the end
#   BENCH_ONLY=startup bench/postgres.sh   # some parts only: upsert read storm startup
#   BENCH_STARTUP_ROUNDS=5 bench/postgres.sh   # start-from-scratch rounds against psql COPY (default 3)
#   BENCH_PG_SECONDS=5 bench/postgres.sh   # upsert time per side (default 10, in BENCH_PG_ROUNDS=5 slices)
#   BENCH_STORM_SAVES=2000 bench/postgres.sh   # a smaller storm (default 10000)
#   BENCH_BIN=/tmp/tiercache-old bench/postgres.sh   # measure this binary instead of building one
#   BENCH_BIN_BEFORE=/tmp/tiercache-old bench/postgres.sh   # startup: also that binary, in the same rounds
#   BENCH_KEEP=1 bench/postgres.sh         # keep the temp dirs (pgbench logs, configs, outputs)
#
# Installs what it needs when missing (Debian's postgresql for initdb/postgres/pgbench,
# curl, python3; as root), builds tiercache in release and the store_upsert bench, then
# makes a throwaway PostgreSQL cluster in a temp dir owned by the `postgres` user (initdb
# and postgres refuse root), listening only on a Unix socket in that dir (never TCP, never
# the machine's own server on 5432), with fsync on and the default synchronous_commit, so
# every commit is durable as in production. schema.sql is applied with psql and the
# project `bench` registered. Then:
#   1. upserts of a 10 KB JSONB document on one connection: pgbench running the daemon's
#      own version-guarded upsert (actors/src/store/sql.rs UPSERT, -M prepared) and
#      actors/benches/store_upsert.rs, which calls StoreHandle::write in a loop through
#      the store actor built as the daemon builds it (pool_size 1, statement cache on),
#      in interleaved slices (medians reported). Both sides send the same bytes and an
#      increasing version from the client (pgbench: `\set v :v + 1`, from the epoch in
#      microseconds), so the version guard lets every write through;
#   2. reads of a 10 KB and a 1 MB row into the file tier (StoreHandle::read with its
#      checksum verification, then the envelope written durably) vs pgbench selecting
#      the same row with the daemon's column list;
#   3. a storm of 10,000 PUTs of 10 KB round-robin over 10 caches (8 keep-alive
#      connections, bench/put_storm.py) against the release daemon: acknowledged saves/s,
#      Postgres writes made (coalescing), queue depth and oldest age at the end, drain
#      time, RSS; with Postgres disabled, with Postgres as it is, and with Postgres slowed
#      by a trigger that sleeps BENCH_PG_SLOW seconds (0.02) BEFORE INSERT OR UPDATE on
#      cache_storage (an upsert of an existing row fires both, so it waits twice);
#   4. startup: BENCH_STARTUP_CACHES (100) caches of 1 MB saved and drained to Postgres,
#      then the time from exec to /readyz answering 200, with the files in sync and with
#      data_dir removed (every file rewritten from Postgres before ready), the latter in
#      BENCH_STARTUP_ROUNDS rounds interleaved with `psql -c "COPY (SELECT ...) TO STDOUT"`
#      of the same rows' columns into a file (the database's own export speed).
# The cluster is stopped and removed at the end. Everything shares the same cores:
# compare the ratios of one run, not absolute numbers across runs.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_UPSERT=${BENCH_PG_SECONDS:-10}
ROUNDS=${BENCH_PG_ROUNDS:-5}
READ_ITERS=${BENCH_READ_ITERS:-50}
STORM_SAVES=${BENCH_STORM_SAVES:-10000}
STORM_CACHES=${BENCH_STORM_CACHES:-10}
STORM_CONNECTIONS=${BENCH_STORM_CONNECTIONS:-8}
SLOW=${BENCH_PG_SLOW:-0.02}
STARTUP_CACHES=${BENCH_STARTUP_CACHES:-100}
STARTUP_ROUNDS=${BENCH_STARTUP_ROUNDS:-3}
ONLY=${BENCH_ONLY:-upsert,read,storm,startup}
PROJECT=bench
# part NAME: whether BENCH_ONLY asks for it.
part() { [[ ,$ONLY, == *,$1,* ]]; }

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
# shellcheck source=bench/pg.sh
source "$ROOT/bench/pg.sh"

# --- what we compare against ------------------------------------------------------
pg_tools

# --- build ----------------------------------------------------------------------------
log "building tiercache (release) and the store_upsert bench"
[[ -n ${BENCH_BIN:-} ]] || (cd "$ROOT" && cargo build --release --quiet -p tiercache --bin tiercache)
# Run the bench's executable itself: a source edit by someone else meanwhile must not
# make cargo rebuild it in the middle of the measurements.
STORE_UPSERT=""
if part upsert || part read; then
STORE_UPSERT=$(cd "$ROOT" && cargo bench --no-run --message-format=json -p tiercache-actors --bench store_upsert 2>/dev/null |
    grep -o '"executable":"[^"]*store_upsert[^"]*"' | tail -1 | cut -d'"' -f4)
[[ -x $STORE_UPSERT ]] || die "cannot find the store_upsert bench executable"
fi
BIN=${BENCH_BIN:-$ROOT/target/release/tiercache}

TMP=$(mktemp -d /tmp/tiercache-pgbench.XXXXXX)
TC_PID=""
cleanup() {
    if [[ -n $TC_PID ]]; then kill "$TC_PID" 2>/dev/null || true; wait "$TC_PID" 2>/dev/null || true; fi
    pg_cluster_stop
    if [[ -n ${BENCH_KEEP:-} ]]; then log "kept $TMP and ${PGROOT:-}"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

# --- the throwaway cluster -------------------------------------------------------------
pg_cluster_start bench/postgres.sh
PID_PROJECT=$(psql_q -c "SELECT id FROM projects WHERE project_name = '$PROJECT'")
PG_VERSION=$(psql_q -c "SHOW server_version")

mkdir -p "$TMP/docs"
gen_json 10240 1 >"$TMP/docs/k10.json"
gen_json 1048576 2 >"$TMP/docs/m1.json"
K10_BYTES=$(stat -c %s "$TMP/docs/k10.json")
K10_SUM="sha256:$(sha256sum "$TMP/docs/k10.json" | cut -d' ' -f1)"
cp "$TMP/docs/k10.json" "$PGROOT/k10.json"

# --- pgbench ------------------------------------------------------------------------------
# The daemon's write (WRITE_CACHE in actors/src/store/sql.rs: the version guard of the
# schema's tiercache_write_cache), parameter for parameter; last_fetch and
# last_rich_fetch are NULL as for a PUT.
cat >"$PGROOT/upsert.sql" <<'EOF'
\set v :v + 1
SELECT written, row_version, row_checksum FROM tiercache_write_cache(
    :pid, :name, :doc::text::jsonb, :v, :checksum, NULL, NULL, :saved, :size, 30, NULL);
EOF
# The daemon's read_one (same columns).
cat >"$PGROOT/select.sql" <<'EOF'
SELECT cache_type, data::text, version, checksum, last_fetch, last_rich_fetch, saved_at
    FROM cache_storage WHERE project_id = :pid AND cache_type = :name;
EOF
chmod 644 "$PGROOT"/*.sql "$PGROOT/k10.json"

epoch_micros() { echo $(($(date +%s%N) / 1000)); }

# pgbench_run LABEL ARGS...: runs pgbench as postgres with a per-transaction log;
# prints "TPS MEAN_MS P99_MS TRANSACTIONS FAILED".
pgbench_run() {
    local label=$1
    shift
    as_pg "$PGBIN/pgbench" -h "$PGROOT" -p "$PG_PORT" -U postgres -n -M prepared -c 1 -j 1 \
        -l --log-prefix="$PGROOT/log-$label" "$@" postgres >"$TMP/pgbench-$label.txt" 2>&1 ||
        die "pgbench $label failed: $(tail -5 "$TMP/pgbench-$label.txt")"
    local tps done failed
    tps=$(awk '/^tps = / { print $3 }' "$TMP/pgbench-$label.txt")
    done=$(awk -F': ' '/actually processed/ { split($2, a, "/"); print a[1] }' "$TMP/pgbench-$label.txt")
    failed=$(awk -F': ' '/number of failed transactions/ { split($2, a, " "); print a[1] }' "$TMP/pgbench-$label.txt")
    # Per-transaction log: the third field is the latency in microseconds.
    cat "$PGROOT/log-$label".* | awk '{ print $3 }' | sort -n | awk -v tps="$tps" -v done="$done" -v failed="${failed:-0}" '
        { v[NR] = $1 / 1000; sum += v[NR] }
        END { r = int(NR * 0.99 + 0.999); if (r < 1) r = 1
              printf "%.1f %.3f %.3f %d %d\n", tps, sum / NR, v[r], done, failed }'
}

pgbench_upsert() { # LABEL SECONDS: "TPS MEAN_MS P99_MS TRANSACTIONS FAILED"
    local label=$1 base r moved
    base=$(epoch_micros)
    r=$(pgbench_run "$label" -T "$2" -f "$PGROOT/upsert.sql" -D v="$base" -D pid="$PID_PROJECT" \
        -D name=pgb10k -D doc="$(cat "$PGROOT/k10.json")" -D checksum="$K10_SUM" -D saved="$(date -u +%FT%TZ)" \
        -D size="$K10_BYTES")
    # Every transaction went through the guard: the row's version moved by as many.
    moved=$(psql_q -c "SELECT version - $base FROM cache_storage WHERE project_id = $PID_PROJECT AND cache_type = 'pgb10k'")
    [[ $moved == "$(awk '{ print $4 }' <<<"$r")" ]] ||
        log "WARNING: pgbench $label: $moved versions written, $(awk '{ print $4 }' <<<"$r") transactions"
    echo "$r"
}

store_upsert() { # LABEL SECONDS READ_ITERS: the bench's output in $TMP/LABEL.txt
    TIERCACHE_BENCH_PG_URL="$PG_URL" STORE_UPSERT_SECONDS="$2" STORE_READ_ITERS="$3" \
        TIERCACHE_BENCH_DOC="$TMP/docs/k10.json" TIERCACHE_BENCH_DOC_1M="$TMP/docs/m1.json" \
        "$STORE_UPSERT" --bench >"$TMP/$1.txt" 2>"$TMP/$1.err" || die "store_upsert failed: $(tail -5 "$TMP/$1.err")"
    ! grep -q "^note:" "$TMP/$1.txt" || log "WARNING: $(grep '^note:' "$TMP/$1.txt")"
    grep -q "checksum $K10_SUM" "$TMP/$1.txt" || die "store_upsert sent another document than pgbench"
}
field() { awk -v k="$2" -v i="$3" '$1 == k { print $i }' "$TMP/$1.txt"; }
range() { sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s-%s\n", lo, hi }'; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
if part upsert; then
# Interleaved slices (pgbench first in odd rounds, the store first in even ones), so a
# burst of other load on the shared cores hits both sides alike; medians are reported.
SLICE=$(awk -v s="$SECONDS_UPSERT" -v r="$ROUNDS" 'BEGIN { printf "%g", s / r }')
log "upsert 10 KB: pgbench and StoreHandle::write, $ROUNDS interleaved rounds of ${SLICE}s each"
pgbench_run upsert-warm -t 20 -f "$PGROOT/upsert.sql" -D v="$(epoch_micros)" -D pid="$PID_PROJECT" -D name=pgb10k \
    -D doc="$(cat "$PGROOT/k10.json")" -D checksum="$K10_SUM" -D saved="$(date -u +%FT%TZ)" -D size="$K10_BYTES" >/dev/null
: >"$TMP/upsert-rounds.txt"
for round in $(seq 1 "$ROUNDS"); do
    for side in $( ((round % 2)) && echo "pgbench store" || echo "store pgbench"); do
        if [[ $side == pgbench ]]; then
            r=$(pgbench_upsert "upsert$round" "$SLICE")
            echo "pgbench $round $r" >>"$TMP/upsert-rounds.txt"
        else
            store_upsert "store_upsert$round" "$SLICE" 0
            echo "store $round $(field "store_upsert$round" upsert_per_second 2) $(field "store_upsert$round" upsert_latency_ms 3) $(field "store_upsert$round" upsert_latency_ms 5) $(field "store_upsert$round" upsert_writes 2) 0" >>"$TMP/upsert-rounds.txt"
        fi
    done
done
col() { awk -v s="$1" -v i="$2" '$1 == s { print $i }' "$TMP/upsert-rounds.txt"; }
PGB_TPS=$(col pgbench 3 | median); PGB_RANGE=$(col pgbench 3 | range)
PGB_MEAN=$(col pgbench 4 | median); PGB_P99=$(col pgbench 5 | median)
PGB_FAILED=$(col pgbench 7 | awk '{ s += $1 } END { print s + 0 }')
RS_TPS=$(col store 3 | median); RS_RANGE=$(col store 3 | range)
RS_MEAN=$(col store 4 | median); RS_P99=$(col store 5 | median)

fi
if part read; then
log "store_upsert: StoreHandle::read of a 10 KB and a 1 MB row into the file tier, $READ_ITERS times each"
store_upsert store_read 0 "$READ_ITERS"
RS_R10_MEAN=$(field store_read read_10k_to_file_ms 3)
RS_R10_P99=$(field store_read read_10k_to_file_ms 5)
RS_R10_STORE=$(field store_read read_10k_store_only_ms 3)
RS_R1M_MEAN=$(field store_read read_1m_to_file_ms 3)
RS_R1M_P99=$(field store_read read_1m_to_file_ms 5)
RS_R1M_STORE=$(field store_read read_1m_store_only_ms 3)
M1_BYTES=$(field store_read read_1m 3)

log "pgbench select of the same rows, $READ_ITERS times each"
select_pgbench() { # LABEL CACHE
    pgbench_run "$1-warm" -t 3 -f "$PGROOT/select.sql" -D pid="$PID_PROJECT" -D name="$2" >/dev/null
    pgbench_run "$1" -t "$READ_ITERS" -f "$PGROOT/select.sql" -D pid="$PID_PROJECT" -D name="$2"
}
r=$(select_pgbench select10k rs10k_read)
read -r _ SEL10_MEAN SEL10_P99 _ _ <<<"$r"
r=$(select_pgbench select1m rs1m_read)
read -r _ SEL1M_MEAN SEL1M_P99 _ _ <<<"$r"
SIZES=$(psql_q -F ' ' -c "SELECT cache_type, pg_column_compression(data), pg_column_size(data) FROM cache_storage
    WHERE cache_type IN ('rs10k_read', 'rs1m_read') ORDER BY 1" | tr '\n' ';')

fi

# --- the storm ----------------------------------------------------------------------------
CACHE_NAMES=$(seq -f 'storm%02g' 1 "$STORM_CACHES" | paste -sd,)
TC_PORT=$(free_port)
URL="http://127.0.0.1:$TC_PORT"

storm() { # LABEL (off: Postgres disabled): a fresh daemon and data_dir, an empty table, the storm
    local label=$1 dir="$TMP/storm-$1" pg=(--no-postgres)
    mkdir -p "$dir/data"
    if [[ $label != off ]]; then
        pg=()
        psql_q -c "TRUNCATE cache_storage, cache_audit"
    fi
    {
        printf 'project = "%s"\ndata_dir = "%s/data"\n\n' "$PROJECT" "$dir"
        printf '[log]\nlevel = "warn"\n\n'
        printf '[api]\nlisten = ["127.0.0.1:%s"]\nmax_body = "16MiB"\n\n' "$TC_PORT"
        [[ $label == off ]] || printf '[postgres]\nenabled = true\nurl = "%s"\n\n' "$PG_URL"
        for name in ${CACHE_NAMES//,/ }; do printf '[[caches]]\nname = "%s"\n\n' "$name"; done
    } >"$dir/tiercache.toml"
    (cd "$dir" && exec "$BIN" run --config "$dir/tiercache.toml" >>"$dir/tiercache.log" 2>&1) &
    TC_PID=$!
    local ready=0
    for _ in $(seq 400); do
        if curl -fs -o /dev/null "$URL/readyz"; then ready=1; break; fi
        kill -0 "$TC_PID" 2>/dev/null || die "tiercache exited: $(tail -5 "$dir/tiercache.log")"
        sleep 0.05
    done
    ((ready)) || die "tiercache not ready"
    sleep 1
    python3 "$ROOT/bench/put_storm.py" --url "$URL" --pid "$TC_PID" --doc "$TMP/docs/k10.json" \
        --caches "$CACHE_NAMES" --saves "$STORM_SAVES" --connections "$STORM_CONNECTIONS" "${pg[@]}" \
        >"$dir/storm.txt" || die "put_storm $label failed"
    if [[ $label != off ]]; then
        # Postgres converged: every row holds the newest acknowledged version.
        local current=0 name version
        while read -r _ name version; do
            [[ $(psql_q -c "SELECT version FROM cache_storage WHERE project_id = $PID_PROJECT AND cache_type = '$name'") == "$version" ]] &&
                current=$((current + 1))
        done < <(grep '^acked_version ' "$dir/storm.txt")
        echo "rows_current $current" >>"$dir/storm.txt"
        echo "audit_rows $(psql_q -c "SELECT count(*) FROM cache_audit")" >>"$dir/storm.txt"
    fi
    kill -TERM "$TC_PID"
    wait "$TC_PID" || true
    TC_PID=""
    grep -qi 'error\|panic' "$dir/tiercache.log" && log "WARNING: $label: errors in the daemon's log (BENCH_KEEP=1)"
    true
}

if part storm; then
log "storm: $STORM_SAVES saves over $STORM_CACHES caches, $STORM_CONNECTIONS connections, Postgres disabled"
storm off
log "storm again, Postgres enabled, as it is"
storm fast
log "storm again, Postgres slowed: pg_sleep($SLOW) BEFORE INSERT OR UPDATE on cache_storage"
psql_q <<EOF
CREATE FUNCTION public.bench_slow_write() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
    PERFORM pg_sleep($SLOW);
    RETURN NEW;
END
\$\$;
CREATE TRIGGER bench_slow_write BEFORE INSERT OR UPDATE ON public.cache_storage
    FOR EACH ROW EXECUTE FUNCTION public.bench_slow_write();
EOF
storm slow
psql_q -c "DROP TRIGGER bench_slow_write ON public.cache_storage"
fi

# --- startup from Postgres -------------------------------------------------------------------
# STARTUP_CACHES caches of 1 MB saved through a daemon and drained to Postgres; then the
# time from exec to ready, twice: with the files in sync, and with data_dir removed (every
# file rewritten from its row). Ready is read from the daemon's own "ready" log line (its
# timestamp, taken as /readyz turns 200; `tail -F` wakes on the write), not by polling
# /readyz: a curl every 10 ms took a quarter of a core from the start it was timing,
# which psql COPY, the anchor, does not pay. /readyz is then asked once, as a check.
STARTUP_DIR="$TMP/startup"
start_daemon() { # DIR: a daemon on $URL, returns once /readyz answers 200; sets STARTED_S
    local t0 t1 line from
    from=1 # this run's lines only
    [[ ! -f $1/tiercache.log ]] || from=$(($(wc -l <"$1/tiercache.log") + 1))
    t0=$(date +%s%N)
    (cd "$1" && exec "$BIN" run --config "$1/tiercache.toml" >>"$1/tiercache.log" 2>&1) &
    TC_PID=$!
    # tail ends on SIGPIPE once grep has its line; grep's status is the answer.
    line=$( (timeout 30 tail -n "+$from" -F "$1/tiercache.log" 2>/dev/null || true) | grep -m1 '"message":"ready"') ||
        die "tiercache not ready: $(tail -5 "$1/tiercache.log")"
    t1=$(date -d "$(sed 's/.*"timestamp":"\([^"]*\)".*/\1/' <<<"$line")" +%s%N)
    curl -fs -o /dev/null "$URL/readyz" || die "tiercache logged ready but /readyz does not answer 200"
    STARTED_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
}
stop_daemon() { kill -TERM "$TC_PID"; wait "$TC_PID" || true; TC_PID=""; }
queue_depth() { curl -fs "$URL/metrics" | awk '$1 == "tiercache_retry_queue_depth" { print $2 }'; }
if part startup; then
log "startup: $STARTUP_CACHES caches of 1 MB saved and drained to Postgres"
psql_q -c "TRUNCATE cache_storage, cache_audit"
mkdir -p "$STARTUP_DIR/data"
{
    printf 'project = "%s"\ndata_dir = "%s/data"\n\n' "$PROJECT" "$STARTUP_DIR"
    printf '[log]\nlevel = "info"\n\n'
    printf '[api]\nlisten = ["127.0.0.1:%s"]\nmax_body = "16MiB"\n\n' "$TC_PORT"
    printf '[postgres]\nenabled = true\nurl = "%s"\n\n' "$PG_URL"
    for i in $(seq 1 "$STARTUP_CACHES"); do printf '[[caches]]\nname = "s%03d"\n\n' "$i"; done
} >"$STARTUP_DIR/tiercache.toml"
start_daemon "$STARTUP_DIR"
for i in $(seq 1 "$STARTUP_CACHES"); do
    gen_json 1048576 $((500 + i)) >"$STARTUP_DIR/doc.json"
    code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/json' \
        --data-binary "@$STARTUP_DIR/doc.json" "$URL/v1/caches/$(printf 's%03d' "$i")")
    [[ $code == 200 ]] || die "startup: PUT answered $code"
done
for _ in $(seq 600); do [[ $(queue_depth) == 0 ]] && break; sleep 0.1; done
[[ $(queue_depth) == 0 ]] || die "startup: the queue did not drain"
stop_daemon
STARTUP_ROWS=$(psql_q -c "SELECT count(*) FROM cache_storage WHERE project_id = $PID_PROJECT")
STARTUP_MB=$(psql_q -c "SELECT round(sum(data_size) / 1048576.0, 1) FROM cache_storage WHERE project_id = $PID_PROJECT")
log "startup with the files in sync"
start_daemon "$STARTUP_DIR"
STARTUP_SYNCED_S=$STARTED_S
stop_daemon
# The anchor: psql exporting the columns the daemon reads of the same rows (the data as
# text, as Postgres hands JSONB to any client) into a file, timed from exec to exit.
copy_rows() {
    local t0 t1
    t0=$(date +%s%N)
    psql_q -c "COPY (SELECT cache_type, data::text, version, checksum, last_fetch, last_rich_fetch, saved_at
        FROM cache_storage WHERE project_id = $PID_PROJECT) TO STDOUT" >"$TMP/copy.out"
    t1=$(date +%s%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", (b - a) / 1e9 }'
}
fresh_start() { # [BINARY]
    rm -rf "$STARTUP_DIR/data"
    mkdir -p "$STARTUP_DIR/data"
    BIN=${1:-$BIN} start_daemon "$STARTUP_DIR"
    echo "$STARTED_S"
    STARTUP_FILES=$(find "$STARTUP_DIR/data/caches" -name 's*.json' | wc -l)
    STARTUP_TIER=$(curl -fs -o /dev/null -D - "$URL/v1/caches/$(printf 's%03d' "$STARTUP_CACHES")" | awk 'tolower($1) == "x-cache-tier:" { sub(/\r$/, "", $2); print $2 }')
    stop_daemon
}
log "startup with data_dir removed, $STARTUP_ROUNDS rounds interleaved with psql COPY of the same rows"
copy_rows >/dev/null # warm Postgres's cache as a restart of the daemon would find it
: >"$TMP/startup-rounds.txt"
sides="tc copy"
[[ -z ${BENCH_BIN_BEFORE:-} ]] || sides="tc copy before"
for round in $(seq 1 "$STARTUP_ROUNDS"); do
    # The order rotates every round, so a burst of load from a neighbour hits all alike.
    for side in $(awk -v r="$round" '{ for (i = 0; i < NF; i++) printf "%s ", $((i + r) % NF + 1) }' <<<"$sides"); do
        if [[ $side == tc ]]; then
            fresh_start >"$TMP/fresh.txt"
            echo "tc $(cat "$TMP/fresh.txt") $STARTUP_FILES" >>"$TMP/startup-rounds.txt"
        elif [[ $side == before ]]; then
            fresh_start "$BENCH_BIN_BEFORE" >"$TMP/fresh.txt"
            echo "before $(cat "$TMP/fresh.txt") $STARTUP_FILES" >>"$TMP/startup-rounds.txt"
        else
            echo "copy $(copy_rows)" >>"$TMP/startup-rounds.txt"
        fi
    done
done
COPY_BYTES=$(stat -c %s "$TMP/copy.out")
scol() { awk -v s="$1" -v i="$2" '$1 == s { print $i }' "$TMP/startup-rounds.txt"; }
STARTUP_FRESH_S=$(scol tc 2 | median); STARTUP_FRESH_RANGE=$(scol tc 2 | range)
COPY_S=$(scol copy 2 | median); COPY_RANGE=$(scol copy 2 | range)
STARTUP_FILES=$(scol tc 3 | sort -n | head -1)
grep '"loaded from Postgres"' "$STARTUP_DIR/tiercache.log" | tail -1 >"$STARTUP_DIR/report.txt" || true
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
sf() { awk -v k="$2" '$1 == k { print $2 }' "$TMP/storm-$1/storm.txt"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# --- the table -----------------------------------------------------------------------------
row() { printf '| %-44s | %16s | %-30s | %7s | %-8s |\n' "$@"; }
echo
echo "tiercache ${BENCH_BIN:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')} on $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ); PostgreSQL $PG_VERSION, throwaway cluster, Unix socket, fsync on, synchronous_commit on"
echo "load average before $LOAD_BEFORE, after $LOAD_AFTER; documents: 10 KB = $K10_BYTES bytes, 1 MB = ${M1_BYTES:-1048642} bytes (canonical JSON); rows stored: ${SIZES:-}"
echo
row "benchmark" "tiercache" "anchor" "ratio" "target"
row "--------------------------------------------" "----------------" "------------------------------" "-------" "--------"
if part upsert; then
row "upsert 10 KB JSONB, one connection, /s" "$RS_TPS" "pgbench $PGB_TPS" "$(ratio "$RS_TPS" "$PGB_TPS")" ">= 0.8x"
row "  range of the $ROUNDS rounds, /s" "$RS_RANGE" "pgbench $PGB_RANGE" "-" "-"
row "  latency mean, ms" "$RS_MEAN" "pgbench $PGB_MEAN" "$(ratio "$RS_MEAN" "$PGB_MEAN")" "-"
row "  latency p99, ms" "$RS_P99" "pgbench $PGB_P99" "$(ratio "$RS_P99" "$PGB_P99")" "-"
fi
if part read; then
row "read 10 KB row into file tier, mean ms" "$RS_R10_MEAN" "pgbench select $SEL10_MEAN" "$(ratio "$RS_R10_MEAN" "$SEL10_MEAN")" "-"
row "  p99 ms ($READ_ITERS reads)" "$RS_R10_P99" "pgbench select $SEL10_P99" "$(ratio "$RS_R10_P99" "$SEL10_P99")" "-"
row "  StoreHandle::read alone, mean ms" "$RS_R10_STORE" "pgbench select $SEL10_MEAN" "$(ratio "$RS_R10_STORE" "$SEL10_MEAN")" "-"
row "read 1 MB row into file tier, mean ms" "$RS_R1M_MEAN" "pgbench select $SEL1M_MEAN" "$(ratio "$RS_R1M_MEAN" "$SEL1M_MEAN")" "-"
row "  p99 ms ($READ_ITERS reads)" "$RS_R1M_P99" "pgbench select $SEL1M_P99" "$(ratio "$RS_R1M_P99" "$SEL1M_P99")" "-"
row "  StoreHandle::read alone, mean ms" "$RS_R1M_STORE" "pgbench select $SEL1M_MEAN" "$(ratio "$RS_R1M_STORE" "$SEL1M_MEAN")" "-"
fi
if part startup; then
row "startup, $STARTUP_ROWS rows of 1 MB, files in sync, s" "$STARTUP_SYNCED_S" "-" "-" "< 3 s"
row "startup, same, data_dir removed, s" "$STARTUP_FRESH_S" "psql COPY $COPY_S s" "$(ratio "$STARTUP_FRESH_S" "$COPY_S")" "<= 1.2x"
row "  range of the $STARTUP_ROUNDS rounds, s" "$STARTUP_FRESH_RANGE" "psql COPY $COPY_RANGE" "-" "-"
if [[ -n ${BENCH_BIN_BEFORE:-} ]]; then
    BEFORE_S=$(scol before 2 | median)
    row "  the same, $(basename "$BENCH_BIN_BEFORE"), s" "$BEFORE_S" "psql COPY $COPY_S s" "$(ratio "$BEFORE_S" "$COPY_S")" "-"
    row "  range of its $STARTUP_ROUNDS rounds, s" "$(scol before 2 | range)" "-" "-" "-"
fi
row "  data in Postgres / exported by psql, MB" "$STARTUP_MB" "$(awk -v b="$COPY_BYTES" 'BEGIN { printf "%.1f", b / 1048576 }')" "-" "-"
row "  files rewritten / tier of a GET after" "$STARTUP_FILES / $STARTUP_TIER" "-" "-" "-"
fi
echo
if ! part storm; then exit 0; fi
echo "storm: $STORM_SAVES PUTs of 10 KB, round-robin over $STORM_CACHES caches, $STORM_CONNECTIONS keep-alive connections (bench/put_storm.py), a fresh daemon each;"
echo "PG slowed: pg_sleep($SLOW) BEFORE INSERT OR UPDATE on cache_storage; ratio = slowed / not slowed; last column: Postgres disabled (no queue)"
echo
srow() { printf '| %-44s | %16s | %16s | %7s | %16s |\n' "$@"; }
s3() { srow "$1" "$(sf slow "$2")" "$(sf fast "$2")" "$(ratio "$(sf slow "$2")" "$(sf fast "$2")")" "${3:-$(sf off "$2")}"; }
srow "storm" "PG slowed" "PG not slowed" "ratio" "PG disabled"
srow "--------------------------------------------" "----------------" "----------------" "-------" "----------------"
srow "saves acknowledged / failed" "$(sf slow acked) / $(sf slow failed)" "$(sf fast acked) / $(sf fast failed)" "-" "$(sf off acked) / $(sf off failed)"
s3 "acknowledged saves/s" acked_per_s
s3 "PUT latency p50, ms" put_p50_ms
s3 "PUT latency p99, ms" put_p99_ms
s3 "Postgres writes made (ok), of $STORM_SAVES saves" pg_writes_ok -
srow "  saves per Postgres write (coalescing)" "$(ratio "$(sf slow acked)" "$(sf slow pg_writes_ok)")" "$(ratio "$(sf fast acked)" "$(sf fast pg_writes_ok)")" "-" "-"
s3 "  of which by the end of the storm" end_pg_writes_ok -
s3 "  rows changed (audit trigger)" audit_rows -
s3 "  write errors (transient)" pg_writes_error -
s3 "queue depth at end of storm, caches" end_queue_depth -
s3 "oldest pending age at end of storm, s" end_oldest_age_s -
s3 "drain to 0 after the storm, s" drain_s -
srow "rows holding the newest acked version" "$(sf slow rows_current)/$STORM_CACHES" "$(sf fast rows_current)/$STORM_CACHES" "-" "-"
srow "RSS before storm, MiB" "$(mib "$(sf slow rss_before_kb)")" "$(mib "$(sf fast rss_before_kb)")" "-" "$(mib "$(sf off rss_before_kb)")"
srow "RSS peak (storm + drain), MiB" "$(mib "$(sf slow rss_peak_kb)")" "$(mib "$(sf fast rss_peak_kb)")" "$(ratio "$(sf slow rss_peak_kb)" "$(sf fast rss_peak_kb)")" "$(mib "$(sf off rss_peak_kb)")"
srow "RSS after drain, MiB" "$(mib "$(sf slow rss_after_kb)")" "$(mib "$(sf fast rss_after_kb)")" "-" "$(mib "$(sf off rss_after_kb)")"
echo
if (($(sf slow failed) + $(sf fast failed) + $(sf off failed) + ${PGB_FAILED:-0} > 0)); then
    echo "WARNING: failures: storm slowed $(sf slow failed), not slowed $(sf fast failed), disabled $(sf off failed), pgbench $PGB_FAILED"
fi
