#!/usr/bin/env bash
# Long-lived local servers for hill: a Prefect server (API, scheduler, UI) and an MLflow server
# over the project's own store. Point hill at them with the two exports this script prints.
#   infra/servers.sh            # from the project root; Ctrl-C stops both
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PREFECT_PORT="${PREFECT_PORT:-4200}"
MLFLOW_PORT="${MLFLOW_PORT:-5000}"
export PREFECT_SERVER_ANALYTICS_ENABLED=false

# The UI finds its API from these (on any port but 4200 it would call 127.0.0.1:4200 instead).
PREFECT_SERVER_API_HOST=127.0.0.1 PREFECT_SERVER_API_PORT="$PREFECT_PORT" \
  "$VENV/bin/prefect" server start --host 127.0.0.1 --port "$PREFECT_PORT" &
prefect_pid=$!
"$VENV/bin/mlflow" server --host 127.0.0.1 --port "$MLFLOW_PORT" \
  --backend-store-uri "sqlite:///$PWD/mlflow.db" --artifacts-destination "$PWD/mlartifacts" &
mlflow_pid=$!
trap 'kill "$prefect_pid" "$mlflow_pid" 2>/dev/null; wait' EXIT INT TERM

echo "export PREFECT_API_URL=http://127.0.0.1:$PREFECT_PORT/api"
echo "export MLFLOW_TRACKING_URI=http://127.0.0.1:$MLFLOW_PORT"
wait
