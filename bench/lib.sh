# What bench/run.sh and bench/postgres.sh share; sourced by both, not run.

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# install_missing PKG...: Debian packages, with apt-get, as root.
install_missing() {
    (($#)) || return 0
    [[ $(id -u) == 0 ]] || die "missing $*; run as root or install them"
    log "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# A TCP port on 127.0.0.1 that nothing answers on, below the kernel's ephemeral range
# (where a busy machine's outgoing connections hold ports nothing listens on).
free_port() {
    local port low
    low=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    for _ in $(seq 200); do
        port=$((10000 + RANDOM % (low - 10000)))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    die "no free port"
}

# A JSON document of about $1 bytes; $2 makes it unique. Its output is already
# canonical (sorted keys, no spaces, plain numbers): 14,000 small objects per MB, the
# shape of a Strava activity list.
gen_json() {
    awk -v size="$1" -v seed="$2" 'BEGIN {
        printf "{\"activities\":["; n = 0; len = 16
        while (len < size) {
            item = sprintf("%s{\"distance\":%d.5,\"id\":%d,\"kudos\":%d,\"name\":\"activity-%s-%06d\"}",
                           (n ? "," : ""), (n * 37 + seed) % 9973, n, n % 17, seed, n)
            printf "%s", item; len += length(item); n++
        }
        printf "]}"
    }'
}

# Median of the numbers on stdin, one per line.
median() { sort -g | awk '{ v[NR] = $1 } END { printf "%s\n", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

# ratio A B: "A/Bx" with two decimals, "-" when B is 0 or empty.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2fx", a / b }'; }
