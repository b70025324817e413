# Shared by infra/up.sh and infra/down.sh (sourced, not run). Settings, all from the environment:
#   HILL_INFRA_DIR     all state: pg/, prefect/, mlartifacts/, pids/, logs/, env.sh (default .hill-infra/)
#   HILL_PG_PORT=5433  HILL_PREFECT_PORT=4200  HILL_MLFLOW_PORT=5000  HILL_GATE_PORT=7870
#   HILL_POOL=hill-pool  HILL_WORKER_NAME=hill-worker  HILL_MLFLOW_WORKERS=2
#   HILL_HEALTH_TIMEOUT=120 (s to wait for a service to turn healthy)  HILL_STOP_TIMEOUT=20 (s, TERM then KILL)
#   HILL_PG_BIN        PostgreSQL's bin folder (default: the newest /usr/lib/postgresql/*/bin)
#   VENV               the project's virtual environment (default .venv)
#   HILL_PROJECT_DIR   where the worker and the gate service run: the hill project whose
#                      params.yaml, runs/ and data/ they use (default: this checkout)
#   HILL_DB=postgres   the servers' databases: postgres (the production stack), or sqlite for one
#                      user (`hill up`): Prefect's own prefect.db in $HILL_INFRA_DIR/prefect, and
#                      MLflow over the project's mlflow.db and mlartifacts/, the very store
#                      `hill run` writes without a server, so runs stay in one place either way
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(cd "$ROOT" && realpath -m "${VENV:-.venv}")"
HILL_INFRA_DIR="$(cd "$ROOT" && realpath -m "${HILL_INFRA_DIR:-.hill-infra}")"
HILL_PROJECT_DIR="$(cd "$ROOT" && realpath -m "${HILL_PROJECT_DIR:-.}")"
HILL_PG_PORT="${HILL_PG_PORT:-5433}"
HILL_PREFECT_PORT="${HILL_PREFECT_PORT:-4200}"
HILL_MLFLOW_PORT="${HILL_MLFLOW_PORT:-5000}"
HILL_GATE_PORT="${HILL_GATE_PORT:-7870}"
HILL_POOL="${HILL_POOL:-hill-pool}"
HILL_WORKER_NAME="${HILL_WORKER_NAME:-hill-worker}"
HILL_MLFLOW_WORKERS="${HILL_MLFLOW_WORKERS:-2}"
HILL_HEALTH_TIMEOUT="${HILL_HEALTH_TIMEOUT:-120}"
HILL_STOP_TIMEOUT="${HILL_STOP_TIMEOUT:-20}"
HILL_DB="${HILL_DB:-postgres}"
case "$HILL_DB" in
  postgres | sqlite) ;;
  *) echo "HILL_DB must be postgres or sqlite, not '$HILL_DB'" >&2; exit 1 ;;
esac

SERVICES=(postgres prefect mlflow worker gate) # start order; down.sh stops in reverse
PIDS="$HILL_INFRA_DIR/pids"
LOGS="$HILL_INFRA_DIR/logs"
PG_ROOT="$HILL_INFRA_DIR/pg"
PGDATA="$PG_ROOT/data"
PG_SOCK="$PG_ROOT/run"
PREFECT_API="http://127.0.0.1:$HILL_PREFECT_PORT/api"
MLFLOW_URI="http://127.0.0.1:$HILL_MLFLOW_PORT"

die() { echo "$*" >&2; exit 1; }
say() { echo "$*"; }

pg_bin() {
  if [ -n "${HILL_PG_BIN:-}" ]; then echo "$HILL_PG_BIN"; return; fi
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  [ -n "$d" ] && [ -x "$d/pg_ctl" ] && echo "$d"
}

# PostgreSQL refuses to run as root: as root the data folder belongs to the `postgres` system
# user and every PostgreSQL command runs as that user; otherwise as the current user.
if [ "$(id -u)" = 0 ]; then PG_OS_USER=postgres; else PG_OS_USER="$(id -un)"; fi
as_pg() {
  # fd 9 is up.sh's lock: the postmaster must not inherit it.
  if [ "$(id -u)" = 0 ]; then (cd "$PG_ROOT" && exec runuser -u "$PG_OS_USER" -- "$@" 9>&-)
  else (cd "$PG_ROOT" && exec "$@" 9>&-); fi
}

# A process counts as alive when it exists and is no zombie; our daemons must also still lead
# the session up.sh gave them with setsid, so that a reused pid is not mistaken for ours.
# proc_stat PID sets P_STATE P_PPID P_PGRP P_SID (no forks: session_tree reads all of /proc).
proc_stat() {
  local stat
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  stat="${stat##*) }"
  read -r P_STATE P_PPID P_PGRP P_SID _ <<<"$stat"
}
pid_alive() { proc_stat "$1" && [ "$P_STATE" != Z ] && [ "$P_STATE" != X ]; }
leader_alive() { pid_alive "$1" && [ "$P_SID" = "$1" ]; }
# Live processes of session SID and every live descendant of its leader (children that left
# the session with their own setsid included), one per line.
session_tree() {
  local sid="$1" p changed=1
  local -A parent=() seen=(["$sid"]=1)
  for p in /proc/[0-9]*; do
    p="${p#/proc/}"
    pid_alive "$p" || continue
    parent[$p]="$P_PPID"
    if [ "$P_SID" = "$sid" ]; then seen[$p]=1; echo "$p"; fi
  done
  while [ "$changed" = 1 ]; do
    changed=0
    for p in "${!parent[@]}"; do
      if [ -z "${seen[$p]:-}" ] && [ -n "${seen[${parent[$p]}]:-}" ]; then
        seen[$p]=1; changed=1; echo "$p"
      fi
    done
  done
}

read_pid() { [ -f "$PIDS/$1.pid" ] && head -n 1 "$PIDS/$1.pid"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

http_ok() { # url [expected body substring]
  "$VENV/bin/python" - "$1" "${2:-}" <<'PY' 2>/dev/null
import sys, urllib.request
url, want = sys.argv[1], sys.argv[2]
with urllib.request.urlopen(url, timeout=3) as r:
    body = r.read(4096).decode(errors="replace")
sys.exit(0 if r.status == 200 and want in body else 1)
PY
}

# The worker is healthy when the Prefect server has a heartbeat from it newer than $1 (epoch s).
worker_heartbeat_since() {
  "$VENV/bin/python" - "$PREFECT_API" "$HILL_POOL" "$HILL_WORKER_NAME" "$1" <<'PY' 2>/dev/null
import json, sys, urllib.request
from datetime import datetime
api, pool, name, since = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
req = urllib.request.Request(f"{api}/work_pools/{pool}/workers/filter", data=b"{}",
                             headers={"Content-Type": "application/json"}, method="POST")
with urllib.request.urlopen(req, timeout=3) as r:
    workers = json.load(r)
beats = [datetime.fromisoformat(w["last_heartbeat_time"]).timestamp()
         for w in workers if w["name"] == name and w.get("last_heartbeat_time")]
sys.exit(0 if beats and max(beats) >= since else 1)
PY
}
