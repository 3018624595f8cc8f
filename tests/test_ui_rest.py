"""The Airflow UI without Docker (scripts/ui.sh): `airflow standalone` with the embedded engine,
driven through the REST API v2 the way a user or an outside system would: trigger with a conf,
wait, read the mapped task labels, read the outputs, then stop with nothing left running.

The standalone stack takes about a minute on two cores; deselect it with ``-m "not slow"``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mailforce.es.client import ClientOptions, build_client
from mailforce import DAG_ID
from mailforce.tools.embedded import daemon_pid
from mailforce.tools.standalone import AirflowApi, processes_using

ROOT = Path(__file__).resolve().parents[1]
UI_SCRIPT = ROOT / "scripts" / "ui.sh"

SAMPLE_ACCOUNTS = {"kunai-ann", "kunai-jim", "kunai-ken", "kunai-raj", "kunai-sara"}
EXCLUDED = "kunai-raj"
START_TIMEOUT_SECONDS = 420  # ~30 s on an idle 2-core machine
RUN_TIMEOUT_SECONDS = 180  # ~30 s
STOP_TIMEOUT_SECONDS = 180  # ~5 s
PARTITION_LABEL = re.compile(r"^(\d+)/(\d+) (\S+).*\((\d+)% of work\)$")


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


def search_all(es, index: str) -> list[dict[str, Any]]:
    es.indices.refresh(index=index)
    return [hit["_source"] for hit in es.search(index=index, size=10_000, query={"match_all": {}})["hits"]["hits"]]


@pytest.mark.slow
def test_ui_stack_runs_a_dag_triggered_through_the_rest_api_and_stops_cleanly(tmp_path):
    stack = UiStack(tmp_path / "airflow-ui")
    started = stack.ui("start", START_TIMEOUT_SECONDS)
    try:
        assert started.returncode == 0, f"{describe(started)}\nstandalone.log:\n{log_tail(stack.home)}"
        url = re.search(r"Airflow UI ready in \d+ s: (http://\S+)", started.stdout).group(1)
        password = re.search(r"^  password  (\S+)", started.stdout, re.M).group(1)
        assert url == f"http://localhost:{stack.environment['UI_PORT']}"
        api = AirflowApi(url, "admin", password)

        dag = api.request("GET", f"/api/v2/dags/{DAG_ID}")
        assert dag["is_paused"] is False
        triggered = api.request("POST", f"/api/v2/dags/{DAG_ID}/dagRuns",
                                {"logical_date": None, "conf": {"exclude_accounts": [EXCLUDED]}})
        run_id = triggered["dag_run_id"]
        run = wait_for_run(api, run_id, stack.home)
        assert run["state"] == "success", f"run {run_id} {run['state']}\n{log_tail(stack.home)}"
        assert run["conf"] == {"exclude_accounts": [EXCLUDED]}

        mapped = api.request(
            "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/compile_domain_partition/listMapped?limit=1000"
        )
        labels = [task["rendered_map_index"] for task in mapped["task_instances"]]
        partitions = len(labels)
        assert partitions >= 2 and partitions == mapped["total_entries"], labels
        matches = [PARTITION_LABEL.match(label or "") for label in labels]
        assert all(matches), f"labels not like '1/N <domain> ... (..% of work)': {labels}"
        assert sorted(int(match.group(1)) for match in matches) == list(range(1, partitions + 1)), labels
        assert {int(match.group(2)) for match in matches} == {partitions}, labels
        assert {task["state"] for task in mapped["task_instances"]} == {"success"}

        engine_url = json.loads((stack.home / "ui.json").read_text())["engine_url"]
        es = build_client(ClientOptions(url=engine_url, engine="osmem", max_retries=1))
        try:
            accounts = {document["account"] for document in search_all(es, "search-accounts_statistics_simple")}
            roles_accounts = {document["account"] for document in search_all(es, "search-message-roles")}
            stats = [document for document in search_all(es, "search-runtime-stats") if document["run_id"] == run_id]
        finally:
            es.close()
        assert accounts == SAMPLE_ACCOUNTS - {EXCLUDED}
        assert roles_accounts == SAMPLE_ACCOUNTS - {EXCLUDED}
        assert len(stats) == 1 and stats[0]["exclude_accounts"] == [EXCLUDED]
        assert stats[0]["email_accounts_processed"] == 4

        status = stack.ui("status", 60)
        assert status.returncode == 0 and "airflow standalone: running" in status.stdout, describe(status)
    finally:
        stopped = stack.ui("stop", STOP_TIMEOUT_SECONDS)

    assert stopped.returncode == 0, describe(stopped)
    assert stack.leftovers() == {"AIRFLOW_HOME in environment": [], "pgrep -f home": [], "engine": None}
    status = stack.ui("status", 60)
    assert status.returncode == 3 and "not running" in status.stdout, describe(status)


def test_engine_daemon_outlives_its_command_until_stopped(tmp_path):
    pidfile = tmp_path / "engine.pid"
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "plugins"), os.environ.get("PYTHONPATH")])))

    def engine(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mailforce.tools.embedded", *arguments, "--pidfile", str(pidfile)],
                              env=environment, capture_output=True, text=True, timeout=60)

    started = engine("start", "--port", str(free_port()))
    assert started.returncode == 0, describe(started)
    url = started.stdout.strip()
    try:
        es = build_client(ClientOptions(url=url, engine="osmem", max_retries=1))
        assert es.info()["version"]["number"]
        es.close()
        assert engine("status").stdout.strip() == f"running: pid {daemon_pid(pidfile)}, {url}"
        again = engine("start", "--port", url.rpartition(":")[2])
        assert again.returncode == 1 and "already running" in again.stderr
    finally:
        stopped = engine("stop")
    assert stopped.returncode == 0 and stopped.stdout.strip() == "stopped"
    assert daemon_pid(pidfile) is None and not pidfile.exists()
    assert engine("status").returncode == 3
