"""The DAGs the way they are deployed (scripts/deployed.sh): a real PostgreSQL metadata database, the
API server, scheduler and dag-processor as separate processes, LocalExecutor with parallel task
processes, the embedded engine over HTTP. Driven with the commands docs/DEPLOYMENT.md gives a user.

One stack serves the module (about 35 s to start). Facts are read where they are recorded: task
start and end in PostgreSQL's ``task_instance`` table, the outputs in the engine, compared with the
oracle (tests/oracle.py) over every source document.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from mailforce import DAG_ID
from mailforce.es.client import ClientOptions, build_client
from mailforce.settings import Settings
from mailforce.tools.airflow_stack import processes_using
from mailforce.tools.deployed import error_lines
from mailforce.tools.embedded import daemon_pid
from mailforce.tools.synthetic import CorpusSpec, iter_corpus
from oracle import Coverage
from support import FAR_FUTURE_RUN_END, assert_matches_oracle, latest_window_end, load_source, read_source
from ui_stack import describe, free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "deployed.sh"
RECONCILE_DAG_ID = "mailforce_reconcile"
SYNTHETIC_MESSAGES = 1000
PARTITIONS = 8
START_TIMEOUT_SECONDS = 420  # ~35 s on an idle 2-core machine
RUN_TIMEOUT_SECONDS = 300  # ~30 s a run; the second scenario's two runs take turns
EVERYTHING = Coverage(window_end=FAR_FUTURE_RUN_END)
# The deployed stack's settings as the oracle needs them (the sample's internal domain).
SETTINGS = Settings(internal_domains=("kunaico.com",))


class Stack:
    """scripts/deployed.sh with its own home and ports; only triggered runs."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.stopped = False
        self.environment = {name: value for name, value in os.environ.items()
                            if not name.startswith(("AIRFLOW", "MAILFORCE_"))}
        self.environment.update(
            DEPLOYED_HOME=str(home), DEPLOYED_API_PORT=str(free_port()), DEPLOYED_ENGINE_PORT=str(free_port()),
            DEPLOYED_PG_PORT=str(free_port()), MAILFORCE_SCHEDULE="none", MAILFORCE_RECONCILE_SCHEDULE="none",
            MAILFORCE_INTERNAL_DOMAINS="kunaico.com", MAILFORCE_MAX_PARTITIONS=str(PARTITIONS),
            MAILFORCE_MIN_PARTITION_WORK="50",
        )

    def run(self, *arguments: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(SCRIPT), *arguments], cwd=ROOT, env=self.environment,
                              capture_output=True, text=True, timeout=timeout)

    @property
    def state(self) -> dict[str, Any]:
        return json.loads((self.home / "deployed.json").read_text())

    def trigger_and_wait(self, *dag_ids: str) -> list[tuple[str, str]]:
        """Trigger the DAGs at once, wait for every run; (dag_id, run_id) pairs."""
        triggered = self.run("trigger", *dag_ids)
        assert triggered.returncode == 0, describe(triggered)
        runs = [tuple(line.split(" ", 1)) for line in triggered.stdout.splitlines() if line.strip()]
        assert [dag_id for dag_id, _ in runs] == list(dag_ids), describe(triggered)
        waited = self.run("wait", *[part for run in runs for part in run], timeout=RUN_TIMEOUT_SECONDS + 30)
        errors = "\n".join(error_lines(self.home / "logs" / "api-server.log")) or "(none)"
        assert waited.returncode == 0, f"{describe(waited)}\nAPI server error lines:\n{errors}"
        return runs

    def log_tail(self, name: str, lines: int = 40) -> str:
        try:
            return "\n".join((self.home / "logs" / name).read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return f"(no {name})"

    def task_instance_rows(self, dag_id: str, run_id: str) -> list[tuple]:
        """(task_id, map_index, id, state, start, end) of the run's task instances, read from the
        PostgreSQL metadata database."""
        connection = psycopg2.connect(host="127.0.0.1", port=self.state["ports"]["postgres"], user="postgres",
                                      dbname="airflow")
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT task_id, map_index, id, state, start_date, end_date FROM task_instance "
                               "WHERE dag_id = %s AND run_id = %s", (dag_id, run_id))
                return cursor.fetchall()
        finally:
            connection.close()

    def task_instances(self, dag_id: str, run_id: str) -> dict[tuple[str, int], dict[str, Any]]:
        """(task_id, map_index) -> state, start and end."""
        return {(task, index): {"state": state, "start": start, "end": end}
                for task, index, _, state, start, end in self.task_instance_rows(dag_id, run_id)}

    def task_log_path(self, dag_id: str, run_id: str, task_id: str) -> Path:
        return self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}" / "attempt=1.log"

    def task_log(self, dag_id: str, run_id: str, task_id: str) -> str:
        return self.task_log_path(dag_id, run_id, task_id).read_text(errors="replace")

    def trigger(self, dag_id: str) -> str:
        """Trigger one run without waiting; its run id."""
        triggered = self.run("trigger", dag_id)
        assert triggered.returncode == 0, describe(triggered)
        [(triggered_dag, run_id)] = [tuple(line.split(" ", 1)) for line in triggered.stdout.splitlines() if line.strip()]
        assert triggered_dag == dag_id
        return run_id

    def api(self):
        """The stack's REST API, signed in as its admin (what the UI's buttons call)."""
        from mailforce.tools.deployed import Layout, api_for

        return api_for(Layout(self.home))

    def task_instance_ids(self, dag_id: str, run_id: str) -> dict[str, tuple[str, str | None]]:
        """task_id (mapped: task_id[index]) -> (task instance id, state)."""
        return {(task if index < 0 else f"{task}[{index}]"): (str(identifier), state)
                for task, index, identifier, state, _, _ in self.task_instance_rows(dag_id, run_id)}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("deployed") / "stack")
    started = stack.run("start", "--synthetic", str(SYNTHETIC_MESSAGES), timeout=START_TIMEOUT_SECONDS)
    try:
        assert started.returncode == 0, f"{describe(started)}\n{stack.log_tail('dag-processor.log')}"
        yield stack
    finally:
        if not stack.stopped:  # the last test stops it and checks that; here: when a test failed before
            stack.run("stop", timeout=180)


@pytest.fixture(scope="module")
def engine(stack):
    es = build_client(ClientOptions(url=stack.state["engine_url"], engine="osmem", max_retries=1, request_timeout=120))
    yield es
    es.close()


def most_at_once(intervals: list[tuple[datetime, datetime]]) -> int:
    """How many intervals were open together at the busiest moment (ends sort before starts)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = current = 0
    for _, step in events:
        current += step
        most = max(most, current)
    return most


def test_mapped_compile_tasks_run_side_by_side_and_the_outputs_equal_the_oracle(stack, engine):
    [(_, run_id)] = stack.trigger_and_wait(DAG_ID)

    tasks = stack.task_instances(DAG_ID, run_id)
    assert {task["state"] for task in tasks.values()} == {"success"}, tasks
    compiled = [task for (task_id, _), task in tasks.items() if task_id == "compile_domain_partition"]
    assert len(compiled) >= 4, f"only {len(compiled)} compile partitions mapped"
    at_once = most_at_once([(task["start"], task["end"]) for task in compiled])
    assert at_once >= 3, f"at most {at_once} compile tasks ran at the same moment: {compiled}"

    source = read_source(engine, SETTINGS)
    assert len(source) > SYNTHETIC_MESSAGES
    assert_matches_oracle(engine, SETTINGS, source, [EVERYTHING])


def test_reconcile_and_engagements_triggered_together_take_turns_and_both_count_exactly(stack, engine):
    watermark = latest_window_end(engine, SETTINGS)
    assert watermark is not None, "the first test's run recorded no watermark"
    # Late mail (dated long before the watermark: only the reconciliation counts it) and new mail
    # (dated after the watermark: the next engagements run's window).
    late = list(iter_corpus(CorpusSpec(seed=2, messages=120, accounts=5, correspondent_domains=40, zipf_exponent=0.0)))
    now = datetime.now(timezone.utc)
    new = list(iter_corpus(CorpusSpec(seed=3, messages=80, accounts=5, correspondent_domains=40, zipf_exponent=0.0,
                                      start=watermark + timedelta(seconds=1), end=now - timedelta(seconds=5))))
    load_source(engine, SETTINGS, late + new)

    runs = dict(stack.trigger_and_wait(RECONCILE_DAG_ID, DAG_ID))
    reconcile = stack.task_instances(RECONCILE_DAG_ID, runs[RECONCILE_DAG_ID])
    engagements = stack.task_instances(DAG_ID, runs[DAG_ID])
    assert {task["state"] for task in [*reconcile.values(), *engagements.values()]} == {"success"}

    # Who waited: the run whose first task (the one taking the lease) ended last. It started before
    # the other run gave the lease back (in publish_stats), and ended after that.
    first = {RECONCILE_DAG_ID: reconcile[("reconcile_window", -1)], DAG_ID: engagements[("fetch_watermark", -1)]}
    last = {RECONCILE_DAG_ID: reconcile[("publish_stats", -1)], DAG_ID: engagements[("publish_stats", -1)]}
    waiter, holder = sorted(first, key=lambda dag_id: first[dag_id]["end"], reverse=True)
    assert first[waiter]["start"] < last[holder]["start"] < first[waiter]["end"], (first, last)
    first_task = "reconcile_window" if waiter == RECONCILE_DAG_ID else "fetch_watermark"
    waited_log = stack.task_log(waiter, runs[waiter], first_task)
    assert "Waiting for the outputs' lease" in waited_log, waited_log[-3000:]
    assert f"{holder} run {runs[holder]} holds the outputs' lease" in waited_log, waited_log[-3000:]
    assert "Got the lease after waiting" in waited_log, waited_log[-3000:]

    engine.indices.refresh(index=SETTINGS.runtime_stats_index)
    found = engine.search(index=SETTINGS.runtime_stats_index, size=10,
                          query={"term": {"run_id": runs[RECONCILE_DAG_ID]}})["hits"]["hits"]
    assert len(found) == 1 and found[0]["_source"]["reconciliation"] is True
    assert found[0]["_source"]["late_messages"] == len({(doc["_source"]["account"], doc["_source"]["messageId"])
                                                        for doc in late})

    assert_matches_oracle(engine, SETTINGS, read_source(engine, SETTINGS), [EVERYTHING])


def kill_running_tasks(stack: Stack, dag_id: str, run_id: str, timeout: float = 120) -> list[str]:
    """Once the run's first task succeeded, SIGKILL the processes of its running task instances (each
    LocalExecutor worker and its task process name the instance's id): a worker killed, an OOM kill.
    Airflow keeps those instances "running" until their heartbeats time out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = stack.task_instance_ids(dag_id, run_id)
        if tasks.get("fetch_watermark", (None, ""))[1] == "success":
            running = {identifier for identifier, state in tasks.values() if state == "running"}
            killed = [pid for pid, command in processes_naming(running)]
            for pid in killed:
                os.kill(pid, signal.SIGKILL)
            if killed:
                return sorted(task for task, (identifier, _) in tasks.items() if identifier in running)
        time.sleep(0.1)
    raise AssertionError(f"no running task of {dag_id} {run_id} to kill within {timeout} s")


def processes_naming(identifiers: set[str]) -> list[tuple[int, str]]:
    """(pid, command line) of the processes whose command line names one of these ids."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if any(identifier in command for identifier in identifiers):
                found.append((int(entry.name), command))
    return found


def test_a_killed_run_holds_the_lease_until_marked_failed_as_documented_then_everything_is_exact(stack, engine):
    """docs/TROUBLESHOOTING.md: a run whose worker was killed still shows running and keeps the lease;
    the waiting run says who holds it, since when, until when and what frees it; marking the dead run
    failed (what the UI's "Mark run as -> Failed" sends) lets the waiting run go on within 15 s."""
    watermark = latest_window_end(engine, SETTINGS)
    assert watermark is not None, "the first test's run recorded no watermark"
    now = datetime.now(timezone.utc)
    new = list(iter_corpus(CorpusSpec(seed=4, messages=400, accounts=5, correspondent_domains=40, zipf_exponent=0.0,
                                      start=watermark + timedelta(seconds=1), end=now - timedelta(seconds=5))))
    late = list(iter_corpus(CorpusSpec(seed=5, messages=60, accounts=5, correspondent_domains=40, zipf_exponent=0.0)))
    load_source(engine, SETTINGS, new + late)

    dead = stack.trigger(DAG_ID)
    killed = kill_running_tasks(stack, DAG_ID, dead)
    assert killed, "nothing was killed"
    time.sleep(3)
    states = {task: state for task, (_, state) in stack.task_instance_ids(DAG_ID, dead).items()}
    assert all(states[task] == "running" for task in killed), states  # Airflow has not noticed

    waiting = stack.trigger(RECONCILE_DAG_ID)
    log_path = stack.task_log_path(RECONCILE_DAG_ID, waiting, "reconcile_window")
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while time.monotonic() < deadline and "Waiting for the outputs' lease" not in read(log_path):
        time.sleep(1)
    text = read(log_path)
    for part in (f"{DAG_ID} run {dead} holds the outputs' lease since", "(it expires at", "mark it failed",
                 f"python -m mailforce.tools.lease release --run-id {dead}"):
        assert part in text, (part, text[-3000:])

    marked = datetime.now(timezone.utc)
    assert stack.api().request("PATCH", f"/api/v2/dags/{DAG_ID}/dagRuns/{dead}", {"state": "failed"})["state"] == "failed"
    waited = stack.run("wait", RECONCILE_DAG_ID, waiting, timeout=RUN_TIMEOUT_SECONDS + 30)
    assert waited.returncode == 0, describe(waited)
    text = read(log_path)
    assert f"Took over the lease from {DAG_ID} {dead}" in text and "Got the lease after waiting" in text, text[-3000:]
    took_over = stack.task_instances(RECONCILE_DAG_ID, waiting)[("reconcile_window", -1)]["end"]
    assert took_over - marked < timedelta(seconds=60), (marked, took_over)  # one poll (15 s) plus the window

    stack.trigger_and_wait(DAG_ID)  # the next run counts what the dead one left, exactly
    assert_matches_oracle(engine, SETTINGS, read_source(engine, SETTINGS), [EVERYTHING])


def read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def test_stop_leaves_nothing_running(stack):
    postgres_dir = Path((stack.home / "postgres-dir").read_text().strip())
    assert (postgres_dir / "data" / "PG_VERSION").exists()
    stopped = stack.run("stop", timeout=180)
    stack.stopped = True
    assert stopped.returncode == 0, describe(stopped)
    assert processes_using(stack.home) == []
    assert daemon_pid(stack.home / "engine.pid") is None
    assert not postgres_dir.exists() and not (stack.home / "postgres-dir").exists()
    pgrep = subprocess.run(["pgrep", "-f", f"{stack.home}|{postgres_dir}"], capture_output=True, text=True)
    assert pgrep.stdout.split() == []  # no postgres either (its command line names the data directory)
    status = stack.run("status", timeout=60)
    assert status.returncode == 3 and "postgres: not running" in status.stdout, describe(status)
