#!/usr/bin/env bash
# Where the time goes on the hot read path: a 10 KB cache read from memory by wrk
# (64 connections) while `perf record` samples the daemon; or, where perf cannot run,
# valgrind's callgrind under a shorter load. Prints the top functions.
#
#   bench/profile.sh               # perf if it works, else callgrind
#   PROFILER=callgrind bench/profile.sh
#   BENCH_KEEP=1 bench/profile.sh  # keep perf.data / callgrind.out and the reports
#
# Installs wrk, curl, perf (linux-perf) or valgrind when missing (Debian, as root).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PROFILER=${PROFILER:-auto}
SIZE=${PROFILE_SIZE:-10240}

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'profile: %s\n' "$*" >&2; exit 1; }
install() {
    [[ $(id -u) == 0 ]] || die "missing $*; run as root or install them"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
command -v wrk >/dev/null 2>&1 || install wrk
command -v curl >/dev/null 2>&1 || install curl
if [[ $PROFILER == auto ]]; then
    if command -v perf >/dev/null 2>&1 && perf record -o /dev/null -- true >/dev/null 2>&1; then
        PROFILER=perf
    else
        PROFILER=callgrind
    fi
fi
if [[ $PROFILER == callgrind ]]; then command -v valgrind >/dev/null 2>&1 || install valgrind; fi

log "building tiercache (release, with line tables)"
(cd "$ROOT" && cargo build --release --quiet -p tiercache --bin tiercache)
BIN="$ROOT/target/release/tiercache"

TMP=$(mktemp -d /tmp/tiercache-profile.XXXXXX)
PID=""
cleanup() {
    if [[ -n $PID ]]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    if [[ -n ${BENCH_KEEP:-} ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

port=""
for _ in $(seq 200); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[[ -n $port ]] || die "no free port"
URL="http://127.0.0.1:$port"
printf 'data_dir = "%s/data"\n[log]\nlevel = "warn"\n[api]\nlisten = ["127.0.0.1:%s"]\n[memory]\nttl = "1h"\n[[caches]]\nname = "k10"\n' \
    "$TMP" "$port" >"$TMP/tiercache.toml"

if [[ $PROFILER == callgrind ]]; then
    (cd "$TMP" && exec valgrind --tool=callgrind --callgrind-out-file="$TMP/callgrind.out" \
        "$BIN" run --config "$TMP/tiercache.toml" >"$TMP/daemon.log" 2>&1) &
    WAIT=400
else
    (cd "$TMP" && exec "$BIN" run --config "$TMP/tiercache.toml" >"$TMP/daemon.log" 2>&1) &
    WAIT=100
fi
PID=$!
for _ in $(seq $WAIT); do curl -fs -o /dev/null "$URL/readyz" && break; sleep 0.1; done
curl -fs -o /dev/null "$URL/readyz" || die "daemon not ready: $(tail -5 "$TMP/daemon.log")"
awk -v size="$SIZE" 'BEGIN { printf "{\"activities\":["; n = 0; len = 16
    while (len < size) { item = sprintf("%s{\"id\":%d,\"name\":\"activity-%06d\"}", (n ? "," : ""), n, n); printf "%s", item; len += length(item); n++ }
    printf "]}" }' >"$TMP/doc.json"
curl -fs -o /dev/null -X PUT -H 'Content-Type: application/json' --data-binary "@$TMP/doc.json" "$URL/v1/caches/k10"

if [[ $PROFILER == perf ]]; then
    log "wrk 12 s, perf record (dwarf call graphs) 6 s of it"
    wrk -t2 -c64 -d12s "$URL/v1/caches/k10" >"$TMP/wrk.txt" &
    WRK=$!
    sleep 3
    perf record -F 999 --call-graph dwarf,32768 -o "$TMP/perf.data" -p "$PID" -- sleep 6 >/dev/null 2>&1
    wait "$WRK"
    grep 'Requests/sec' "$TMP/wrk.txt" >&2
    log "perf report: self time by symbol"
    # --no-inline: resolving inlined frames of dwarf stacks takes many minutes.
    perf report -i "$TMP/perf.data" --no-children --no-inline --sort symbol --percent-limit 0.5 --stdio -g none \
        2>/dev/null | grep -E '^ +[0-9]' | sed 's/ *$//' | cut -c1-160 >"$TMP/perf-self.txt" || true
    head -40 "$TMP/perf-self.txt"
    log "perf report: inclusive time by symbol"
    perf report -i "$TMP/perf.data" --children --no-inline --sort symbol --percent-limit 0.3 --stdio -g none \
        2>/dev/null | grep -E '^ +[0-9]' | sed 's/ *$//' | cut -c1-160 >"$TMP/perf-children.txt" || true
    # The frames that say where the time goes (the runtime's wrappers are all ~100%).
    grep -E 'tiercache|actix_router|regex|Codec|poll_flush|poll_request|sendto|recv|insert_header|HttpDate|prometheus|malloc|free|memmove|epoll' \
        "$TMP/perf-children.txt" | head -45
else
    log "wrk 10 s under callgrind (everything is ~50x slower there)"
    wrk -t2 -c16 -d10s "$URL/v1/caches/k10" | grep 'Requests/sec' >&2
    kill -TERM "$PID"
    wait "$PID" || true
    PID=""
    log "callgrind_annotate: inclusive, then self"
    callgrind_annotate --inclusive=yes "$TMP/callgrind.out" >"$TMP/callgrind-inclusive.txt" 2>/dev/null || true
    callgrind_annotate "$TMP/callgrind.out" >"$TMP/callgrind-self.txt" 2>/dev/null || true
    head -60 "$TMP/callgrind-inclusive.txt"
    head -50 "$TMP/callgrind-self.txt"
fi
