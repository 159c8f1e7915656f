#!/usr/bin/env bash
# Where a PUT's time goes, and the PUT against the bare durable write, side by side.
#
#   bench/put_profile.sh                      # target/release/tiercache (built if missing)
#   bench/put_profile.sh /tmp/old /tmp/new    # several binaries, interleaved in one run
#   BENCH_DURATION=5s BENCH_ROUNDS=5 bench/put_profile.sh
#   PROFILE_STRACE_S=0 bench/put_profile.sh   # the ratios only, no strace
#
# One daemon per binary (memory and file tiers, `log.level = "warn"`), each on its own
# data_dir. In every round, in a rotated order: `wrk -t1 -c1` saving a 1 KB document one
# PUT after the other (a different body each time), against each daemon, and the bare
# durable write loop (bench/durable_write.rs, 1 KB). Prints the medians and the ratios.
# Then, per binary, `strace -f -ttt -T` of the daemon for PROFILE_STRACE_S seconds
# during the same load, split per PUT by bench/put_stages.py into: request read -> temp
# file created (admission, the hop to the file tier), the durable write itself, and
# directory fsync -> answer written (memory, queue, the answer). strace slows every
# syscall, so compare the stages with each other and across binaries, not with the
# throughput above.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${BENCH_DURATION:-5s}
ROUNDS=${BENCH_ROUNDS:-3}
STRACE_S=${PROFILE_STRACE_S:-3}
source "$ROOT/bench/lib.sh"

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v curl >/dev/null 2>&1 || missing+=(curl)
((STRACE_S == 0)) || command -v strace >/dev/null 2>&1 || missing+=(strace)
install_missing "${missing[@]}"

if (($# == 0)); then
    (cd "$ROOT" && cargo build --release --quiet -p tiercache --bin tiercache)
    set -- "$ROOT/target/release/tiercache"
fi
DURABLE="$ROOT/target/release/examples/durable_write"
[[ -x $DURABLE ]] || (cd "$ROOT" && cargo build --release --quiet --example durable_write)

TMP=$(mktemp -d /tmp/tiercache-put.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    if [[ -n ${BENCH_KEEP:-} ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

gen_json 1024 3 >"$TMP/k1.json"
cat >"$TMP/put1k.lua" <<LUA
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open("$TMP/k1.json", "rb"))
local rest = string.sub(f:read("*a"), 2)
f:close()
local n = 0
function request()
    n = n + 1
    return wrk.format(nil, nil, nil, '{"n":' .. n .. ',' .. rest)
end
LUA

URLS=()
for i in $(seq 0 $(($# - 1))); do
    bin=${*:$((i + 1)):1}
    dir="$TMP/d$i"
    port=$(free_port)
    mkdir -p "$dir/data"
    printf 'data_dir = "%s/data"\n\n[log]\nlevel = "warn"\n\n[api]\nlisten = ["127.0.0.1:%s"]\n\n[[caches]]\nname = "put1"\n' \
        "$dir" "$port" >"$dir/tiercache.toml"
    (cd "$dir" && exec "$bin" run --config "$dir/tiercache.toml" >>"$dir/tiercache.log" 2>&1) &
    PIDS+=($!)
    URLS+=("http://127.0.0.1:$port")
    for _ in $(seq 200); do
        curl -fs -o /dev/null "${URLS[$i]}/readyz" && break
        sleep 0.05
    done
    curl -fs -o /dev/null "${URLS[$i]}/readyz" || die "$bin not ready: $(tail -3 "$dir/tiercache.log")"
done

# put URL SECONDS: requests/s of one client, one PUT after the other.
put() {
    local out
    out=$(wrk -t1 -c1 -d"$2" -s "$TMP/put1k.lua" "$1/v1/caches/put1")
    if grep -q 'Non-2xx' <<<"$out"; then die "non-2xx answers: $out"; fi
    awk '/^Requests\/sec/ { print $2 }' <<<"$out"
}

log "$ROUNDS rounds of $DURATION per side, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
sides=(loop $(seq 0 $(($# - 1))))
: >"$TMP/rounds.txt"
for round in $(seq 1 "$ROUNDS"); do
    n=${#sides[@]}
    for k in $(seq 0 $((n - 1))); do
        side=${sides[$(((k + round) % n))]}
        if [[ $side == loop ]]; then
            echo "loop $("$DURABLE" "$TMP/durable" "${DURATION%s}" 1024 | awk '/writes_per_second/ { print $2 }')" >>"$TMP/rounds.txt"
        else
            echo "$side $(put "${URLS[$side]}" "$DURATION")" >>"$TMP/rounds.txt"
        fi
    done
done
LOOP=$(awk '$1 == "loop" { print $2 }' "$TMP/rounds.txt" | median)
printf '\n| 1 KB, one client, one save after the other | median /s | rounds | vs the durable write |\n|---|---|---|---|\n'
printf '| durable write loop (temp, fsync, rename, fsync dir) | %s | %s | 1.00x |\n' "$LOOP" \
    "$(awk '$1 == "loop" { printf "%s%s", sep, $2; sep = ", " }' "$TMP/rounds.txt")"
for i in $(seq 0 $(($# - 1))); do
    med=$(awk -v s="$i" '$1 == s { print $2 }' "$TMP/rounds.txt" | median)
    printf '| PUT, %s | %s | %s | %s |\n' "${*:$((i + 1)):1}" "$med" \
        "$(awk -v s="$i" '$1 == s { printf "%s%s", sep, $2; sep = ", " }' "$TMP/rounds.txt")" "$(ratio "$med" "$LOOP")"
done

((STRACE_S > 0)) || exit 0
for i in $(seq 0 $(($# - 1))); do
    printf '\n%s, strace -f -ttt -T for %s s:\n' "${*:$((i + 1)):1}" "$STRACE_S"
    wrk -t1 -c1 -d$((STRACE_S + 2))s -s "$TMP/put1k.lua" "${URLS[$i]}/v1/caches/put1" >/dev/null &
    wrk_pid=$!
    sleep 1
    timeout -s INT "$STRACE_S" strace -f -ttt -T -s 40 -p "${PIDS[$i]}" -o "$TMP/strace.$i" 2>/dev/null || true
    wait "$wrk_pid" || true
    python3 "$ROOT/bench/put_stages.py" "$TMP/strace.$i"
done
