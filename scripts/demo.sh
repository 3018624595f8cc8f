#!/usr/bin/env bash
# The first command to run: the embedded engine, the sample mail, one DAG run through Airflow
# (`airflow dags test`), then what it wrote. Options: --mail PATH, --conf JSON (see --help).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/bootstrap.sh"
exec python -m mailforce.tools.demo "$@"
