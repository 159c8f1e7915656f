#!/usr/bin/env bash
# tiercache's benchmarks, side by side with their anchors, in one go.
#
#   bench/run.sh                 # everything; prints one table at the end
#   BENCH_ONLY=get10,get1m bench/run.sh  # some parts only: get10 get1m 304 put cold rss memhit
#   BENCH_ANCHORS=nginx bench/run.sh     # GET anchors (default "nginx varnish")
#   BENCH_BIN=/tmp/tiercache-old bench/run.sh  # measure this binary instead of building one
#   BENCH_BIN_BEFORE=/tmp/tc-old bench/run.sh  # and this one beside it in the GET rounds
#   BENCH_WORKERS=64 bench/run.sh        # the daemon's api.workers (default: its own default)
#   BENCH_DURATION=10s bench/run.sh  # longer wrk runs (default 5s)
#   BENCH_ROUNDS=5 bench/run.sh      # more interleaved rounds per pair (default 3; medians reported)
#   BENCH_KEEP=1 bench/run.sh        # keep the temp dir (configs, wrk outputs, logs)
#
# Installs what it compares against when missing (Debian's nginx, varnish, wrk, curl; as
# root), builds tiercache in release, then on 127.0.0.1 and free ports:
#   - GET of a 10 KB and a 1 MB cache from memory vs nginx serving the same bytes as a
#     static file and Varnish (malloc storage) caching that nginx (wrk, 64 connections,
#     2 threads, requests/s and p99 via --latency);
#   - conditional GET (If-None-Match -> 304), tiercache and nginx;
#   - PUT of a 10 KB document (durable before the answer) vs the bare durable-write
#     loop (temp + fsync + rename + fsync of the directory, one writer);
#   - cold read of 1 MB caches from file: the daemon restarted, each cache's first GET
#     timed with curl;
#   - resident memory with 100 caches of 1 MB each in memory vs the data size;
#   - the in-process memory hit (actors/benches/memory_hit.rs).
# The machines are shared and small: wrk runs on the same cores as the server it
# measures, so compare the ratios of one run, not absolute numbers across runs.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${BENCH_DURATION:-5s}
ROUNDS=${BENCH_ROUNDS:-3}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
COLD_CACHES=${BENCH_COLD_CACHES:-10}
RSS_CACHES=100
ONLY=${BENCH_ONLY:-get10,get1m,304,put,cold,rss,memhit}
ANCHORS=${BENCH_ANCHORS:-nginx varnish}
# part NAME: whether BENCH_ONLY asks for it.
part() { [[ ,$ONLY, == *,$1,* ]]; }
anchor() { [[ " $ANCHORS " == *" $1 "* ]]; }

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# --- what we compare against ------------------------------------------------------
missing=()
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if anchor varnish; then command -v varnishd >/dev/null 2>&1 || PATH=$PATH:/usr/sbin; command -v varnishd >/dev/null 2>&1 || missing+=(varnish); fi
install_missing "${missing[@]}"

# --- build ----------------------------------------------------------------------------
if [[ -n ${BENCH_BIN:-} ]]; then
    log "building the durable write loop (release); measuring $BENCH_BIN"
    (cd "$ROOT" && cargo build --release --quiet --example durable_write)
else
    log "building tiercache (release)"
    (cd "$ROOT" && cargo build --release --quiet -p tiercache --bin tiercache --example durable_write)
fi
BIN=${BENCH_BIN:-$ROOT/target/release/tiercache}
DURABLE="$ROOT/target/release/examples/durable_write"

TMP=$(mktemp -d /tmp/tiercache-bench.XXXXXX)
TC_PID=""
BEFORE_PID=""
NGINX_PID=""
VARNISH_PID=""
cleanup() {
    if [[ -n $TC_PID ]]; then kill "$TC_PID" 2>/dev/null || true; wait "$TC_PID" 2>/dev/null || true; fi
    if [[ -n $BEFORE_PID ]]; then kill "$BEFORE_PID" 2>/dev/null || true; wait "$BEFORE_PID" 2>/dev/null || true; fi
    if [[ -n $VARNISH_PID ]]; then kill "$VARNISH_PID" 2>/dev/null || true; wait "$VARNISH_PID" 2>/dev/null || true; fi
    if [[ -n $NGINX_PID ]]; then kill -QUIT "$NGINX_PID" 2>/dev/null || true; wait "$NGINX_PID" 2>/dev/null || true; fi
    if [[ -n ${BENCH_KEEP:-} ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

# --- tiercache ------------------------------------------------------------------------
TC_PORT=$(free_port)
mkdir -p "$TMP/data" "$TMP/www" "$TMP/docs"
{
    printf 'data_dir = "%s/data"\n\n[log]\nlevel = "warn"\n\n' "$TMP"
    printf '[api]\nlisten = ["127.0.0.1:%s"]\nmax_body = "16MiB"\n' "$TC_PORT"
    [[ -z ${BENCH_WORKERS:-} ]] || printf 'workers = %s\n' "$BENCH_WORKERS"
    printf '\n'
    printf '[memory]\nttl = "1h"\n\n'
    for name in k10 m1 put10 $(seq -f 'c%03g' 1 $RSS_CACHES); do
        printf '[[caches]]\nname = "%s"\n\n' "$name"
    done
} >"$TMP/tiercache.toml"
URL="http://127.0.0.1:$TC_PORT"

start_tiercache() {
    (cd "$TMP" && exec "$BIN" run --config "$TMP/tiercache.toml" >>"$TMP/tiercache.log" 2>&1) &
    TC_PID=$!
    for _ in $(seq 200); do
        if curl -fs -o /dev/null "$URL/readyz"; then return; fi
        kill -0 "$TC_PID" 2>/dev/null || die "tiercache exited: $(tail -5 "$TMP/tiercache.log")"
        sleep 0.05
    done
    die "tiercache not ready"
}
stop_tiercache() {
    kill -TERM "$TC_PID"
    wait "$TC_PID" || true
    TC_PID=""
}

put_file() { # cache file
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/json' \
        --data-binary "@$2" "$URL/v1/caches/$1")
    [[ $code == 200 ]] || die "PUT $1 answered $code"
}

log "starting tiercache on $URL"
start_tiercache
gen_json 10240 1 >"$TMP/docs/k10.json"
gen_json 1048576 2 >"$TMP/docs/m1.json"
put_file k10 "$TMP/docs/k10.json"
put_file m1 "$TMP/docs/m1.json"
if part cold || part rss; then
    log "loading $RSS_CACHES caches of 1 MB"
    for i in $(seq 1 $RSS_CACHES); do
        name=$(printf 'c%03d' "$i")
        gen_json 1048576 $((100 + i)) >"$TMP/docs/$name.json"
        put_file "$name" "$TMP/docs/$name.json"
    done
fi
# nginx serves exactly the bytes tiercache serves (canonical JSON).
curl -fs -D "$TMP/k10.headers" -o "$TMP/www/k10.json" "$URL/v1/caches/k10"
curl -fs -o "$TMP/www/m1.json" "$URL/v1/caches/m1"
TC_ETAG=$(awk 'tolower($1) == "etag:" { sub(/\r$/, "", $2); print $2 }' "$TMP/k10.headers")
K10_BYTES=$(stat -c %s "$TMP/www/k10.json")
M1_BYTES=$(stat -c %s "$TMP/www/m1.json")

# --- the binary before a change, for the GET rounds (BENCH_BIN_BEFORE) -------------------
BEFORE=""
if [[ -n ${BENCH_BIN_BEFORE:-} ]]; then
    BEFORE_PORT=$(free_port)
    mkdir -p "$TMP/before/data"
    sed -e "s|^data_dir = .*|data_dir = \"$TMP/before/data\"|" -e "s|127.0.0.1:$TC_PORT|127.0.0.1:$BEFORE_PORT|" \
        "$TMP/tiercache.toml" >"$TMP/before/tiercache.toml"
    (cd "$TMP/before" && exec "$BENCH_BIN_BEFORE" run --config "$TMP/before/tiercache.toml" >"$TMP/before/log" 2>&1) &
    BEFORE_PID=$!
    BEFORE="http://127.0.0.1:$BEFORE_PORT"
    for _ in $(seq 200); do curl -fs -o /dev/null "$BEFORE/readyz" && break; sleep 0.05; done
    for name in k10 m1; do
        code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/json' \
            --data-binary "@$TMP/docs/$name.json" "$BEFORE/v1/caches/$name")
        [[ $code == 200 ]] || die "PUT $name to the binary before answered $code"
    done
    cmp -s <(curl -fs "$BEFORE/v1/caches/m1") "$TMP/www/m1.json" || die "the binary before serves other bytes"
fi

# --- nginx ----------------------------------------------------------------------------
NGINX_PORT=$(free_port)
mkdir -p "$TMP/nginx/logs" "$TMP/nginx/tmp"
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes auto;
daemon off;
user root;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path $TMP/nginx/tmp/body;
    proxy_temp_path $TMP/nginx/tmp/proxy;
    fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
    uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
    scgi_temp_path $TMP/nginx/tmp/scgi;
    types { application/json json; }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $TMP/www;
    }
}
EOF
log "starting nginx on 127.0.0.1:$NGINX_PORT"
nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" &
NGINX_PID=$!
NGINX="http://127.0.0.1:$NGINX_PORT"
for _ in $(seq 100); do curl -fs -o /dev/null "$NGINX/k10.json" && break; sleep 0.05; done
cmp -s <(curl -fs "$NGINX/m1.json") <(curl -fs "$URL/v1/caches/m1") || die "nginx and tiercache bytes differ"
NGINX_ETAG=$(curl -fsI "$NGINX/k10.json" | awk 'tolower($1) == "etag:" { sub(/\r$/, "", $2); print $2 }')

# --- Varnish: malloc storage, caching the nginx above (its own 'varnishd -F', a work dir
# in TMP, one hour of TTL so every measured request is a hit) ----------------------------
VARNISH=""
if anchor varnish; then
    chmod 755 "$TMP"
    cat >"$TMP/varnish.vcl" <<EOF
vcl 4.1;
backend nginx { .host = "127.0.0.1"; .port = "$NGINX_PORT"; }
sub vcl_backend_response { set beresp.ttl = 1h; }
EOF
    # A port nothing answers on may still be some connection's local port: try a few.
    for _ in 1 2 3 4 5; do
        VARNISH_PORT=$(free_port)
        log "starting varnish on 127.0.0.1:$VARNISH_PORT (malloc, in front of nginx)"
        varnishd -F -n "$TMP/varnish" -a "127.0.0.1:$VARNISH_PORT" -f "$TMP/varnish.vcl" -s malloc,256m \
            >"$TMP/varnish.log" 2>&1 &
        VARNISH_PID=$!
        VARNISH="http://127.0.0.1:$VARNISH_PORT"
        for _ in $(seq 200); do
            curl -fs -o /dev/null "$VARNISH/k10.json" && break
            kill -0 "$VARNISH_PID" 2>/dev/null || break
            sleep 0.05
        done
        kill -0 "$VARNISH_PID" 2>/dev/null && break
        wait "$VARNISH_PID" 2>/dev/null || true
        VARNISH_PID=""
    done
    [[ -n $VARNISH_PID ]] || die "varnish did not start: $(tail -3 "$TMP/varnish.log")"
    cmp -s <(curl -fs "$VARNISH/m1.json") <(curl -fs "$URL/v1/caches/m1") || die "varnish and tiercache bytes differ"
fi

# --- wrk ------------------------------------------------------------------------------
cat >"$TMP/inm-tiercache.lua" <<EOF
wrk.headers["If-None-Match"] = '$TC_ETAG'
EOF
cat >"$TMP/inm-nginx.lua" <<EOF
wrk.headers["If-None-Match"] = '$NGINX_ETAG'
EOF
cat >"$TMP/put.lua" <<EOF
-- PUT of a 10 KB document, different bytes every request (thread id and counter).
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open("$TMP/docs/k10.json", "rb"))
local rest = string.sub(f:read("*a"), 2)
f:close()
local threads = 0
function setup(thread)
    threads = threads + 1
    thread:set("tid", threads)
end
local n = 0
function request()
    n = n + 1
    return wrk.format(nil, nil, nil, '{"n":' .. n .. ',"t":' .. tid .. ',' .. rest)
end
EOF

# The same for 1 KB: one client saving one document after the other.
gen_json 1024 3 >"$TMP/docs/k1.json"
sed -e "s|$TMP/docs/k10.json|$TMP/docs/k1.json|" "$TMP/put.lua" >"$TMP/put1k.lua"

# wrk LABEL URL [LUA]: prints "RPS P99_MS NON2XX" and keeps the full output.
run_wrk() {
    local label=$1 url=$2 script=${3:-}
    local args=(-t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency)
    [[ -n $script ]] && args+=(-s "$script")
    log "wrk $label ($url)"
    wrk "${args[@]}" "$url" >"$TMP/wrk-$label.txt" 2>&1 || die "wrk $label failed: $(cat "$TMP/wrk-$label.txt")"
    awk '
        /Requests\/sec:/ { rps = $2 }
        $1 == "99%" {
            v = $2
            if (v ~ /us$/) { sub(/us$/, "", v); p99 = v / 1000 }
            else if (v ~ /ms$/) { sub(/ms$/, "", v); p99 = v }
            else if (v ~ /s$/) { sub(/s$/, "", v); p99 = v * 1000 }
        }
        /Non-2xx or 3xx responses:/ { bad = $NF }
        END { printf "%s %s %s\n", rps, p99, bad + 0 }
    ' "$TMP/wrk-$label.txt"
}

# Side by side: ROUNDS rounds per comparison, the order of the servers rotated every round,
# so a burst of load from a neighbour hits them alike; medians are reported.
# compare LABEL SIDE=URL[@LUA]...: sets RPS_<side> P99_<side> BAD_<side> RANGE_<side>
compare() {
    local label=$1 round out i n
    shift
    local sides=("$@")
    n=${#sides[@]}
    : >"$TMP/pair-$label.txt"
    for round in $(seq 1 "$ROUNDS"); do
        for i in $(seq 0 $((n - 1))); do
            local spec=${sides[$(((i + round - 1) % n))]}
            local side=${spec%%=*} target=${spec#*=} url script=""
            url=${target%%@*}
            [[ $target == *@* ]] && script=${target#*@}
            out=$(run_wrk "$side-$label-$round" "$url" "$script")
            echo "$side $out" >>"$TMP/pair-$label.txt"
        done
    done
    col() { awk -v s="$1" -v i="$2" '$1 == s { print $i }' "$TMP/pair-$label.txt"; }
    for spec in "${sides[@]}"; do
        local side=${spec%%=*}
        printf -v "RPS_$side" '%s' "$(col "$side" 2 | median)"
        printf -v "P99_$side" '%s' "$(col "$side" 3 | median)"
        printf -v "BAD_$side" '%s' "$(col "$side" 4 | awk '{ n += $1 } END { print n + 0 }')"
        printf -v "RANGE_$side" '%s' "$(col "$side" 2 | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%d-%d", lo, hi }')"
    done
}
# The GET comparisons: tiercache and each anchor in BENCH_ANCHORS.
get_sides() { # TC_PATH FILE
    echo "tc=$URL$1"
    if [[ -n $BEFORE ]]; then echo "before=$BEFORE$1"; fi
    if anchor nginx; then echo "nginx=$NGINX/$2"; fi
    if anchor varnish; then echo "varnish=$VARNISH/$2"; fi
}

TC_K10_BAD=0 TC_M1_BAD=0 TC_PUT_BAD=0
if part get10; then
    mapfile -t sides < <(get_sides /v1/caches/k10 k10.json)
    compare get-10k "${sides[@]}"
    TC_K10_RPS=$RPS_tc TC_K10_P99=$P99_tc TC_K10_BAD=$BAD_tc TC_K10_RANGE=$RANGE_tc
    BE_K10_RPS=${RPS_before:-} BE_K10_P99=${P99_before:-}
    NG_K10_RPS=${RPS_nginx:-} NG_K10_P99=${P99_nginx:-} NG_K10_RANGE=${RANGE_nginx:-}
    VA_K10_RPS=${RPS_varnish:-} VA_K10_P99=${P99_varnish:-} VA_K10_RANGE=${RANGE_varnish:-}
fi
if part get1m; then
    mapfile -t sides < <(get_sides /v1/caches/m1 m1.json)
    compare get-1m "${sides[@]}"
    TC_M1_RPS=$RPS_tc TC_M1_P99=$P99_tc TC_M1_BAD=$BAD_tc TC_M1_RANGE=$RANGE_tc
    BE_M1_RPS=${RPS_before:-} BE_M1_P99=${P99_before:-}
    NG_M1_RPS=${RPS_nginx:-} NG_M1_P99=${P99_nginx:-} NG_M1_RANGE=${RANGE_nginx:-}
    VA_M1_RPS=${RPS_varnish:-} VA_M1_P99=${P99_varnish:-} VA_M1_RANGE=${RANGE_varnish:-}
fi
if part 304; then
    compare 304 "tc=$URL/v1/caches/k10@$TMP/inm-tiercache.lua" "nginx=$NGINX/k10.json@$TMP/inm-nginx.lua"
    TC_304_RPS=$RPS_tc TC_304_P99=$P99_tc NG_304_RPS=$RPS_nginx NG_304_P99=$P99_nginx
    # A 304 is a 3xx: wrk does not count it as an error. Check the answers really are 304.
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $TC_ETAG" "$URL/v1/caches/k10")
    [[ $code == 304 ]] || die "tiercache answered $code to If-None-Match"
fi
# put_rounds LABEL LUA BYTES THREADS CONNECTIONS: ROUNDS rounds of PUTs interleaved with
# the durable loop writing BYTES, their order swapped every round (the disk's speed moves
# with the neighbours' writes, so one run of each is not a ratio). Lines "tc RPS P99 BAD"
# and "loop RPS" in $TMP/LABEL.txt.
put_rounds() {
    local label=$1 lua=$2 bytes=$3 threads=$4 connections=$5 round side
    : >"$TMP/$label.txt"
    for round in $(seq 1 "$ROUNDS"); do
        for side in $( ((round % 2)) && echo "tc loop" || echo "loop tc"); do
            if [[ $side == tc ]]; then
                echo "tc $(THREADS=$threads CONNECTIONS=$connections run_wrk "tc-$label-$round" "$URL/v1/caches/put10" "$lua")"
            else
                echo "loop $("$DURABLE" "$TMP/durable" "${DURATION%s}" "$bytes" | awk '/writes_per_second/ { print $2 }')"
            fi
        done
    done >>"$TMP/$label.txt"
}
# side_median LABEL SIDE COLUMN: the median of one column of put_rounds' lines.
side_median() { awk -v s="$2" -v c="$3" '$1 == s { print $c }' "$TMP/$1.txt" | median; }
if part put; then
    put_rounds put10k "$TMP/put.lua" 10240 "$THREADS" "$CONNECTIONS"
    TC_PUT_RPS=$(side_median put10k tc 2) TC_PUT_P99=$(side_median put10k tc 3)
    TC_PUT_BAD=$(awk '$1 == "tc" { n += $4 } END { print n + 0 }' "$TMP/put10k.txt")
    DURABLE_RPS=$(side_median put10k loop 2)
    # One client, 1 KB: every PUT waits for the one before it.
    put_rounds put1k "$TMP/put1k.lua" 1024 1 1
    TC_PUT1K_RPS=$(side_median put1k tc 2) TC_PUT1K_P99=$(side_median put1k tc 3)
    DURABLE1K_RPS=$(side_median put1k loop 2)
fi

# --- cold read from file, then resident memory ------------------------------------------
if part cold || part rss; then
    log "restarting tiercache for cold reads"
    stop_tiercache
    start_tiercache
    RSS_START_KB=$(awk '/VmRSS/ { print $2 }' "/proc/$TC_PID/status")
    # The daemon's own time for these reads (parse, checksum, schema check, the hop through
    # the file tier's actor; no network): tiercache_read_duration_seconds{tier="file"}.
    file_hist() { curl -fs "$URL/metrics" | awk -v k="tiercache_read_duration_seconds_$1{tier=\"file\"}" '$1 == k { print $2 }'; }
    : >"$TMP/cold.txt"
    for i in $(seq 1 "$COLD_CACHES"); do
        name=$(printf 'c%03d' "$i")
        curl -s -D "$TMP/cold.headers" -o /dev/null -w '%{time_total}\n' "$URL/v1/caches/$name" >>"$TMP/cold.txt"
        tier=$(awk 'tolower($1) == "x-cache-tier:" { sub(/\r$/, "", $2); print $2 }' "$TMP/cold.headers")
        [[ $tier == file ]] || die "cold read of $name answered from tier '$tier', not file"
    done
    COLD_DAEMON_MS=$(awk -v s="$(file_hist sum)" -v n="$(file_hist count)" 'BEGIN { if (n + 0 == 0) print "-"; else printf "%.2f", s / n * 1000 }')
    read -r COLD_MEDIAN COLD_MIN COLD_MAX < <(sort -n "$TMP/cold.txt" | awk '
        { v[NR] = $1 * 1000 }
        END { printf "%.2f %.2f %.2f\n", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[1], v[NR] }')
    # One warm GET for comparison (same tool, same connection setup).
    WARM_MS=$(curl -s -o /dev/null -w '%{time_total}\n' "$URL/v1/caches/c001" | awk '{ printf "%.2f", $1 * 1000 }')
    DATA_BYTES=0
    for i in $(seq 1 $RSS_CACHES); do
        name=$(printf 'c%03d' "$i")
        bytes=$(curl -fs -o /dev/null -w '%{size_download}' "$URL/v1/caches/$name")
        DATA_BYTES=$((DATA_BYTES + bytes))
    done
    sleep 1
    RSS_KB=$(awk '/VmRSS/ { print $2 }' "/proc/$TC_PID/status")
    stop_tiercache
fi

# --- in process ---------------------------------------------------------------------------
if part memhit; then
    log "in-process memory hit (cargo bench)"
    (cd "$ROOT" && MEMORY_HIT_ITERS=${MEMORY_HIT_ITERS:-2000000} cargo bench --quiet -p tiercache-actors --bench memory_hit) \
        >"$TMP/memory_hit.txt" 2>&1 || die "memory_hit failed: $(tail -5 "$TMP/memory_hit.txt")"
    ns_of() { awk -v re="$1" '$0 ~ re { for (i = 2; i <= NF; i++) if ($i == "ns/op") { print $(i - 1); exit } }' "$TMP/memory_hit.txt"; }
    HIT_NS=$(ns_of '^MemoryView::fresh\\(k10\\)')
    READ_NS=$(ns_of '^Tiers::read\\(k10\\)')
fi

# --- the table -----------------------------------------------------------------------------
row() { printf '| %-40s | %14s | %-26s | %7s | %-12s |\n' "$@"; }
echo
echo "tiercache ${BENCH_BIN:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')} on $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ); wrk -t$THREADS -c$CONNECTIONS -d$DURATION x $ROUNDS interleaved rounds on the same cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "api.workers: ${BENCH_WORKERS:-default}; documents: 10 KB = $K10_BYTES bytes, 1 MB = $M1_BYTES bytes (canonical JSON, identical bytes from nginx)"
echo
row "benchmark" "tiercache" "anchor" "ratio" "target"
row "----------------------------------------" "--------------" "--------------------------" "-------" "------------"
# get_rows SIZE TC_RPS TC_P99 TC_RANGE NG_RPS NG_P99 NG_RANGE VA_RPS VA_P99 VA_RANGE: one row
# per anchor for requests/s and for p99, then the ranges of the rounds.
get_rows() {
    local name rps p99 range
    for name in nginx varnish; do
        if [[ $name == nginx ]]; then rps=$5 p99=$6; else rps=$8 p99=$9; fi
        [[ -n $rps ]] || continue
        row "GET $1 from memory, req/s" "$2" "$name $rps" "$(ratio "$2" "$rps")" ">= 1.0x"
        row "GET $1 from memory, p99 ms" "$3" "$name $p99" "$(ratio "$3" "$p99")" "<= 1.0x"
    done
    for name in tiercache nginx varnish; do
        case $name in tiercache) range=$4 ;; nginx) range=$7 ;; varnish) range=${10} ;; esac
        [[ -n $range ]] || continue
        row "  median of $ROUNDS rounds; range, req/s" "-" "$name $range" "-" "-"
    done
}
# before_rows SIZE TC_RPS TC_P99 BEFORE_RPS BEFORE_P99: this binary against BENCH_BIN_BEFORE.
before_rows() {
    [[ -n $4 ]] || return 0
    row "GET $1, req/s, vs the binary before" "$2" "before $4" "$(ratio "$2" "$4")" "-"
    row "GET $1, p99 ms, vs the binary before" "$3" "before $5" "$(ratio "$3" "$5")" "-"
}
if part get10; then
    get_rows "10 KB" "$TC_K10_RPS" "$TC_K10_P99" "$TC_K10_RANGE" "$NG_K10_RPS" "$NG_K10_P99" "$NG_K10_RANGE" \
        "$VA_K10_RPS" "$VA_K10_P99" "$VA_K10_RANGE"
    before_rows "10 KB" "$TC_K10_RPS" "$TC_K10_P99" "${BE_K10_RPS:-}" "${BE_K10_P99:-}"
fi
if part get1m; then
    get_rows "1 MB" "$TC_M1_RPS" "$TC_M1_P99" "$TC_M1_RANGE" "$NG_M1_RPS" "$NG_M1_P99" "$NG_M1_RANGE" \
        "$VA_M1_RPS" "$VA_M1_P99" "$VA_M1_RANGE"
    before_rows "1 MB" "$TC_M1_RPS" "$TC_M1_P99" "${BE_M1_RPS:-}" "${BE_M1_P99:-}"
fi
if part 304; then
    row "conditional GET (304), req/s" "$TC_304_RPS" "nginx $NG_304_RPS" "$(ratio "$TC_304_RPS" "$NG_304_RPS")" "-"
    row "conditional GET (304), p99 ms" "$TC_304_P99" "nginx $NG_304_P99" "$(ratio "$TC_304_P99" "$NG_304_P99")" "-"
fi
if part put; then
    row "PUT 10 KB (durable), req/s" "$TC_PUT_RPS" "durable write $DURABLE_RPS/s" "$(ratio "$TC_PUT_RPS" "$DURABLE_RPS")" ">= 0.8x"
    row "PUT 10 KB (durable), p99 ms" "$TC_PUT_P99" "-" "-" "-"
    row "PUT 1 KB, one client, req/s" "$TC_PUT1K_RPS" "durable write $DURABLE1K_RPS/s" "$(ratio "$TC_PUT1K_RPS" "$DURABLE1K_RPS")" ">= 0.8x"
    row "  p99 ms; median of $ROUNDS rounds" "$TC_PUT1K_P99" "-" "-" "-"
fi
if part cold || part rss; then
    row "cold read 1 MB from file, in daemon, ms" "$COLD_DAEMON_MS" "-" "-" "< 5 ms"
    row "  same over HTTP (curl), median ms" "$COLD_MEDIAN" "warm GET $WARM_MS ms" "$(ratio "$COLD_MEDIAN" "$WARM_MS")" "-"
    row "  (min / max of $COLD_CACHES caches)" "$COLD_MIN / $COLD_MAX" "-" "-" "-"
    row "RSS, $RSS_CACHES x 1 MB in memory, MiB" "$(awk -v k="$RSS_KB" 'BEGIN { printf "%.1f", k / 1024 }')" \
        "data $(awk -v b="$DATA_BYTES" 'BEGIN { printf "%.1f", b / 1048576 }') MiB" \
        "$(ratio "$((RSS_KB * 1024))" "$DATA_BYTES")" "< 2.0x"
    row "  RSS right after start, MiB" "$(awk -v k="$RSS_START_KB" 'BEGIN { printf "%.1f", k / 1024 }')" "-" "-" "-"
fi
if part memhit; then
    row "in-process memory hit, ns" "$HIT_NS" "Tiers::read $READ_NS ns" "-" "< 1000 ns"
fi
echo
if ((TC_K10_BAD + TC_M1_BAD + TC_PUT_BAD > 0)); then
    echo "WARNING: non-2xx answers: GET 10 KB $TC_K10_BAD, GET 1 MB $TC_M1_BAD, PUT $TC_PUT_BAD (see wrk outputs; BENCH_KEEP=1)"
fi
