#!/usr/bin/env bash
# Runs the test suite against a real embedded search engine (osmem-server, started by the tests),
# on every core: pytest-xdist with one worker more than the cores (the tests also wait on the engine
# and on Airflow's polling; MAILFORCE_TEST_WORKERS to choose, 0 for one process), the tests of a module on one worker (its module and session fixtures start once there),
# in the order tests/conftest.py gives: the longest modules first (xdist would order them by test count).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/bootstrap.sh"
cd "$root"
workers="${MAILFORCE_TEST_WORKERS:-$(( $(nproc) + 1 ))}"
exec python -m pytest -n "$workers" --dist loadfile --no-loadscope-reorder "$@"
