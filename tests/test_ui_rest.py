"""The Airflow UI without Docker (scripts/ui.sh): `airflow standalone` with the embedded engine,
driven through the REST API v2 the way a user or an outside system would: trigger with a conf,
wait, read the mapped task labels, read the outputs. The stack is the session's (tests/ui_stack.py,
shared with tests/test_ui_browser.py), stopped with nothing left running when the session ends.

The standalone stack takes about a minute on two cores; deselect it with ``-m "not slow"``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import pytest

from mailforce.es.client import ClientOptions, build_client
from mailforce import DAG_ID
from mailforce.tools.embedded import daemon_pid
from mailforce.tools.airflow_stack import AirflowApi
from ui_stack import ROOT, describe, free_port, log_tail, wait_for_run

SAMPLE_ACCOUNTS = {"kunai-ann", "kunai-jim", "kunai-ken", "kunai-raj", "kunai-sara"}
EXCLUDED = "kunai-raj"
PARTITION_LABEL = re.compile(r"^(\d+)/(\d+) (\S+).*\((\d+)% of work\)$")


def search_all(es, index: str) -> list[dict[str, Any]]:
    es.indices.refresh(index=index)
    return [hit["_source"] for hit in es.search(index=index, size=10_000, query={"match_all": {}})["hits"]["hits"]]


@pytest.mark.slow
def test_ui_stack_runs_a_dag_triggered_through_the_rest_api(ui_stack):
    # Started once for the session (conftest.py); its clean stop is checked when the session ends.
    assert ui_stack.url == f"http://localhost:{ui_stack.stack.environment['UI_PORT']}"
    api = AirflowApi(ui_stack.url, "admin", ui_stack.password)

    dag = api.request("GET", f"/api/v2/dags/{DAG_ID}")
    assert dag["is_paused"] is False
    triggered = api.request("POST", f"/api/v2/dags/{DAG_ID}/dagRuns",
                            {"logical_date": None, "conf": {"exclude_accounts": [EXCLUDED]}})
    run_id = triggered["dag_run_id"]
    run = wait_for_run(api, run_id, ui_stack.home)
    assert run["state"] == "success", f"run {run_id} {run['state']}\n{log_tail(ui_stack.home)}"
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

    es = ui_stack.engine_client()
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

    status = ui_stack.stack.ui("status", 60)
    assert status.returncode == 0 and "airflow standalone: running" in status.stdout, describe(status)


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
