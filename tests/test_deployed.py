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
import subprocess
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

    def task_instances(self, dag_id: str, run_id: str) -> dict[tuple[str, int], dict[str, Any]]:
        """(task_id, map_index) -> state, start and end, read from the PostgreSQL metadata database."""
        connection = psycopg2.connect(host="127.0.0.1", port=self.state["ports"]["postgres"], user="postgres",
                                      dbname="airflow")
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT task_id, map_index, state, start_date, end_date FROM task_instance "
                               "WHERE dag_id = %s AND run_id = %s", (dag_id, run_id))
                return {(task, index): {"state": state, "start": start, "end": end}
                        for task, index, state, start, end in cursor.fetchall()}
        finally:
            connection.close()

    def task_log(self, dag_id: str, run_id: str, task_id: str) -> str:
        return (self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
                / "attempt=1.log").read_text(errors="replace")


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
