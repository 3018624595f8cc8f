"""The Airflow UI without Docker (scripts/ui.sh): `airflow standalone` with the embedded engine, one
stack for this module (tests/ui_stack.py), stopped with nothing left running when the module ends (not
the session: an idle stack would take CPU from every later module on its worker).

Through the REST API v2, the way a user or an outside system would: trigger with a conf, wait, read
the mapped task labels, read the outputs.

In a real browser (headless Chromium via Playwright), as a new user meets it: log in, open the
trigger form and see the params by their titles, trigger a run from the form with a mistyped
excluded account, see the mapped partitions' labels and the run summary (the `run_summary` XCom of
`publish_stats`, with the unknown-account warning). Screenshots go to the test's tmp dir (or
UI_SCREENSHOT_DIR) and their paths are printed. The browser comes from the operating system, as for
tests/test_report_browser.py (CI=true: missing means failure).

The stack takes about a minute on two cores; deselect it with ``-m "not slow"``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mailforce.es.client import ClientOptions, build_client
from mailforce import DAG_ID
from mailforce.tools.embedded import daemon_pid
from mailforce.tools.airflow_stack import AirflowApi
from test_report_browser import CHROMIUM_FLAGS, browser_path
from ui_stack import (
    ROOT, StartedUi, describe, free_port, log_tail, start_ui, stop_ui_and_check_nothing_is_left, wait_for_run,
)

SAMPLE_ACCOUNTS = {"kunai-ann", "kunai-jim", "kunai-ken", "kunai-raj", "kunai-sara"}
EXCLUDED = "kunai-raj"
PARTITION_LABEL = re.compile(r"^(\d+)/(\d+) (\S+).*\((\d+)% of work\)$")


@pytest.fixture(scope="module")
def _ui_stack_of_the_module(tmp_path_factory):
    """One `scripts/ui.sh start` for the tests that need the stack, started on first use; stopped when
    the module ends, where it must leave no process and no engine behind (a failure there is an error
    at teardown)."""
    ui = start_ui(tmp_path_factory.mktemp("ui") / "airflow-ui")
    try:
        yield ui
    finally:
        stop_ui_and_check_nothing_is_left(ui)


@pytest.fixture
def ui_stack(_ui_stack_of_the_module) -> StartedUi:
    """The module's UI stack with the mail loaded and no run remembered in the engine: each test's run
    is a first, full run, whichever test ran before (Airflow's own run history is kept)."""
    _ui_stack_of_the_module.forget_earlier_runs()
    return _ui_stack_of_the_module


def search_all(es, index: str) -> list[dict[str, Any]]:
    es.indices.refresh(index=index)
    return [hit["_source"] for hit in es.search(index=index, size=10_000, query={"match_all": {}})["hits"]["hits"]]


@pytest.mark.slow
def test_ui_stack_runs_a_dag_triggered_through_the_rest_api(ui_stack):
    # Started once for the module; its clean stop is checked when the module ends.
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


def test_the_embedded_engine_trades_memory_for_cpu_unless_told_otherwise():
    from mailforce.tools.embedded import engine_environment

    assert engine_environment({"PATH": "/bin"}) == {"PATH": "/bin", "GOGC": "400"}
    assert engine_environment({"GOGC": "100"})["GOGC"] == "100"
    assert engine_environment({"GOGC": ""})["GOGC"] == "400"


# --- in the browser ---------------------------------------------------------------------------

PARAM_TITLES = ("From date", "To date", "Backfilled accounts", "Excluded accounts")
EXCLUDED_IN_FORM = ("kunai-raj", "kunai-nobody")  # the second is not in the sample: a warning, not a failure
UI_TIMEOUT_MS = 30_000


def shoot(page, directory: Path, name: str, shots: list[Path]) -> None:
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    shots.append(path)


@pytest.mark.slow
def test_a_new_user_triggers_a_run_in_the_browser_and_sees_labels_and_summary(tmp_path, request):
    executable = browser_path()  # skips (or fails in CI) before anything starts
    from playwright.sync_api import sync_playwright

    shots_dir = Path(os.environ.get("UI_SCREENSHOT_DIR") or tmp_path / "screenshots")
    shots_dir.mkdir(parents=True, exist_ok=True)
    shots: list[Path] = []
    ui = request.getfixturevalue("ui_stack")  # the module's stack, started on first use
    url, password, api = ui.url, ui.password, ui.api()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(UI_TIMEOUT_MS)
                page.goto(url)
                page.locator("input[name=username]").wait_for()  # the UI sends a new visitor to log in
                assert "/auth/login" in page.url
                page.locator("input[name=username]").fill("admin")
                page.locator("input[name=password]").fill(password)
                page.locator("button[type=submit]").click()
                page.wait_for_url(re.compile(r"^(?!.*/auth/login).*$"))

                # The trigger form: every param by its title and description.
                page.goto(f"{url}/dags/{DAG_ID}", wait_until="networkidle")
                page.get_by_role("button", name="Trigger").first.click()
                dialog = page.get_by_role("dialog")
                dialog.get_by_text("Run Parameters").wait_for()
                form = dialog.inner_text()
                for title in PARAM_TITLES:
                    assert title in form, form
                assert "e.g. 2001-05-14T00:00:00Z" in form and "e.g. kunai-jim" in form
                shoot(page, shots_dir, "1-trigger-form", shots)

                # Trigger from the form, one mistyped account among the excluded.
                earlier = {run["dag_run_id"] for run in api.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns")["dag_runs"]}
                dialog.locator("textarea").nth(1).fill("\n".join(EXCLUDED_IN_FORM))
                dialog.get_by_role("button", name="Trigger").click()
                deadline = time.monotonic() + 30
                runs: list[dict] = []
                while not runs and time.monotonic() < deadline:
                    runs = [run for run in api.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns")["dag_runs"]
                            if (run.get("conf") or {}).get("exclude_accounts") and run["dag_run_id"] not in earlier]
                    time.sleep(1)
                assert len(runs) == 1, runs
                run_id = runs[0]["dag_run_id"]
                assert sorted(runs[0]["conf"]["exclude_accounts"]) == sorted(EXCLUDED_IN_FORM)
                run = wait_for_run(api, run_id, ui.home)
                assert run["state"] == "success", f"run {run_id} {run['state']}\n{log_tail(ui.home)}"

                # The mapped partitions, by their labels.
                page.goto(f"{url}/dags/{DAG_ID}/runs/{run_id}/tasks/compile_domain_partition/mapped",
                          wait_until="networkidle")
                label = re.compile(r"^(\d+)/(\d+) \S+.*\(\d+% of work\)$")
                page.get_by_text(label).first.wait_for()
                texts = sorted(set(text.strip() for text in page.get_by_text(label).all_inner_texts()))
                labels = [label.match(text).groups() for text in texts]
                assert len(labels) >= 2 and {total for _, total in labels} == {str(len(labels))}, labels
                shoot(page, shots_dir, "2-mapped-partitions", shots)

                # The run summary: one XCom entry, one line, with the warning.
                page.goto(f"{url}/dags/{DAG_ID}/runs/{run_id}/tasks/publish_stats/xcom", wait_until="networkidle")
                page.get_by_text("run_summary").first.wait_for()
                page.get_by_text(re.compile(r"^\"?Window \(the beginning, ")).first.wait_for()
                body = page.locator("body").inner_text()
                summary = next(line for line in body.splitlines() if "Window (the beginning, " in line)
                assert "messages of 4 accounts (excluded: kunai-nobody, kunai-raj)" in summary, summary
                assert "partitions" in summary and "documents written" in summary and "including retries" in summary
                assert "WARNING unknown accounts (exclude_accounts kunai-nobody)" in summary, summary
                shoot(page, shots_dir, "3-run-summary", shots)
            finally:
                browser.close()
    finally:
        print("screenshots:", *map(str, shots))
