"""The Airflow UI stack of `scripts/ui.sh` (`airflow standalone` with the embedded engine) for the tests
that need one (tests/test_ui.py: the REST API and the browser share one start, the module's
`ui_stack` fixture), stopped, and checked to leave nothing running, when that module ends.

Starting it costs about a minute on two cores; deselect its tests with ``-m "not slow"``. Its
``free_port`` and ``describe`` serve tests/test_deployed.py's stack too.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mailforce import DAG_ID
from mailforce.es.client import ClientOptions, build_client
from mailforce.tools.embedded import daemon_pid
from mailforce.tools.airflow_stack import AirflowApi, processes_using

ROOT = Path(__file__).resolve().parents[1]
UI_SCRIPT = ROOT / "scripts" / "ui.sh"

START_TIMEOUT_SECONDS = 420  # ~30 s on an idle 2-core machine
RUN_TIMEOUT_SECONDS = 180  # ~30 s
STOP_TIMEOUT_SECONDS = 180  # ~5 s
NOTHING_LEFT = {"AIRFLOW_HOME in environment": [], "pgrep -f home": [], "engine": None}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"


def log_tail(home: Path, lines: int = 60) -> str:
    try:
        return "\n".join((home / "standalone.log").read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no standalone.log)"


class UiStack:
    """scripts/ui.sh with its own home and free ports; the schedule off, so only our run runs."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.environment = {
            name: value for name, value in os.environ.items() if not name.startswith(("AIRFLOW", "MAILFORCE_"))
        }
        self.environment.update(
            UI_HOME=str(home), UI_PORT=str(free_port()), ENGINE_PORT=str(free_port()), MAILFORCE_SCHEDULE="none",
            # The sample is small: let it map several partitions, as a real window would.
            MAILFORCE_MIN_PARTITION_WORK="200",
        )

    def ui(self, command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(UI_SCRIPT), command], cwd=ROOT, env=self.environment,
                              capture_output=True, text=True, timeout=timeout)

    def leftovers(self) -> dict[str, Any]:
        """Whatever still runs for this stack: by environment, by command line, the engine."""
        pgrep = subprocess.run(["pgrep", "-f", str(self.home)], capture_output=True, text=True)
        return {
            "AIRFLOW_HOME in environment": processes_using(self.home),
            "pgrep -f home": pgrep.stdout.split(),
            "engine": daemon_pid(self.home / "engine.pid"),
        }


@dataclass
class StartedUi:
    """A running stack as `ui.sh start` reported it."""

    stack: UiStack
    started: subprocess.CompletedProcess[str]
    url: str
    password: str

    @property
    def home(self) -> Path:
        return self.stack.home

    def api(self) -> AirflowApi:
        return AirflowApi(self.url, "admin", self.password)

    def engine_client(self):
        import json

        engine_url = json.loads((self.home / "ui.json").read_text())["engine_url"]
        return build_client(ClientOptions(url=engine_url, engine="osmem", max_retries=1))

    def forget_earlier_runs(self) -> None:
        """Every index but the loaded mail deleted: the next run is a first, full run again, as on a
        fresh stack (the watermark, the ledger and the outputs live in the engine, not in Airflow)."""
        from mailforce.settings import load_settings

        source = load_settings(use_variable=False).source_index
        es = self.engine_client()
        try:
            names = [name for name in es.indices.get(index="*") if name != source and not name.startswith(".")]
            for name in names:
                es.indices.delete(index=name)
            assert es.count(index=source)["count"] > 0, "the sample mail must stay loaded"
        finally:
            es.close()


def start_ui(home: Path) -> StartedUi:
    stack = UiStack(home)
    started = stack.ui("start", START_TIMEOUT_SECONDS)
    if started.returncode != 0:
        log = log_tail(home)
        stopped = stack.ui("stop", STOP_TIMEOUT_SECONDS)
        assert started.returncode == 0, f"{describe(started)}\nstandalone.log:\n{log}\nstop: {describe(stopped)}"
    url = re.search(r"Airflow UI ready in \d+ s: (http://\S+)", started.stdout).group(1)
    password = re.search(r"^  password  (\S+)", started.stdout, re.M).group(1)
    return StartedUi(stack, started, url, password)


def stop_ui_and_check_nothing_is_left(ui: StartedUi) -> None:
    stopped = ui.stack.ui("stop", STOP_TIMEOUT_SECONDS)
    assert stopped.returncode == 0, describe(stopped)
    assert ui.stack.leftovers() == NOTHING_LEFT
    status = ui.stack.ui("status", 60)
    assert status.returncode == 3 and "not running" in status.stdout, describe(status)


def wait_for_run(api: AirflowApi, run_id: str, home: Path) -> dict[str, Any]:
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while True:
        run = api.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
        if run["state"] in ("success", "failed"):
            return run
        if time.monotonic() > deadline:
            break
        time.sleep(2)
    tasks = api.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")["task_instances"]
    states = sorted((task["task_id"], task["map_index"], task["state"]) for task in tasks)
    pytest.fail(f"run {run_id} still {run['state']} after {RUN_TIMEOUT_SECONDS} s; tasks: {states}\n"
                f"standalone.log:\n{log_tail(home)}")
