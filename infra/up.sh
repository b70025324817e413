#!/usr/bin/env bash
# Production stack for hill on one machine, without Docker: PostgreSQL, a Prefect server and an
# MLflow tracking server on it, a Prefect process work pool with a worker, and the gate service.
#   infra/up.sh                  # everything; idempotent: healthy services are left alone,
#                                # dead or unhealthy ones are (re)started
#   infra/up.sh worker gate      # just those (they need the servers up)
#   infra/down.sh [service...]   # stops what this started
#   HILL_DB=sqlite infra/up.sh prefect mlflow   # one user's servers, no PostgreSQL (`hill up`)
# Services: postgres prefect mlflow worker gate. Ports, state folder, HILL_DB: see infra/lib.sh.
# Everything listens on 127.0.0.1 only; state, pids and logs live in $HILL_INFRA_DIR.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=("${SERVICES[@]}")
for s in "${wanted[@]}"; do
  [[ " ${SERVICES[*]} " == *" $s "* ]] || die "up.sh: unknown service '$s' (one of: ${SERVICES[*]})"
done
[ -x "$VENV/bin/prefect" ] || die "up.sh: no $VENV/bin/prefect; run 'make install' first (or set VENV)"

mkdir -p "$HILL_INFRA_DIR" "$PIDS" "$LOGS" "$HILL_INFRA_DIR/prefect" "$HILL_INFRA_DIR/mlartifacts"
exec 9>"$HILL_INFRA_DIR/.lock"
flock -w 600 9 || die "up.sh: another up.sh/down.sh holds $HILL_INFRA_DIR/.lock"

# Database access: role `hill` with a random password (kept in secrets/, mode 0600) over TCP on
# 127.0.0.1 (scram-sha-256); no trust on loopback. The superuser `postgres` is reached only
# through the socket folder pg/run, mode 0700 and owned by the database's OS user.
SECRETS="$HILL_INFRA_DIR/secrets"
mkdir -p -m 0700 "$SECRETS"
if [ ! -s "$SECRETS/pg-password" ]; then
  (umask 077 && od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$SECRETS/pg-password")
fi
PG_PASSWORD="$(cat "$SECRETS/pg-password")"
(umask 077 && printf '127.0.0.1:*:*:hill:%s\n' "$PG_PASSWORD" >"$SECRETS/pgpass")
PG_URL="hill@127.0.0.1:$HILL_PG_PORT" # no password: libpq takes it from PGPASSFILE
# Nothing in git: the state folder may sit in a user's project (`hill up` puts it there).
[ -e "$HILL_INFRA_DIR/.gitignore" ] || echo '*' >"$HILL_INFRA_DIR/.gitignore"

common_env=(
  PREFECT_HOME="$HILL_INFRA_DIR/prefect" PREFECT_SERVER_ANALYTICS_ENABLED=false
  DVC_NO_ANALYTICS=1 GRADIO_ANALYTICS_ENABLED=False MPLBACKEND=Agg
)
client_env=(
  "${common_env[@]}" PREFECT_API_URL="$PREFECT_API" MLFLOW_TRACKING_URI="$MLFLOW_URI"
)

# Start "$@" as service $1 in its own session (so down.sh can kill it as a group), in the
# project folder (the worker's flows and the gate service read its params.yaml, runs/, data/),
# logging to logs/<service>.log, pid in pids/<service>.pid.
spawn() {
  local name="$1"; shift
  printf '=== %s up.sh starts %s\n' "$(date -Is)" "$name" >>"$LOGS/$name.log"
  (cd "$HILL_PROJECT_DIR" && exec setsid "$@" </dev/null >>"$LOGS/$name.log" 2>&1 9>&-) &
  echo $! >"$PIDS/$name.pid"
}

# Wait until `health` ($2...) passes, while the pid in pids/$1.pid stays alive.
await() {
  local name="$1"; shift
  local pid deadline=$((SECONDS + HILL_HEALTH_TIMEOUT))
  pid="$(read_pid "$name" || true)"
  until "$@"; do
    if [ -n "$pid" ] && ! pid_alive "$pid"; then
      die "up.sh: $name exited while starting; see $LOGS/$name.log"
    fi
    [ $SECONDS -lt $deadline ] || die "up.sh: $name not healthy after ${HILL_HEALTH_TIMEOUT}s; see $LOGS/$name.log"
    sleep 1
  done
}

# Is our $1 running (leader pid alive) and healthy ($2...)? A few quick tries, no long waits.
# Running but unhealthy: stopped here, so the caller starts it afresh.
running_healthy() {
  local name="$1"; shift
  local pid i
  pid="$(read_pid "$name" || true)"
  [ -n "$pid" ] || return 1
  if ! leader_alive "$pid"; then # dead: clear its pid file and whatever it left behind
    "$(dirname "$0")/down.sh" --locked "$name" >/dev/null
    return 1
  fi
  for i in 1 2 3; do "$@" && return 0; sleep 1; done
  say "$name: pid $pid is running but unhealthy; restarting it"
  "$(dirname "$0")/down.sh" --locked "$name"
  return 1
}

need_port_free() {
  port_open "$2" && die "up.sh: $1: port $2 on 127.0.0.1 is taken by a process up.sh did not start; pick another with HILL_${1^^}_PORT"
  return 0
}

# --- PostgreSQL -----------------------------------------------------------------------------
pg_healthy() { "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$HILL_PG_PORT" -t 2; }
pg_running() { as_pg "$PGBIN/pg_ctl" status -D "$PGDATA" >/dev/null 2>&1; }
up_postgres() {
  PGBIN="$(pg_bin)" || die "up.sh: postgres: no PostgreSQL in /usr/lib/postgresql/*/bin (apt-get install postgresql) and no HILL_PG_BIN"
  if pg_running && pg_healthy; then
    head -n 1 "$PGDATA/postmaster.pid" >"$PIDS/postgres.pid"
    say "postgres: running (pid $(read_pid postgres)) on 127.0.0.1:$HILL_PG_PORT"
  else
    if pg_running; then
      say "postgres: running but not answering on 127.0.0.1:$HILL_PG_PORT; restarting it"
      as_pg "$PGBIN/pg_ctl" stop -D "$PGDATA" -m fast -w -t "$HILL_STOP_TIMEOUT" >/dev/null || true
    fi
    need_port_free pg "$HILL_PG_PORT"
    mkdir -p "$PG_ROOT" "$PG_SOCK"
    touch "$LOGS/postgres.log"
    if [ "$(id -u)" = 0 ]; then
      chown -R "$PG_OS_USER:" "$PG_ROOT"
      chown "$PG_OS_USER:" "$LOGS/postgres.log"
      runuser -u "$PG_OS_USER" -- test -w "$PG_ROOT" ||
        die "up.sh: postgres: user $PG_OS_USER cannot reach $PG_ROOT (is a parent folder of HILL_INFRA_DIR closed to others?)"
    fi
    chmod 0700 "$PG_SOCK"
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
      say "postgres: initdb in $PGDATA"
      as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres -E UTF8 --locale=C \
        --auth-local=trust --auth-host=scram-sha-256 >>"$LOGS/postgres.log" 2>&1 ||
        die "up.sh: postgres: initdb failed; see $LOGS/postgres.log"
      echo "include 'hill.conf'" | as_pg tee -a "$PGDATA/postgresql.conf" >/dev/null
    fi
    # Rewritten on every start: the port may change between runs.
    printf "listen_addresses = '127.0.0.1'\nport = %s\nunix_socket_directories = '%s'\nunix_socket_permissions = 0700\n" \
      "$HILL_PG_PORT" "$PG_SOCK" | as_pg tee "$PGDATA/hill.conf" >/dev/null
    printf '=== %s up.sh starts postgres\n' "$(date -Is)" >>"$LOGS/postgres.log"
    as_pg "$PGBIN/pg_ctl" start -D "$PGDATA" -l "$LOGS/postgres.log" -w -t "$HILL_HEALTH_TIMEOUT" >/dev/null ||
      die "up.sh: postgres failed to start; see $LOGS/postgres.log"
    head -n 1 "$PGDATA/postmaster.pid" >"$PIDS/postgres.pid"
    await postgres pg_healthy
    say "postgres: started (pid $(read_pid postgres)) on 127.0.0.1:$HILL_PG_PORT"
  fi
  # Role and databases, idempotently (through the socket, as the superuser).
  local psql=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$HILL_PG_PORT" -U postgres -d postgres)
  as_pg "${psql[@]}" >/dev/null <<SQL || die "up.sh: postgres: creating role/databases failed"
SELECT 'CREATE ROLE hill LOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'hill')\gexec
ALTER ROLE hill PASSWORD '$PG_PASSWORD';
SELECT 'CREATE DATABASE prefect OWNER hill' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'prefect')\gexec
SELECT 'CREATE DATABASE mlflow OWNER hill' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'mlflow')\gexec
SQL
}

# --- Prefect server -------------------------------------------------------------------------
prefect_healthy() { http_ok "$PREFECT_API/health" true; }
up_prefect() {
  if running_healthy prefect prefect_healthy; then
    say "prefect: running (pid $(read_pid prefect)) at $PREFECT_API"; return
  fi
  need_port_free prefect "$HILL_PREFECT_PORT"
  # sqlite: Prefect's default database, prefect.db in its PREFECT_HOME (prefect/ here).
  local db=()
  [ "$HILL_DB" = sqlite ] ||
    db=(PREFECT_API_DATABASE_CONNECTION_URL="postgresql+asyncpg://hill:$PG_PASSWORD@127.0.0.1:$HILL_PG_PORT/prefect")
  # The UI finds its API from PREFECT_SERVER_API_HOST/PORT (else it calls 127.0.0.1:4200).
  spawn prefect env "${common_env[@]}" "${db[@]}" \
    PREFECT_SERVER_API_HOST=127.0.0.1 PREFECT_SERVER_API_PORT="$HILL_PREFECT_PORT" \
    "$VENV/bin/prefect" server start --host 127.0.0.1 --port "$HILL_PREFECT_PORT"
  await prefect prefect_healthy
  say "prefect: started (pid $(read_pid prefect)) at $PREFECT_API"
}

# --- MLflow tracking server -----------------------------------------------------------------
# sqlite: the project's own store, as `hill run` writes it without a server, artifacts as plain
# file:// locations that a client on this machine writes directly (not proxied), so that an
# experiment created through the server stays usable without it and the other way round.
if [ "$HILL_DB" = sqlite ]; then
  mlflow_store=(--backend-store-uri "sqlite:///$HILL_PROJECT_DIR/mlflow.db"
    --default-artifact-root "file://$HILL_PROJECT_DIR/mlartifacts" --no-serve-artifacts)
else
  mlflow_store=(--backend-store-uri "postgresql://$PG_URL/mlflow"
    --artifacts-destination "$HILL_INFRA_DIR/mlartifacts")
fi
mlflow_healthy() { http_ok "$MLFLOW_URI/health" OK; }
up_mlflow() {
  if running_healthy mlflow mlflow_healthy; then
    say "mlflow: running (pid $(read_pid mlflow)) at $MLFLOW_URI"; return
  fi
  need_port_free mlflow "$HILL_MLFLOW_PORT"
  # Loopback only: bound to 127.0.0.1 and accepting only loopback Host headers. No job runner:
  # its GenAI jobs are unused here and it would add seven huey consumer processes.
  local p="$HILL_MLFLOW_PORT"
  spawn mlflow env "${common_env[@]}" PGPASSFILE="$SECRETS/pgpass" MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false \
    "$VENV/bin/mlflow" server --host 127.0.0.1 --port "$p" --workers "$HILL_MLFLOW_WORKERS" \
    "${mlflow_store[@]}" \
    --allowed-hosts "127.0.0.1,127.0.0.1:$p,localhost,localhost:$p" \
    --x-frame-options SAMEORIGIN
  await mlflow mlflow_healthy
  say "mlflow: started (pid $(read_pid mlflow)) at $MLFLOW_URI"
}

# --- Prefect work pool and worker -----------------------------------------------------------
worker_healthy() { worker_heartbeat_since "$(($(date +%s) - 120))"; }
up_worker() {
  prefect_healthy || die "up.sh: worker: the Prefect server is not healthy at $PREFECT_API (infra/up.sh prefect)"
  local out
  if ! out="$(env "${client_env[@]}" "$VENV/bin/prefect" work-pool create "$HILL_POOL" --type process 2>&1)"; then
    grep -qi "already exists" <<<"$out" || { echo "$out" >&2; die "up.sh: worker: creating work pool $HILL_POOL failed"; }
  fi
  if running_healthy worker worker_healthy; then
    say "worker: running (pid $(read_pid worker)) on pool $HILL_POOL"; return
  fi
  local since
  since="$(date +%s)"
  # Not `prefect worker start`: that one exits for good when the Prefect server stays down a
  # few minutes, and a run resumed after the outage would wait for a person to restart it.
  # pipelines/worker.py starts the same process worker again, in the same process.
  spawn worker env "${client_env[@]}" \
    "$VENV/bin/python" -m pipelines.worker --pool "$HILL_POOL" --name "$HILL_WORKER_NAME"
  await worker worker_heartbeat_since "$since"
  say "worker: started (pid $(read_pid worker)) on pool $HILL_POOL"
}

# --- Gate service ---------------------------------------------------------------------------
gate_healthy() { http_ok "http://127.0.0.1:$HILL_GATE_PORT/healthz"; }
up_gate() {
  if ! (cd "$HILL_PROJECT_DIR" && "$VENV/bin/hill" gates serve --help >/dev/null 2>&1); then
    say "gate: skipped: 'hill gates serve' is not available in this checkout"
    return
  fi
  if running_healthy gate gate_healthy; then
    say "gate: running (pid $(read_pid gate)) at http://127.0.0.1:$HILL_GATE_PORT/"; return
  fi
  need_port_free gate "$HILL_GATE_PORT"
  # Loopback needs no HILL_GATE_AUTH; when set, it passes through like the rest of the env.
  spawn gate env "${client_env[@]}" \
    "$VENV/bin/hill" gates serve --host 127.0.0.1 --port "$HILL_GATE_PORT"
  await gate gate_healthy
  say "gate: started (pid $(read_pid gate)) at http://127.0.0.1:$HILL_GATE_PORT/"
}

# The Prefect and MLflow servers need only PostgreSQL (or nothing, on sqlite), not each other:
# they start side by side, each in a subshell whose `die` ends only itself; the worker and the
# gate service need both, so they wait.
starting=()
wait_started() {
  local job failed=0
  for job in "${starting[@]}"; do wait "$job" || failed=1; done
  starting=()
  [ $failed = 0 ] || die "up.sh: a server failed to start (see above)"
}
for s in "${SERVICES[@]}"; do
  [[ " ${wanted[*]} " == *" $s "* ]] || continue
  case "$s" in
    prefect | mlflow) "up_$s" & starting+=($!) ;;
    *) wait_started; "up_$s" ;;
  esac
done
wait_started

# Written whole before it is shown: `up.sh | head -1` must not cut the file short. The gate
# service's URL goes in too, so that `hill deploy` links to the port it really listens on.
printf 'export PREFECT_API_URL=%s\nexport MLFLOW_TRACKING_URI=%s\nexport HILL_GATE_URL=%s\n' \
  "$PREFECT_API" "$MLFLOW_URI" "http://127.0.0.1:$HILL_GATE_PORT" >"$HILL_INFRA_DIR/env.sh.tmp"
mv "$HILL_INFRA_DIR/env.sh.tmp" "$HILL_INFRA_DIR/env.sh"
cat "$HILL_INFRA_DIR/env.sh" || true
