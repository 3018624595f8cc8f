#!/usr/bin/env bash
# The DAG in the Airflow UI without Docker: `airflow standalone` (setsid, its own home .airflow-ui/)
# with the embedded engine and the sample mail.   ui.sh start | stop | status
# Environment: UI_HOME, UI_PORT (default 8080), ENGINE_PORT (default 9200, or the next free one).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/bootstrap.sh"
exec python -m mailforce.tools.standalone "$@"
