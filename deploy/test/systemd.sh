# shellcheck shell=bash
# The systemd checks of deploy/test/run.sh (sourced; uses its helpers and variables):
# deploy/systemd/tiercache.service as shipped, under systemd 252 as PID 1 of a podman
# container (--systemd=always). `systemctl start` returns once READY=1 with the daemon's
# STATUS=, reload, stop drains and exits 0, the state directory is 0700 and owned by the
# dynamic user, data survives restart, the watchdog restarts a stopped daemon. The only
# change to the unit is a drop-in with WatchdogSec=6s, so that the watchdog check takes
# seconds instead of half a minute.

sd() { timeout 120 podman exec $name-sd "$@"; }
prop() { sd systemctl show -p "$1" --value tiercache; }
sd_logs_have() { sd journalctl -u tiercache SYSLOG_IDENTIFIER=tiercache -o cat | grep -q "$1"; }
sd_get() { sd curl -s -m 5 -H "Authorization: Bearer $token" http://127.0.0.1:8077/v1/caches/strava; }
sd_put() {
  sd curl -s -m 5 -o /dev/null -w '%{http_code}' -X PUT -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' --data "$1" http://127.0.0.1:8077/v1/caches/strava
}
restarted_since() { [ "$(prop NRestarts)" -gt "$1" ]; }
is_active() { [ "$(prop ActiveState)" = active ]; }
sd_running() { case "$(sd systemctl is-system-running)" in running | degraded) return 0 ;; *) return 1 ;; esac; }

systemd_image() {
  local ctx=$work/systemd
  mkdir -p "$ctx"
  cp "$bin" "$ctx/tiercache"
  cp deploy/systemd/tiercache.service "$ctx/"
  printf '[Service]\nWatchdogSec=6s\n' >"$ctx/watchdog.conf"
  # The documented helper for offline commands, taken from docs/operations.md as written.
  sed -n '/^tc() {/,/; }$/p' docs/operations.md >"$ctx/tc.sh"
  [ -s "$ctx/tc.sh" ] || fail "docs/operations.md: no tc() recipe"
  cat >"$ctx/tiercache.toml" <<EOF
project = "deploytest"
data_dir = "/var/lib/tiercache/data"
[log]
format = "json"
[api]
listen = ["127.0.0.1:8077"]
tokens_file = "api-tokens"
[postgres]
enabled = true
url = "postgres://postgres@host.containers.internal:$pgport/postgres"
password_file = "db-password"
sslmode = "disable"
[[caches]]
name = "strava"
EOF
  cat >"$ctx/Containerfile" <<EOF
FROM $sysbase
COPY tiercache /usr/local/bin/tiercache
COPY tiercache.service /etc/systemd/system/tiercache.service
COPY watchdog.conf /etc/systemd/system/tiercache.service.d/watchdog.conf
COPY tiercache.toml /etc/tiercache/tiercache.toml
COPY tc.sh /root/tc.sh
RUN install -d -m 0700 /etc/tiercache/credentials \\
 && printf 'unused-with-trust-auth' > /etc/tiercache/credentials/db-password \\
 && printf 'write:$token\n' > /etc/tiercache/credentials/api-tokens \\
 && chmod 0600 /etc/tiercache/credentials/* \\
 && printf 'PROJECT_ID=deploytest\\n' > /etc/tiercache/tiercache.env
CMD ["/lib/systemd/systemd"]
EOF
  timeout 300 podman build -q --format docker --pull=never -f "$ctx/Containerfile" -t "$sysimage" "$ctx" \
    >/dev/null 2>"$work/build.log" || { tail -20 "$work/build.log"; return 1; }
}

systemd_checks() {
  say "systemd: $sysimage"
  systemd_image
  podman run -d --name $name-sd --systemd=always "$sysimage" >/dev/null
  until_ok 60 sd_running || { fail "systemd did not come up: $(sd systemctl is-system-running 2>&1)"; return; }

  if sd systemctl start tiercache; then
    local status
    status=$(prop StatusText)
    [ "$(prop ActiveState)" = active ] && [[ "$status" == "ready: 1 cache, queue 0" ]] &&
      ok "systemctl start returned once ready, STATUS=$status" || fail "after start: $(prop ActiveState), STATUS=$status"
  else
    fail "systemctl start: $(sd journalctl -u tiercache -o cat | tail -5)"
    return
  fi
  [ "$(sd_put '{"runs": 1}')" = 200 ] && [ "$(sd_get)" = '{"runs":1}' ] && ok "PUT and GET in the unit" || fail "PUT/GET"

  # The dynamic user has no name here (no nss-systemd): compare uids.
  local mode uid
  mode=$(sd stat -c '%a %u' /var/lib/private/tiercache)
  uid=$(sd ps -o uid= -p "$(prop MainPID)" | tr -d ' ')
  [ "${mode%% *}" = 700 ] && [ "${mode#* }" = "$uid" ] && [ "$uid" != 0 ] &&
    ok "state directory 0700, owned by the dynamic user (uid $uid)" || fail "state directory: $mode, daemon uid $uid"

  sd systemctl reload tiercache && until_ok 10 sd_logs_have '"configuration reloaded"' &&
    ok "systemctl reload" || fail "reload"

  sd systemctl restart tiercache && [ "$(sd_get)" = '{"runs":1}' ] && ok "data survives restart" || fail "after restart: $(sd_get)"

  # A save held back by a lock on the table: the stop drains it, then exits 0.
  psql_ -c "BEGIN; LOCK TABLE cache_storage IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(6); COMMIT" >/dev/null &
  local locker=$!
  sleep 1
  sd_put '{"runs": 2}' >/dev/null
  sd systemctl stop tiercache
  wait $locker || true
  [ "$(prop Result)" = success ] && [ "$(prop ExecMainStatus)" = 0 ] && sd_logs_have '"retry queue drained"' &&
    ok "systemctl stop drained and exited 0" || fail "stop: Result=$(prop Result) status=$(prop ExecMainStatus)"

  backup_recipes
  sd systemctl start tiercache
  local pid restarts
  pid=$(prop MainPID)
  restarts=$(prop NRestarts)
  sd kill -STOP "$pid"
  if until_ok 40 restarted_since "$restarts" && until_ok 30 is_active &&
    [ "$(prop MainPID)" != "$pid" ] && [ "$(sd_get)" = '{"runs":2}' ]; then
    ok "the watchdog restarted the stopped daemon (WatchdogSec=6s)"
  else
    fail "watchdog: NRestarts=$(prop NRestarts), MainPID=$(prop MainPID) (was $pid), $(prop ActiveState):
$(sd journalctl -u tiercache -o short-monotonic --no-pager | grep -v '{"timestamp"' | tail -12)"
  fi
  podman rm -f -t 0 $name-sd >/dev/null
}

# The backup recipes of docs/operations.md with the service stopped: `tc export` and
# `tc restore` load the service's environment and credentials; a command run with
# another project is refused and moves nothing; the files go back to the dynamic user.
backup_recipes() {
  local out code
  out=$(sd bash -c '. /root/tc.sh && tc export /root/backup' 2>&1)
  [[ "$out" == "exported strava version "* ]] && ok "tc export (the backup recipe)" || fail "tc export: $out"
  out=$(sd bash -c '. /root/tc.sh && tc restore /root/backup' 2>&1)
  [[ "$out" == *"strava: current version "*" skipped"* ]] && ok "tc restore" || fail "tc restore: $out"
  out=$(sd env CREDENTIALS_DIRECTORY=/etc/tiercache/credentials PROJECT_ID=fundraising-app tiercache export /root/other --config /etc/tiercache/tiercache.toml 2>&1) && code=0 || code=$?
  [ "$code" = 78 ] && [[ "$out" == "config error: project: "* ]] &&
    [ -z "$(sd ls -A /var/lib/private/tiercache/data/corrupt)" ] &&
    ok "export with another project: exit 78, nothing moved" || fail "export with another project: exit $code: $out"
  sd chown -R --reference=/var/lib/private/tiercache /var/lib/private/tiercache
}
