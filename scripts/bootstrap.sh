#!/usr/bin/env bash
# Creates .venv with the pinned requirements (once; again when the pins change). Sourced by the
# other scripts, so a fresh machine needs nothing but python3.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${PYTHON:-python3}"
stamp="$venv/.requirements.sha"
want="$(cat "$root/requirements.txt" "$root/requirements-lock.txt" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing pinned requirements into $venv" >&2
  "$python" -m venv "$venv"
  log="$venv/install.log"
  # pip's output goes to a log, shown only when the install fails. pip compiles every module once, up
  # front: with `--no-compile` (37 s of CPU instead of 58 s for the install) the suite's first Airflow
  # processes, starting together, each compiled the same modules again, and `.ci/run` took longer (docs/DEVELOPMENT.md).
  if ! "$venv/bin/python" -m pip install --disable-pip-version-check \
      -r "$root/requirements.txt" -c "$root/requirements-lock.txt" > "$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "bootstrap: pip install failed (full log: $log)" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
export PYTHONPATH="$root/plugins${PYTHONPATH:+:$PYTHONPATH}"
