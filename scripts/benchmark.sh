#!/usr/bin/env bash
# Benchmark of the mailforce_engagements DAG on the embedded engine; see docs/BENCHMARK.md.
# Usage: scripts/benchmark.sh --messages 10000 --partitions 1,2,4,8 [--json out.json]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/bootstrap.sh"
cd "$root"
exec python "$root/scripts/benchmark.py" "$@"
