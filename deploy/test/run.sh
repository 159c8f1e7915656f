#!/usr/bin/env bash
# The deployment, run for real: the image of deploy/docker/Dockerfile under podman, and
# deploy/systemd/tiercache.service under a real systemd (systemd as PID 1 in a podman
# container). Run as root on Debian 12 from anywhere in the repository:
#
#   deploy/test/run.sh            # exit 0 passed, 1 failed, 77 skipped (not root, no apt)
#
# What it needs it installs from the Debian mirror already configured (podman,
# debootstrap, runc, catatonit); no container registry is used. The base image
# (localhost/debian:bookworm-slim, made with debootstrap) and the systemd image
# (localhost/tiercache-deploy-test-systemd:base) stay in podman's image store, so later
# runs skip them. Everything else it makes (containers, the volume, the test images, a
# throwaway PostgreSQL cluster under a temporary directory) is named
# tiercache-deploy-test* and removed on exit. podman reads target/deploy-test/containers.conf
# (CONTAINERS_CONF): runc (crun cannot set the rlimits here) and explicit ulimits; the
# host's configuration is left alone. The binary is target/debug/tiercache (built when
# missing), or target/release/tiercache with TIERCACHE_PROFILE=release.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
started=$SECONDS
name=tiercache-deploy-test
base=localhost/debian:bookworm-slim
sysbase=localhost/$name-systemd:base
image=localhost/$name:latest
sysimage=localhost/$name-systemd:latest
token=deploy-test-write-token
failures=0

say() { printf 'deploy-test [%3ds] %s\n' $((SECONDS - started)) "$*"; }
ok() { say "ok: $*"; }
fail() {
  say "FAIL: $*"
  failures=$((failures + 1))
}
skip() {
  say "skipped: $*"
  exit 77
}
# until_ok SECONDS CMD...: runs CMD every 0.5 s until it succeeds; 1 when it never did.
until_ok() {
  local limit=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $limit ] || return 1
    sleep 0.5
  done
}

[ "$(id -u)" -eq 0 ] || skip "needs root (podman containers with systemd, debootstrap)"
[ -r /etc/apt/sources.list.d/debian.sources ] || skip "no Debian mirror configured (/etc/apt/sources.list.d/debian.sources)"
mirror=$(sed -n 's/^URIs: *\(.*\/debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources | head -1)
if ! command -v podman >/dev/null || ! command -v debootstrap >/dev/null || ! command -v runc >/dev/null ||
  [ ! -x /usr/libexec/podman/catatonit ]; then
  say "installing podman, debootstrap, runc, catatonit (for --init)"
  command -v apt-get >/dev/null || skip "podman, debootstrap and runc are missing and there is no apt-get"
  timeout 600 apt-get install -y -q --no-install-recommends podman debootstrap runc catatonit containernetworking-plugins \
    >/dev/null || skip "apt-get install podman debootstrap runc failed"
fi
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pgbin/initdb" ] || skip "no PostgreSQL server binaries under /usr/lib/postgresql"

cache=$root/target/deploy-test
mkdir -p "$cache"
cat >"$cache/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF=$cache/containers.conf
work=$(mktemp -d "/tmp/$name.XXXXXX")
chmod 0755 "$work"

cleanup() {
  local code=$?
  set +e
  for c in $name-c1 $name-c2 $name-sd; do podman rm -f -t 0 "$c" >/dev/null 2>&1; done
  podman volume rm -f $name-data >/dev/null 2>&1
  podman rmi -f "$image" "$sysimage" >/dev/null 2>&1
  [ -f "$work/pg/postmaster.pid" ] && runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg" -m immediate -w -t 20 stop >/dev/null 2>&1
  rm -rf "$work"
  exit $code
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- The binary and the images -------------------------------------------------------
profile=${TIERCACHE_PROFILE:-debug}
bin=target/$profile/tiercache
if [ ! -x "$bin" ]; then
  say "building $bin"
  if [ "$profile" = release ]; then cargo build --release --locked --bin tiercache; else cargo build --locked --bin tiercache; fi
fi
if ! podman image exists $base; then
  say "making $base with debootstrap from $mirror (cached afterwards)"
  timeout 900 debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -5 "$work/debootstrap.log"; exit 1; }
  tar -C "$work/rootfs" -c . | podman import - $base >/dev/null
  rm -rf "$work/rootfs"
fi
if ! podman image exists $sysbase; then
  say "making $sysbase (systemd, procps, curl; cached afterwards)"
  printf 'FROM %s\nRUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd procps curl ca-certificates && rm -rf /var/lib/apt/lists/*\n' \
    $base >"$work/Containerfile.sysbase"
  timeout 900 podman build -q --format docker --pull=never -f "$work/Containerfile.sysbase" -t $sysbase "$work" \
    >/dev/null 2>"$work/build.log" || { tail -20 "$work/build.log"; exit 1; }
fi
say "podman build --format docker --target prebuilt ($bin)"
timeout 600 podman build -q --format docker --pull=never -f deploy/docker/Dockerfile --target prebuilt \
  --build-arg TIERCACHE_BINARY="$bin" -t "$image" . >/dev/null 2>"$work/build.log" || { tail -20 "$work/build.log"; exit 1; }

# --- A throwaway PostgreSQL on the host ------------------------------------------------
pgport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')
install -d -o postgres -m 0700 "$work/pg" "$work/pgsock"
runuser -u postgres -- "$pgbin/initdb" -D "$work/pg" -A trust -U postgres >/dev/null
echo "host all all 0.0.0.0/0 trust" >>"$work/pg/pg_hba.conf"
runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg" -w -t 30 -l "$work/pg/log" \
  -o "-p $pgport -k $work/pgsock -c listen_addresses='*' -c fsync=off" start >/dev/null
psql_() { runuser -u postgres -- psql -h "$work/pgsock" -p "$pgport" -U postgres -d postgres -X -q -At "$@"; }
host_url=postgres://postgres@127.0.0.1:$pgport/postgres
# The schema through the daemon's own migrate, as the table owner (postgres).
printf 'project = "deploytest"\ndata_dir = "%s/migrate-data"\n[postgres]\nenabled = true\nurl = "%s"\nsslmode = "disable"\n' \
  "$work" "$host_url" >"$work/migrate.toml"
"$bin" migrate --config "$work/migrate.toml" >/dev/null && ok "tiercache migrate as the table owner" || fail "migrate"
psql_ -c "INSERT INTO projects (project_name) VALUES ('deploytest')"

. deploy/test/container.sh
. deploy/test/systemd.sh
container_checks
systemd_checks

if [ "$failures" -gt 0 ]; then
  say "$failures failure(s)"
  exit 1
fi
say "all deploy checks passed in $((SECONDS - started)) s"
