# shellcheck shell=bash
# The container checks of deploy/test/run.sh (sourced; uses its helpers and variables):
# uid 10001, ready, `podman healthcheck run`, PUT/GET through -p, SIGHUP reloads,
# `podman stop` exits 0 having drained, a new container on the same volume serves the
# saved document, saves reach the host's Postgres. podman's complaints that timed health
# checks need a host systemd go to a log: the check is run by hand instead.

# The secret as the documented recipe makes it: a directory of its own, owned by 10001.
container_secrets() {
  install -d -m 0700 -o 10001 -g 10001 "$work/container-secrets"
  (umask 077 && printf 'write:%s\n' "$token" >"$work/container-secrets/api-tokens")
  chown 10001:10001 "$work/container-secrets/api-tokens"
}

# run_container NAME PORT: the documented `docker run`, with the host's Postgres.
run_container() {
  podman run -d --name "$1" --init -p "127.0.0.1:$2:8077" -v $name-data:/var/lib/tiercache \
    --mount "type=bind,src=$work/container-secrets/api-tokens,dst=/run/secrets/api-tokens,readonly" \
    -e SUPABASE_ENABLED=true -e "SUPABASE_DB_URL=postgres://postgres@host.containers.internal:$pgport/postgres" \
    -e TIERCACHE__POSTGRES__SSLMODE=disable -e PROJECT_ID=deploytest \
    --stop-timeout 45 "$image" >/dev/null 2>>"$work/podman.log"
}

ready_on() { [ "$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/readyz")" = 200 ]; }
row_is() { [ "$(psql_ -c "SELECT data::text FROM cache_storage WHERE cache_type = 'strava'")" = "$1" ]; }
get_on() { curl -s -m 5 -H "Authorization: Bearer $token" "http://127.0.0.1:$1/v1/caches/strava"; }
logs_have() { podman logs "$1" 2>&1 | grep -q "$2"; }

container_checks() {
  say "container: $image"
  container_secrets
  # Below the kernel's ephemeral range: the port next to Postgres's was taken by a client
  # connection's source port on a busy machine.
  local port
  port=$(python3 -c 'import random, socket
for _ in range(200):
    p = random.randrange(20000, 32000); s = socket.socket()
    try: s.bind(("127.0.0.1", p)); print(p); break
    except OSError: pass
    finally: s.close()')
  run_container $name-c1 $port
  if until_ok 60 ready_on $port; then ok "container ready (GET /readyz through -p)"; else
    fail "container not ready in 60 s: $(podman logs $name-c1 2>&1 | tail -5)"
    return
  fi
  [ "$(podman exec $name-c1 id -u)" = 10001 ] && [ "$(podman exec $name-c1 id -g)" = 10001 ] &&
    ok "runs as uid 10001, gid 10001" || fail "uid/gid: $(podman exec $name-c1 id)"
  [ "$(podman inspect -f '{{.Config.Healthcheck.Test}}' $name-c1)" != "[]" ] || fail "the image has no HEALTHCHECK (OCI format?)"
  podman healthcheck run $name-c1 >/dev/null 2>&1 && ok "podman healthcheck run passes" || fail "podman healthcheck run"

  local put
  put=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -X PUT -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' --data '{"runs": 1}' "http://127.0.0.1:$port/v1/caches/strava")
  [ "$put" = 200 ] && [ "$(get_on $port)" = '{"runs":1}' ] &&
    ok "PUT and GET through -p" || fail "PUT answered $put"
  if until_ok 15 row_is '{"runs": 1}'; then
    ok "the save reached Postgres on the host"
  else
    fail "no row in the host's Postgres: $(psql_ -c 'SELECT project_id, cache_type FROM cache_storage' 2>&1)"
  fi

  podman kill --signal HUP $name-c1 >/dev/null
  until_ok 10 logs_have $name-c1 '"configuration reloaded"' && ok "SIGHUP reloads" || fail "no reload after SIGHUP"

  # A save held back by a lock on the table: `podman stop` waits for the drain.
  psql_ -c "BEGIN; LOCK TABLE cache_storage IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(6); COMMIT" >/dev/null &
  local locker=$!
  sleep 1
  curl -s -m 5 -o /dev/null -X PUT -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    --data '{"runs": 2}' "http://127.0.0.1:$port/v1/caches/strava"
  timeout 60 podman stop -t 45 $name-c1 >/dev/null 2>>"$work/podman.log"
  wait $locker || true
  local code
  code=$(podman inspect -f '{{.State.ExitCode}}' $name-c1)
  [ "$code" = 0 ] && logs_have $name-c1 '"retry queue drained"' && ok "podman stop: drained, exit 0" ||
    fail "podman stop: exit $code: $(podman logs $name-c1 2>&1 | tail -3)"
  row_is '{"runs": 2}' &&
    ok "the drained save is in Postgres" || fail "the drained save is not in Postgres"
  podman rm $name-c1 >/dev/null 2>>"$work/podman.log"

  run_container $name-c2 $port
  if until_ok 60 ready_on $port && [ "$(get_on $port)" = '{"runs":2}' ]; then
    ok "a new container on the same volume serves the saved document"
  else
    fail "the second container: $(podman logs $name-c2 2>&1 | tail -3)"
  fi
  podman rm -f -t 0 $name-c2 >/dev/null 2>>"$work/podman.log"
}
