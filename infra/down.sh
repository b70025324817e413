#!/usr/bin/env bash
# Stops what infra/up.sh started, by its pid files in $HILL_INFRA_DIR/pids; idempotent.
#   infra/down.sh                # everything, in reverse start order
#   infra/down.sh worker         # just the worker; `infra/up.sh worker` brings it back
# Each daemon gets TERM (its whole session and every descendant), then KILL after
# $HILL_STOP_TIMEOUT s; PostgreSQL stops with `pg_ctl stop -m fast`, as its owner.
# Data stays in $HILL_INFRA_DIR; delete that folder to start from scratch.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

locked=0
if [ "${1:-}" = --locked ]; then locked=1; shift; fi # called by up.sh, which holds the lock
wanted=("$@")
if [ ${#wanted[@]} -eq 0 ]; then
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do wanted+=("${SERVICES[i]}"); done
fi
for s in "${wanted[@]}"; do
  [[ " ${SERVICES[*]} " == *" $s "* ]] || die "down.sh: unknown service '$s' (one of: ${SERVICES[*]})"
done
if [ ! -d "$PIDS" ]; then say "down.sh: nothing started in $HILL_INFRA_DIR"; exit 0; fi
if [ $locked = 0 ]; then
  exec 9>"$HILL_INFRA_DIR/.lock"
  flock -w 600 9 || die "down.sh: another up.sh/down.sh holds $HILL_INFRA_DIR/.lock"
fi

# Wait up to $2 s until none of session $1's processes is left; prints what is left.
wait_gone() {
  local sid="$1" deadline=$((SECONDS + $2)) left
  while left="$(session_tree "$sid")" && [ -n "$left" ]; do
    [ $SECONDS -lt $deadline ] || { echo "$left"; return 1; }
    sleep 0.2
  done
}

stop_daemon() {
  local name="$1" pid left
  pid="$(read_pid "$name" || true)"
  if [ -z "$pid" ]; then say "$name: not running"; return; fi
  left="$(session_tree "$pid")"
  if [ -z "$left" ]; then
    rm -f "$PIDS/$name.pid"; say "$name: not running (stale pid $pid)"; return
  fi
  kill -TERM $left 2>/dev/null || true
  if ! left="$(wait_gone "$pid" "$HILL_STOP_TIMEOUT")"; then
    say "$name: still running after ${HILL_STOP_TIMEOUT}s; KILL"
    kill -KILL $left 2>/dev/null || true
    left="$(wait_gone "$pid" 10)" || die "down.sh: $name: pids $left survive KILL"
  fi
  rm -f "$PIDS/$name.pid"
  say "$name: stopped (pid $pid)"
}

stop_postgres() {
  local pid pgbin
  pid="$(read_pid postgres || true)"
  [ -n "$pid" ] || [ -f "$PGDATA/postmaster.pid" ] || { say "postgres: not running"; return; }
  pgbin="$(pg_bin)" || die "down.sh: postgres: no pg_ctl (set HILL_PG_BIN)"
  if as_pg "$pgbin/pg_ctl" status -D "$PGDATA" >/dev/null 2>&1; then
    pid="$(head -n 1 "$PGDATA/postmaster.pid")"
    if ! as_pg "$pgbin/pg_ctl" stop -D "$PGDATA" -m fast -w -t "$HILL_STOP_TIMEOUT" >/dev/null; then
      say "postgres: no fast shutdown within ${HILL_STOP_TIMEOUT}s; immediate"
      as_pg "$pgbin/pg_ctl" stop -D "$PGDATA" -m immediate -w -t 10 >/dev/null ||
        die "down.sh: postgres (pid $pid) does not stop; see $LOGS/postgres.log"
    fi
    say "postgres: stopped (pid $pid)"
  else
    say "postgres: not running"
  fi
  rm -f "$PIDS/postgres.pid"
}

for s in "${wanted[@]}"; do
  if [ "$s" = postgres ]; then stop_postgres; else stop_daemon "$s"; fi
done
