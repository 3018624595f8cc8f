#!/usr/bin/env bash
# The DAGs the way they are deployed, without Docker: PostgreSQL (Debian's postgresql package), airflow
# api-server + scheduler + dag-processor (LocalExecutor, parallelism 8), the embedded engine with mail.
#   deployed.sh start [--mail PATH]... [--synthetic MESSAGES] | status | stop
#   deployed.sh trigger [--wait] [DAG_ID]... | wait DAG_ID RUN_ID... | repeat --runs N
# Environment: DEPLOYED_HOME (default .airflow-deployed/), DEPLOYED_API_PORT (8080), DEPLOYED_ENGINE_PORT
# (9200), DEPLOYED_PG_PORT (5433); the next free port is taken when one is in use.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/bootstrap.sh"
exec python -m mailforce.tools.deployed "$@"
