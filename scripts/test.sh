#!/usr/bin/env bash
# Runs the test suite against a real embedded search engine (osmem-server, started by the tests).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/bootstrap.sh"
cd "$root"
exec python -m pytest "$@"
