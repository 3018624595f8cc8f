"""One run at a time across the Mailforce DAGs (`mailforce.es.lease`), on the real engine.

The engagements DAG's hourly run and the reconciliation DAG's daily run start at the same midnight;
without the lease they would both add the same late message to the stored figures.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from mailforce import dag_tasks
from mailforce.es.lease import LEASE_ID, Holder, LeaseHeld, acquire_lease, release_lease, renew_or_fail, try_acquire
from mailforce.es.reads import fetch_documents

HOURLY = Holder("mailforce_engagements", "scheduled__2026-12-06T00:00:00+00:00")
RECONCILE = Holder("mailforce_reconcile", "scheduled__2026-12-06T00:00:00+00:00")
NOW = datetime(2026, 12, 6, 0, 0, 5, tzinfo=timezone.utc)


def stored_lease(es, settings):
    return fetch_documents(es, settings.lease_index, [LEASE_ID]).get(LEASE_ID)


def test_a_held_lease_blocks_another_dag_until_it_is_given_back(es, settings):
    assert try_acquire(es, settings, HOURLY, now=NOW)[0]
    taken, lease = try_acquire(es, settings, RECONCILE, is_active=lambda dag_id, run_id: True, now=NOW)
    assert not taken and (lease["dag_id"], lease["run_id"]) == (HOURLY.dag_id, HOURLY.run_id)
    with pytest.raises(LeaseHeld, match="mailforce_engagements run scheduled__.*waited 0.*Nothing was read or written") \
            as held:
        acquire_lease(es, replace(settings, lease_wait="0"), RECONCILE, is_active=lambda dag_id, run_id: True)
    assert held.value.lease.holder == HOURLY and held.value.waited == "0" and held.value.taken_from is None
    assert held.value.lease.acquired_at == "2026-12-06T00:00:05Z" and held.value.lease.expires_at == "2026-12-06T07:00:05Z"
    assert not release_lease(es, settings, RECONCILE)  # not its lease: left alone
    assert stored_lease(es, settings)["dag_id"] == HOURLY.dag_id
    assert release_lease(es, settings, HOURLY)
    assert stored_lease(es, settings) is None
    assert try_acquire(es, settings, RECONCILE, is_active=lambda dag_id, run_id: True, now=NOW)[0]


def test_the_holder_itself_renews_and_a_run_airflow_reports_ended_is_taken_over(es, settings):
    assert try_acquire(es, settings, HOURLY, now=NOW)[0]
    later = NOW + timedelta(minutes=20)
    assert try_acquire(es, settings, HOURLY, now=later)[0]  # a retried task, or the next task: renews
    lease = stored_lease(es, settings)
    assert lease["acquired_at"] == "2026-12-06T00:00:05Z" and lease["expires_at"] == "2026-12-06T07:20:05Z"
    states = {(HOURLY.dag_id, HOURLY.run_id): "failed"}
    ended = lambda dag_id, run_id: states[(dag_id, run_id)] in ("queued", "running")  # noqa: E731
    assert try_acquire(es, settings, RECONCILE, is_active=ended, now=later)[0]
    assert stored_lease(es, settings)["dag_id"] == RECONCILE.dag_id
    # the failed run, cleared by an operator, must not write under the reconciliation
    with pytest.raises(LeaseHeld, match="mailforce_reconcile run .* took over") as taken:
        renew_or_fail(es, settings, HOURLY, is_active=lambda dag_id, run_id: True)
    assert taken.value.taken_from == HOURLY and taken.value.lease.holder == RECONCILE


def test_without_word_from_airflow_only_an_expired_lease_is_taken(es, settings):
    assert try_acquire(es, settings, HOURLY, now=NOW)[0]
    assert not try_acquire(es, settings, RECONCILE, now=NOW + timedelta(hours=6, minutes=59))[0]
    assert try_acquire(es, settings, RECONCILE, now=NOW + timedelta(hours=7))[0]


def test_runs_asking_at_the_same_moment_get_it_once(es, settings):
    holders = [Holder(f"dag-{number}", "run") for number in range(8)]
    results: dict[Holder, bool] = {}
    barrier = threading.Barrier(len(holders))

    def ask(holder: Holder) -> None:
        barrier.wait()
        results[holder] = try_acquire(es, settings, holder, is_active=lambda dag_id, run_id: True, now=NOW)[0]

    threads = [threading.Thread(target=ask, args=(holder,)) for holder in holders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [holder for holder, taken in results.items() if taken]
    assert len(winners) == 1
    assert stored_lease(es, settings)["dag_id"] == winners[0].dag_id


def test_a_run_waits_for_the_holder_to_finish(es, settings):
    assert try_acquire(es, settings, HOURLY, now=NOW)[0]
    sleeps = []

    def sleep(seconds: float) -> None:  # meanwhile the hourly run publishes its stats and gives it back
        sleeps.append(seconds)
        release_lease(es, settings, HOURLY)

    acquire_lease(es, settings, RECONCILE, is_active=lambda dag_id, run_id: True, sleep=sleep, poll_seconds=15)
    assert sleeps == [15]
    assert stored_lease(es, settings)["dag_id"] == RECONCILE.dag_id


def test_the_dag_tasks_take_renew_and_give_back_the_runs_lease(es, settings, monkeypatch):
    states = {}
    context = {"dag_run": SimpleNamespace(dag_id=RECONCILE.dag_id), "run_id": RECONCILE.run_id,
               "ti": SimpleNamespace(get_dagrun_state=lambda dag_id, run_id: states.get((dag_id, run_id), "running"))}
    other = {**context, "dag_run": SimpleNamespace(dag_id=HOURLY.dag_id), "run_id": HOURLY.run_id}
    dag_tasks.take_lease(es, settings, context)
    dag_tasks.renew_lease(es, settings, context)
    with pytest.raises(LeaseHeld):  # the hourly run waits while the reconciliation runs ...
        dag_tasks.take_lease(es, replace(settings, lease_wait="0"), other)
    dag_tasks.give_back_lease(es, settings, context)
    dag_tasks.take_lease(es, settings, other)  # ... and gets it once it gave it back
    assert stored_lease(es, settings)["dag_id"] == HOURLY.dag_id
    states[(HOURLY.dag_id, HOURLY.run_id)] = "failed"  # that run failed and kept it
    dag_tasks.take_lease(es, settings, context)
    assert stored_lease(es, settings)["dag_id"] == RECONCILE.dag_id
    dag_tasks.renew_lease(es, settings, None)  # outside Airflow: nothing to renew


def test_the_lease_needs_no_more_than_the_documented_role(es_url, settings):
    from esproxy import EsProxy, missing_privileges, required_privileges
    from test_real_clusters import product_client, documented_role

    with EsProxy(es_url, flavour="es9") as proxy:
        client = product_client(proxy)
        assert try_acquire(client, settings, HOURLY, now=NOW)[0]  # creates the index and the lease
        assert try_acquire(client, settings, HOURLY, now=NOW)[0]  # renews it
        assert release_lease(client, settings, HOURLY)
        client.close()
        required = required_privileges(proxy.records)
    assert required[settings.lease_index] >= {"create_index", "read"}
    assert missing_privileges(required, documented_role()) == {}


def test_a_dead_runs_lease_names_holder_expiry_and_remedy_and_both_remedies_free_it(es, es_url, settings, caplog,
                                                                                        capsys):
    """A worker killed with its run still "running" in Airflow: the waiting run says who holds the
    lease, since when, until when, and what frees it; marking the run failed frees it, and so does
    the release command (which refuses to free another run's lease)."""
    import subprocess
    import sys

    from mailforce.tools.lease import main

    airflow_says = {HOURLY: "running"}  # Airflow has not noticed the dead worker yet
    is_active = lambda dag_id, run_id: airflow_says[Holder(dag_id, run_id)] == "running"  # noqa: E731
    assert try_acquire(es, settings, HOURLY, now=NOW)[0]
    with pytest.raises(LeaseHeld) as held:
        acquire_lease(es, replace(settings, lease_wait="0"), RECONCILE, is_active=is_active)
    message = str(held.value)
    for part in (str(HOURLY), "since 2026-12-06T00:00:05Z", "expires at 2026-12-06T07:00:05Z",
                 "mark it failed", f"python -m mailforce.tools.lease release --run-id {HOURLY.run_id}"):
        assert part in message, (part, message)

    def operator_marks_it_failed(seconds: float) -> None:
        airflow_says[HOURLY] = "failed"

    with caplog.at_level("WARNING", logger="mailforce.es.lease"):
        acquire_lease(es, settings, RECONCILE, is_active=is_active, sleep=operator_marks_it_failed)
    waiting = [record.getMessage() for record in caplog.records if "Waiting for the outputs' lease" in record.getMessage()]
    assert len(waiting) == 1 and "expires at 2026-12-06T07:00:05Z" in waiting[0] and "Mark run as" in waiting[0]
    assert stored_lease(es, settings)["dag_id"] == RECONCILE.dag_id

    def lease_command(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mailforce.tools.lease", *arguments, "--url", es_url,
                               "--engine", "osmem"], capture_output=True, text=True, timeout=60)

    def lease_main(*arguments: str) -> subprocess.CompletedProcess[str]:
        """The same command line through `main` in this process (a command's start costs seconds of imports)."""
        capsys.readouterr()
        code = main([*arguments, "--url", es_url, "--engine", "osmem"])
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(arguments, code, captured.out, captured.err)

    shown = lease_command("show")  # the module runs as a command
    assert shown.returncode == 0 and str(RECONCILE) in shown.stdout, shown
    wrong = lease_main("release", "--run-id", RECONCILE.run_id, "--dag-id", HOURLY.dag_id)
    assert wrong.returncode == 1 and "not released" in wrong.stderr, wrong
    assert stored_lease(es, settings)["dag_id"] == RECONCILE.dag_id  # a mistyped id frees nothing
    released = lease_main("release", "--run-id", RECONCILE.run_id)
    assert released.returncode == 0 and "Gave back" in released.stdout, released
    assert stored_lease(es, settings) is None
    assert try_acquire(es, settings, HOURLY, is_active=lambda dag_id, run_id: True)[0]


@pytest.mark.parametrize(("arguments", "first_line"), [
    (["show", "--url", "http://127.0.0.1:{port}"], "lease: cannot reach Elasticsearch at http://127.0.0.1:{port}: Connection refused."),
    (["show", "--url", "localhost:9200"], "lease: --url 'localhost:9200' is not an http(s) URL; e.g. --url http://localhost:9200"),
    (["show", "--conn-id", "no_such_conn"], "lease: The conn_id `no_such_conn` isn't defined."),
])
def test_the_lease_command_answers_a_wrong_url_or_connection_in_words_with_exit_2(arguments, first_line, closed_port,
                                                                                   capsys):
    from mailforce.tools.lease import main

    assert main([argument.format(port=closed_port) for argument in arguments]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.splitlines()[0] == first_line.format(port=closed_port)
    assert len(captured.err.splitlines()) <= 2 and "Traceback" not in captured.err


def test_the_lease_command_refuses_a_release_without_run_id_in_two_lines(capsys):
    from mailforce.tools.lease import main

    with pytest.raises(SystemExit) as exited:
        main(["release"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "python -m mailforce.tools.lease: release needs --run-id RUN_ID (the run that holds the lease: see `show`)",
        "Run `python -m mailforce.tools.lease --help` for the options.",
    ]
